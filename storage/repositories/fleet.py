"""The fleet at a glance (GetDashboardStats, `vigil status`): each node's streams and load, the
cameras that should stream and those no node runs, cameras marked offline, open alerts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

_NODES = """
SELECT n.id, n.name, n.state, n.capacity_streams, n.last_heartbeat_at, n.gpus,
       COALESCE(n.stats->'gpus', '[]'::jsonb) AS gpu_stats,
       (SELECT count(*) FROM stream_assignments a WHERE a.node_id = n.id) AS streams,
       (SELECT COALESCE(sum((s->>'processed_fps')::float8), 0) FROM jsonb_array_elements(n.streams) s) AS fps,
       (SELECT COALESCE(sum((s->>'dropped_frames')::bigint), 0)::bigint FROM jsonb_array_elements(n.streams) s)
           AS dropped,
       (SELECT count(*) FROM jsonb_array_elements(n.streams) s WHERE s->>'state' = 'STREAM_STATE_RUNNING') AS running
FROM pipeline_nodes n ORDER BY n.name, n.id
"""

_STREAMING = "c.is_active AND c.rtsp_url IS NOT NULL AND btrim(c.rtsp_url) <> ''"


@dataclass(frozen=True)
class NodeSummary:
    id: UUID
    name: str
    state: str
    capacity_streams: int
    last_heartbeat_at: datetime | None
    streams: int  # assigned
    fps: float  # processed, summed over its streams' last reports
    dropped: int
    running: int  # streams reported running
    gpus: list[dict[str, Any]]  # GpuInfo as registered, stored by control.convert.as_json
    gpu_stats: list[dict[str, Any]]  # GpuStats of its last heartbeat, likewise


@dataclass(frozen=True)
class FleetSummary:
    nodes: list[NodeSummary]  # by name
    streaming_cameras: int  # active, with a URL
    unassigned_streams: int  # of those, run by no node
    offline_camera_ids: list[UUID]  # active cameras marked offline, by name, at most the limit asked for
    open_alerts: int  # pending, sent or acknowledged
    alerts_today: int  # created since midnight (the database's time zone)


class FleetRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def summary(self, *, max_offline_listed: int) -> FleetSummary:
        nodes = await (await self.conn.execute(_NODES)).fetchall()
        counts = await (await self.conn.execute(
            f"SELECT count(*) FILTER (WHERE {_STREAMING}) AS streaming,"
            f" count(*) FILTER (WHERE {_STREAMING} AND NOT EXISTS"
            "   (SELECT 1 FROM stream_assignments a WHERE a.camera_id = c.id)) AS unassigned"
            " FROM cameras c")).fetchone()
        offline = await (await self.conn.execute(
            "SELECT id FROM cameras WHERE is_active AND status = 'offline' ORDER BY name, id LIMIT %s",
            (max_offline_listed,))).fetchall()
        alerts = await (await self.conn.execute(
            "SELECT count(*) FILTER (WHERE status IN ('pending', 'sent', 'acknowledged')) AS open,"
            " count(*) FILTER (WHERE created_at >= date_trunc('day', now())) AS today FROM alerts")).fetchone()
        return FleetSummary(nodes=[NodeSummary(**n) for n in nodes], streaming_cameras=counts["streaming"],
                            unassigned_streams=counts["unassigned"], offline_camera_ids=[r["id"] for r in offline],
                            open_alerts=alerts["open"], alerts_today=alerts["today"])
