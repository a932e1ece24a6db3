"""Authentication, authorisation and rate limits on every implemented RPC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.control.rpcs import WRITE_ACTIONS, implemented_rpcs
from tests.fixtures.control import bearer
from vigil.control.services import servicers
from vigil.storage.db import create_pool
from vigil.storage.repositories.api_keys import ApiKeyRepository


def test_every_handler_declares_its_permission(control):
    _, app = control
    for servicer, _, name in servicers(app):
        for method in implemented_rpcs(name):
            handler = getattr(servicer, method.name)
            assert hasattr(handler, "permission"), f"{name}/{method.name} has no @rpc permission"


async def test_health_needs_no_key(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("rpc", implemented_rpcs(), ids=lambda r: r.path)
async def test_every_rpc_refuses_a_missing_or_bad_key(channel, rpc):
    call = rpc.callable(channel)
    for metadata in ((), (("authorization", "Bearer vgl_00000000_" + "A" * 43),), (("authorization", "Basic x"),)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await rpc.invoke(call, metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, err.value.details()


@pytest.mark.parametrize("rpc", [r for r in implemented_rpcs() if r.permission[1] in WRITE_ACTIONS],
                         ids=lambda r: r.path)
async def test_viewer_is_refused_every_write(channel, as_role, rpc):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rpc.invoke(rpc.callable(channel), as_role("viewer"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()
    assert "viewer" in err.value.details()


async def _key(endpoints, **kwargs) -> tuple[str, str]:
    pool = create_pool(endpoints.database_dsn, min_size=1, max_size=1)
    await pool.open()
    async with pool.connection() as conn:
        created = await ApiKeyRepository(conn).create("auth-probe", kwargs.pop("role", "admin"), **kwargs)
    await pool.close()
    return created.plaintext, str(created.key.id)


async def test_revoked_and_expired_keys_are_refused_with_the_reason(channel, endpoints):
    rpc = next(r for r in implemented_rpcs() if r.path.endswith("/ListWatchlists"))
    plaintext, key_id = await _key(endpoints)
    await rpc.invoke(rpc.callable(channel), bearer(plaintext))  # works before revocation
    pool = create_pool(endpoints.database_dsn, min_size=1, max_size=1)
    await pool.open()
    async with pool.connection() as conn:
        await ApiKeyRepository(conn).revoke(key_id)
    await pool.close()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rpc.invoke(rpc.callable(channel), bearer(plaintext))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in err.value.details()

    expired, _ = await _key(endpoints, expires_at=datetime.now(UTC) + timedelta(seconds=1))
    import asyncio

    await asyncio.sleep(1.2)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rpc.invoke(rpc.callable(channel), bearer(expired))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in err.value.details()


async def test_rate_limit_gives_resource_exhausted(channel, endpoints):
    rpc = next(r for r in implemented_rpcs() if r.path.endswith("/ListWatchlists"))
    plaintext, _ = await _key(endpoints, rate_limit_per_minute=3)
    codes = []
    for _ in range(8):
        try:
            await rpc.invoke(rpc.callable(channel), bearer(plaintext))
            codes.append(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as err:
            codes.append(err.code())
            if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                assert "rate limit of 3" in err.details()
    # a one-minute window may roll over mid-test: then at most 3 + 3 pass
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 2, codes
