"""Property-based: any request to any implemented RPC gets a deliberate status (OK,
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, UNIMPLEMENTED), never
INTERNAL or UNKNOWN."""

from __future__ import annotations

import math
import uuid

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.control.rpcs import implemented_rpcs

DELIBERATE = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
              grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.OUT_OF_RANGE}

# Strings that look like what handlers parse: ids, enum-ish words, masks, plus hostile text.
_STRINGS = st.one_of(
    st.just(""),
    st.uuids().map(str),
    st.just(str(uuid.UUID(int=0))),
    st.sampled_from(["not-a-uuid", "*", "name", "id", "Europe/Paris", "Mars/Olympus", "10.0.0.1", "::1",
                     "rtsp://user:pw@cam/1", "a" * 300, "x\u0000y", "' OR 1=1 --", "\U0001F600"]),
    st.text(max_size=40),
)
_FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 0.5, 1.0, -1.0, 1.5]))
_SCALARS = {
    F.TYPE_STRING: _STRINGS,
    F.TYPE_BYTES: st.one_of(st.binary(max_size=64), st.just(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)),
    F.TYPE_BOOL: st.booleans(),
    F.TYPE_DOUBLE: _FLOATS,
    F.TYPE_FLOAT: _FLOATS.map(lambda x: x if math.isnan(x) or abs(x) < 3e38 else math.copysign(math.inf, x)),
    F.TYPE_INT32: st.one_of(st.integers(-5, 5), st.integers(-2**31, 2**31 - 1)),
    F.TYPE_INT64: st.one_of(st.integers(-5, 5), st.integers(-2**63, 2**63 - 1)),
    F.TYPE_UINT32: st.integers(0, 2**32 - 1),
    F.TYPE_UINT64: st.integers(0, 2**64 - 1),
    F.TYPE_ENUM: st.integers(-1, 12),
}


def _value(field, depth):
    if field.type == F.TYPE_MESSAGE:
        return _message(field.message_type, depth + 1)
    if field.type in _SCALARS:
        return _SCALARS[field.type]
    return st.integers(0, 2**31 - 1)


def _message(descriptor, depth=0):  # noqa: C901
    from google.protobuf import symbol_database

    cls = symbol_database.Default().GetSymbol(descriptor.full_name)
    if descriptor.full_name == "google.protobuf.Timestamp":
        return st.builds(lambda s, n: cls(seconds=s, nanos=n), st.integers(-62135596800, 253402300799),
                         st.integers(0, 999_999_999))
    if descriptor.full_name == "google.protobuf.Duration":
        return st.builds(lambda s: cls(seconds=s), st.integers(-10**6, 10**6))
    if descriptor.full_name == "google.protobuf.FieldMask":
        return st.builds(lambda paths: cls(paths=paths), st.lists(_STRINGS, max_size=3))
    if depth > 3:
        return st.just(cls())
    fields = {}
    for field in descriptor.fields:
        if field.message_type and field.message_type.GetOptions().map_entry:
            continue
        strategy = _value(field, depth)
        if field.is_repeated:
            strategy = st.lists(strategy, max_size=3 if field.type != F.TYPE_MESSAGE else 2)
        fields[field.name] = st.one_of(st.none(), strategy)

    def build(values):
        message = cls()
        for name, value in values.items():
            if value is None:
                continue
            target = getattr(message, name) if not isinstance(value, (str, bytes, bool, int, float)) else None
            try:
                if isinstance(value, list):
                    container = getattr(message, name)
                    for item in value:
                        container.add().CopyFrom(item) if hasattr(container, "add") else container.append(item)
                elif target is not None:
                    target.CopyFrom(value)
                else:
                    setattr(message, name, value)
            except (TypeError, ValueError):  # a oneof sibling, or a value the field type refuses
                pass
        return message

    return st.fixed_dictionaries(fields).map(build)


UNARY = [r for r in implemented_rpcs() if not r.client_streaming and not r.server_streaming]


@pytest.mark.parametrize("rpc", UNARY, ids=lambda r: r.path)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
async def test_no_request_gets_internal(channel, as_role, rpc, data):
    request = data.draw(_message(rpc.request_type.DESCRIPTOR), label="request")
    try:
        await rpc.invoke(rpc.callable(channel), as_role("super_admin"), request)
    except grpc.aio.AioRpcError as err:
        assert err.code() in DELIBERATE, f"{rpc.path} answered {err.code()}: {err.details()}"


# Server-streaming RPCs whose first answer comes at once (not EventService.Subscribe, which waits
# for events): the request is checked before the stream starts.
FIRST_ANSWER_AT_ONCE = [r for r in implemented_rpcs("vigil.v1.NodeService") if r.server_streaming]


@pytest.mark.parametrize("rpc", FIRST_ANSWER_AT_ONCE, ids=lambda r: r.path)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
async def test_no_streaming_request_gets_internal(channel, as_role, rpc, data):
    request = data.draw(_message(rpc.request_type.DESCRIPTOR), label="request")
    try:
        await rpc.invoke(rpc.callable(channel), as_role("super_admin"), request)
    except grpc.aio.AioRpcError as err:
        assert err.code() in DELIBERATE, f"{rpc.path} answered {err.code()}: {err.details()}"
