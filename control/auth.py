"""Who is calling (API key authentication, rate limits) and what they may do (RBAC).

Authentication happens once per RPC in AuthInterceptor; the caller is then available to the
handler through `current_caller()`. Authorisation is declared on each handler with
`control.rpc.rpc(resource, action)` and checked (`caller_may`) against the role's row of
permissions_matrix, narrowed by the key's scopes.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import grpc
from grpc import aio

from vigil.control.ratelimit import RateLimiter
from vigil.logs import get_logger
from vigil.storage.repositories.api_keys import ApiKey, AuthResult, AuthStatus

log = get_logger("vigil.control.auth")

# Callable without a key: load balancers and `grpcurl list` must work before any key exists.
PUBLIC_METHODS_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

_REFUSALS = {
    AuthStatus.UNKNOWN: "unknown API key",
    AuthStatus.REVOKED: "API key {prefix} was revoked",
    AuthStatus.EXPIRED: "API key {prefix} has expired",
    AuthStatus.SUSPENDED: "API key {prefix} is suspended",
}


@dataclass(frozen=True)
class Caller:
    key: ApiKey
    client_ip: str | None

    @property
    def user_id(self) -> UUID | None:
        return self.key.user_id

    @property
    def role(self) -> str:
        return self.key.role

    @property
    def rls_role(self) -> str:
        """The role row-level security sees: a key bound to a user acts within that user's sites;
        a service key (no user) has fleet-wide scope, narrowed by RBAC alone."""
        return self.key.role if self.key.user_id else "super_admin"


_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("vigil_caller")
_permissions: contextvars.ContextVar[PermissionTable] = contextvars.ContextVar("vigil_permissions")


def current_caller() -> Caller:
    return _caller.get()


async def caller_may(resource: str, action: str) -> bool:
    """Whether the RPC's caller may do `action` on `resource` (its replica's permission table)."""
    return await _permissions.get().allows(current_caller(), resource, action)


class PermissionTable:
    """roles → granted (resource, action) pairs, from permissions_matrix, refreshed every ttl_s."""

    def __init__(self, load: Callable, ttl_s: float = 30.0):
        self._load = load
        self._ttl_s = ttl_s
        self._grants: dict[str, set[tuple[str, str]]] = {}
        self._loaded_at = 0.0

    async def allows(self, caller: Caller, resource: str, action: str) -> bool:
        if time.monotonic() - self._loaded_at > self._ttl_s:
            self._grants = await self._load()
            self._loaded_at = time.monotonic()
        if (resource, action) not in self._grants.get(caller.role, set()):
            return False
        scopes = caller.key.scopes
        return not scopes or f"{resource}:{action}" in scopes


def _client_ip(peer: str) -> str | None:
    # "ipv4:127.0.0.1:5555" / "ipv6:[::1]:5555" → the address alone
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return None


class AuthInterceptor(aio.ServerInterceptor):
    def __init__(self, authenticate: Callable[[str], Awaitable[AuthResult]], rate_limiter: RateLimiter,
                 permissions: PermissionTable):
        self.authenticate = authenticate  # plaintext key → AuthResult (ControlApp.authenticate)
        self.rate_limiter = rate_limiter
        self.permissions = permissions

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None or details.method.startswith(PUBLIC_METHODS_PREFIXES):
            return handler
        metadata = {k.lower(): v for k, v in (details.invocation_metadata or ())}
        authenticate = self._authenticator(metadata.get("authorization"))
        return _wrap(handler, authenticate)

    def _authenticator(self, header: str | None):
        async def authenticate(context: aio.ServicerContext) -> None:
            if not header or not header.lower().startswith("bearer "):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                    "missing API key: send the metadata 'authorization: Bearer <key>' "
                                    "(create one with `vigil keys create --role ...`)")
            result = await self.authenticate(header[7:].strip())
            if not result.ok:
                prefix = result.key.key_prefix if result.key else ""
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, _REFUSALS[result.status].format(prefix=prefix))
            decision = await self.rate_limiter.hit(str(result.key.id), result.key.rate_limit_per_minute)
            if not decision.allowed:
                context.set_trailing_metadata((("retry-after", str(int(decision.retry_after_s) + 1)),))
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    f"API key {result.key.key_prefix} is over its rate limit of "
                                    f"{decision.limit} requests per minute; retry in {decision.retry_after_s:.0f}s")
            _caller.set(Caller(result.key, _client_ip(context.peer())))
            _permissions.set(self.permissions)

        return authenticate


def _wrap(handler: grpc.RpcMethodHandler, authenticate) -> grpc.RpcMethodHandler:
    """The same handler, with authentication run inside the RPC (where it can abort)."""
    kwargs = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
    if handler.unary_unary:
        async def unary_unary(request, context):
            await authenticate(context)
            return await handler.unary_unary(request, context)
        return grpc.unary_unary_rpc_method_handler(unary_unary, **kwargs)
    if handler.unary_stream:
        async def unary_stream(request, context):
            await authenticate(context)
            async for response in handler.unary_stream(request, context):
                yield response
        return grpc.unary_stream_rpc_method_handler(unary_stream, **kwargs)
    if handler.stream_unary:
        async def stream_unary(request_iterator, context):
            await authenticate(context)
            return await handler.stream_unary(request_iterator, context)
        return grpc.stream_unary_rpc_method_handler(stream_unary, **kwargs)

    async def stream_stream(request_iterator, context):
        await authenticate(context)
        async for response in handler.stream_stream(request_iterator, context):
            yield response
    return grpc.stream_stream_rpc_method_handler(stream_stream, **kwargs)
