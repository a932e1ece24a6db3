"""Job "partitions": create the current and upcoming monthly partitions and drop those past their
retention (partition_retention: events 12 months, suspicious activity 24, audit 36, health and
connectivity 90 days). fn_maintain_partitions() does the work, the same code `vigil db partitions`
and a DBA's psql run."""

from __future__ import annotations

from typing import Any

from vigil.storage.partitions import PartitionRepository


async def maintain_partitions(app) -> dict[str, Any]:
    async with app.pool.connection() as conn, conn.transaction():
        actions = await PartitionRepository(conn).maintain()
    by_action: dict[str, list[str]] = {}
    for action in actions:
        by_action.setdefault(action.action, []).append(action.partition)
    return {"created": len(by_action.get("created", [])), "dropped": len(by_action.get("dropped", [])),
            "purged_default": len(by_action.get("purged_default", [])), "partitions": by_action}


async def purge_ingest_state(app) -> dict[str, Any]:
    """Idempotency keys and track mappings past 8 days (ingest.proto promises 7)."""
    async with app.pool.connection() as conn, conn.transaction():
        return await PartitionRepository(conn).purge_ingest_state()
