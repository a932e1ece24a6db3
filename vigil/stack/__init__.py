"""The embedded service stack: PostgreSQL+pgvector, Valkey, SeaweedFS S3 and PyTriton on 127.0.0.1."""

from vigil.stack.endpoints import Endpoints, resolve
from vigil.stack.process import StackError
from vigil.stack.supervisor import ServiceStatus, Stack

__all__ = ["Endpoints", "ServiceStatus", "Stack", "StackError", "resolve"]
