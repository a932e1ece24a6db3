"""The implemented RPCs, enumerated from the service descriptors, callable generically."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from google.protobuf import symbol_database

from vigil.api.v1 import PROTO_MODULES
from vigil.control.services import SERVICES

WRITE_ACTIONS = {"write", "delete", "merge", "configure", "acknowledge", "trigger", "approve"}


@dataclass(frozen=True)
class Rpc:
    service: str
    name: str
    path: str
    request_type: type
    response_type: type
    client_streaming: bool
    server_streaming: bool
    permission: tuple[str, str]

    def callable(self, channel):
        kind = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
                (True, False): channel.stream_unary, (True, True): channel.stream_stream}[
            (self.client_streaming, self.server_streaming)]
        return kind(self.path, request_serializer=self.request_type.SerializeToString,
                    response_deserializer=self.response_type.FromString)

    async def invoke(self, call, metadata, request=None):
        request = request if request is not None else self.request_type()
        if self.client_streaming:
            async def one():
                yield request
            request = one()
        if self.server_streaming:
            stream = call(request, metadata=metadata)
            async for response in stream:
                stream.cancel()
                return response
            return None
        return await call(request, metadata=metadata)


def _descriptor(full_name: str):
    for module_name in PROTO_MODULES:
        module = importlib.import_module(f"vigil.api.v1.{module_name}_pb2")
        service = module.DESCRIPTOR.services_by_name.get(full_name.rsplit(".", 1)[1])
        if service is not None and service.full_name == full_name:
            return service
    raise LookupError(full_name)


def implemented_rpcs(service_name: str | None = None) -> list[Rpc]:
    db = symbol_database.Default()
    found = []
    for factory, _, name in SERVICES:
        if service_name and name != service_name:
            continue
        for method in _descriptor(name).methods:
            handler = getattr(factory, method.name)
            found.append(Rpc(
                service=name, name=method.name, path=f"/{name}/{method.name}",
                request_type=db.GetSymbol(method.input_type.full_name),
                response_type=db.GetSymbol(method.output_type.full_name),
                client_streaming=method.client_streaming, server_streaming=method.server_streaming,
                permission=getattr(handler, "permission", ("?", "?")),
            ))
    return found
