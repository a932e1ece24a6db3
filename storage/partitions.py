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
