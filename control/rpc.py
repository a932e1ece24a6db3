"""The `@rpc(resource, action)` decorator every handler wears: it checks the caller's permission
and turns domain errors into gRPC statuses, so no handler repeats either and no request error
ever leaves as INTERNAL."""

from __future__ import annotations

import functools
import inspect
import uuid

import grpc

from vigil.control.auth import caller_may, current_caller
from vigil.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, RepositoryError
from vigil.logs import get_logger
from vigil.models.errors import InferenceError
from vigil.storage.crypto import SecretError

log = get_logger("vigil.control.rpc")

_STATUS = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}


def status_of(exc: RepositoryError | InferenceError) -> grpc.StatusCode:
    if isinstance(exc, InferenceError):
        return grpc.StatusCode.UNAVAILABLE
    for cls, code in _STATUS.items():
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


async def _fail(context, method: str, exc: Exception):
    if isinstance(exc, RepositoryError):
        await context.abort(status_of(exc), str(exc))
    if isinstance(exc, InferenceError):  # Triton down, or its models not loaded: retryable
        log.error("inference unavailable", method=method, error=str(exc))
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"face models unavailable: {exc}")
    if isinstance(exc, SecretError):
        log.error("secret handling failed", method=method, error=str(exc))
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"stored secret unusable: {exc}")
    incident = uuid.uuid4().hex[:12]
    log.exception("unhandled error", method=method, incident=incident)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (incident {incident}); see the control plane log")


def rpc(resource: str, action: str):
    """Require `resource:action` of the caller's role and map errors to statuses."""

    def decorate(handler):
        method = handler.__name__

        async def authorise(self, context):
            caller = current_caller()
            if not await caller_may(resource, action):
                await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                    f"role {caller.role!r} of key {caller.key.key_prefix} may not {action} {resource}")

        if inspect.isasyncgenfunction(handler):
            @functools.wraps(handler)
            async def streaming(self, request, context):
                await authorise(self, context)
                try:
                    async for response in handler(self, request, context):
                        yield response
                except (grpc.aio.AbortError, GeneratorExit):
                    raise
                except Exception as exc:  # noqa: BLE001 - mapped to a status
                    await _fail(context, method, exc)
            wrapper = streaming
        else:
            @functools.wraps(handler)
            async def unary(self, request, context):
                await authorise(self, context)
                try:
                    return await handler(self, request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001 - mapped to a status
                    await _fail(context, method, exc)
            wrapper = unary
        wrapper.permission = (resource, action)
        return wrapper

    return decorate
