"""The permissions matrix: which (resource, action) pairs each role is granted."""

from __future__ import annotations

import psycopg


class PermissionRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def grants(self) -> dict[str, set[tuple[str, str]]]:
        """role name -> its granted (resource, action) pairs; roles without a grant are absent."""
        cur = await self.conn.execute(
            "SELECT r.name, p.resource, p.action FROM permissions_matrix p JOIN roles r ON r.id = p.role_id"
            " WHERE p.granted")
        grants: dict[str, set[tuple[str, str]]] = {}
        for row in await cur.fetchall():
            grants.setdefault(row["name"], set()).add((row["resource"], row["action"]))
        return grants
