"""system_health_logs: figures of the pipeline nodes (from their heartbeats) and of each
control-plane replica, one row per component and interval."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb


class HealthLogRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def record_node(self, node_id: UUID, status: str, metrics: dict[str, Any], message: str,
                          interval: timedelta) -> bool:
        """A row for the node unless it has one from the last `interval`; whether one was written."""
        cur = await self.conn.execute(
            "INSERT INTO system_health_logs (component, status, metrics, message)"
            " SELECT 'pipeline_node', %(status)s, %(metrics)s, %(message)s"
            " WHERE NOT EXISTS (SELECT 1 FROM system_health_logs WHERE component = 'pipeline_node'"
            "   AND timestamp > now() - %(interval)s AND metrics->>'node_id' = %(node)s)",
            {"status": status, "metrics": Jsonb(metrics), "message": message, "interval": interval,
             "node": str(node_id)})
        return cur.rowcount == 1

    async def record_control_plane(self, status: str, metrics: dict[str, Any], message: str) -> None:
        await self.conn.execute("INSERT INTO system_health_logs (component, status, metrics, message) VALUES"
                                " ('control_plane', %s, %s, %s)", (status, Jsonb(metrics), message))
