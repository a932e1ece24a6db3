"""Monthly partition upkeep for the five time-series tables (our replacement for pg_partman).

The SQL function fn_maintain_partitions() does the work, so the scheduler, the CLI and a DBA
with psql all run the same code; retention and premake live in the partition_retention table.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class PartitionAction:
    table: str
    action: str  # created | dropped | purged_default | skipped_not_partitioned
    partition: str


def maintain_partitions(conn: psycopg.Connection) -> list[PartitionAction]:
    """Create current + upcoming monthly partitions and drop expired ones."""
    rows = conn.execute("SELECT table_name, action, partition_name FROM fn_maintain_partitions()").fetchall()
    return [PartitionAction(*row) for row in rows]


def list_partitions(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """(parent, partition, bounds) for every partitioned table."""
    return conn.execute(
        """
        SELECT parent.relname, child.relname, pg_get_expr(child.relpartbound, child.oid)
        FROM pg_inherits i
        JOIN pg_class parent ON parent.oid = i.inhparent
        JOIN pg_class child ON child.oid = i.inhrelid
        WHERE parent.relkind = 'p'
        ORDER BY parent.relname, child.relname
        """
    ).fetchall()


class PartitionRepository:
    """The same upkeep for the control plane's scheduled jobs, on an async connection."""

    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def maintain(self) -> list[PartitionAction]:
        cur = await self.conn.execute("SELECT table_name, action, partition_name FROM fn_maintain_partitions()")
        return [PartitionAction(row["table_name"], row["action"], row["partition_name"])
                for row in await cur.fetchall()]

    async def purge_ingest_state(self) -> dict[str, int]:
        """Rows deleted per table: idempotency keys and track mappings past their retention."""
        cur = await self.conn.execute("SELECT table_name, deleted FROM fn_purge_ingest_state()")
        return {row["table_name"]: row["deleted"] for row in await cur.fetchall()}
