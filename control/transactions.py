"""Database transactions that act as the RPC's caller (RLS and audit triggers see them).

    async with db.transaction() as tx:          # db: CallerDatabase, given to each servicer
        await SiteRepository(tx.conn).get(site_id)
        await tx.audit("site.update", "site", site_id, changes)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from vigil.control.auth import Caller, current_caller
from vigil.storage.db import acting_as
from vigil.storage.repositories.audit import AuditLogRepository


@dataclass
class Transaction:
    """One database transaction acting as the caller (RLS and audit triggers see them)."""

    conn: Any
    caller: Caller

    async def audit(self, action: str, resource_type: str, resource_id: UUID | str | None = None,
                    changed_fields: dict[str, Any] | None = None) -> None:
        await AuditLogRepository(self.conn).record(
            action, resource_type, resource_id=resource_id, user_id=self.caller.user_id,
            api_key_id=self.caller.key.id, changed_fields=changed_fields, client_ip=self.caller.client_ip,
            details={"role": self.caller.role})


class CallerDatabase:
    """The replica's pool, entered as the caller of the running RPC."""

    def __init__(self, pool: AsyncConnectionPool):
        self.pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        caller = current_caller()
        async with acting_as(self.pool, user_id=caller.user_id, role=caller.rls_role,
                             client_ip=caller.client_ip) as conn:
            yield Transaction(conn, caller)
