"""The embedded service stack: PostgreSQL+pgvector, Valkey, SeaweedFS S3 and PyTriton on 127.0.0.1.

Where each service is (embedded or not) is vigil.endpoints."""

from vigil.stack.process import StackError
from vigil.stack.supervisor import ServiceStatus, Stack

__all__ = ["ServiceStatus", "Stack", "StackError"]
