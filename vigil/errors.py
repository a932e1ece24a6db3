"""The errors a request can end in, shared by the layers: repositories raise them, the control
plane's handlers raise them too, and the API layer (control/rpc.py) maps each to a gRPC status.

They carry what that mapping needs: the field for INVALID_ARGUMENT, the resource for NOT_FOUND and
ALREADY_EXISTS.
"""

from __future__ import annotations

from typing import Any


class RepositoryError(Exception):
    """Base of the errors a caller may turn into a gRPC status."""


class NotFound(RepositoryError):
    def __init__(self, resource: str, id: Any):  # noqa: A002
        super().__init__(f"{resource} {id} not found")
        self.resource, self.id = resource, id


class AlreadyExists(RepositoryError):
    def __init__(self, resource: str, field: str):
        super().__init__(f"a {resource} with this {field} already exists")
        self.resource, self.field = resource, field


class InvalidArgument(RepositoryError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class FailedPrecondition(RepositoryError):
    """The request is well-formed but the resource is not in a state that allows it."""


class PermissionDenied(RepositoryError):
    """Row-level security or a grant refused the statement."""
