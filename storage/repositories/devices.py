"""Whether cameras and DVRs deliver: the streaming cameras with their newest frame, their status
transitions and the connectivity log (device_connectivity_logs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

# A camera's last frame is the newest StreamStats.last_frame_time any node reported in a heartbeat
# (pipeline_nodes.streams), or the one recorded at its last transition.
_STREAMING_CAMERAS = """
WITH frames AS (
    SELECT (s->>'camera_id')::uuid AS camera_id, max((s->>'last_frame_time')::timestamptz) AS last_frame
    FROM pipeline_nodes n, jsonb_array_elements(n.streams) s
    WHERE s ? 'last_frame_time'
    GROUP BY 1
)
SELECT c.id, c.name, c.dvr_id, d.name AS dvr_name, c.status::text AS status, d.status::text AS dvr_status,
       GREATEST(f.last_frame, c.last_frame_time) AS last_frame, c.created_at, a.node_id
FROM cameras c
JOIN dvrs d ON d.id = c.dvr_id
LEFT JOIN frames f ON f.camera_id = c.id
LEFT JOIN stream_assignments a ON a.camera_id = c.id
WHERE c.is_active AND c.rtsp_url IS NOT NULL AND btrim(c.rtsp_url) <> ''
ORDER BY c.dvr_id, c.channel_number, c.id
"""

# device type -> (table, the column of its last sign of life)
_DEVICE_TABLES = {"camera": ("cameras", "last_frame_time"), "dvr": ("dvrs", "last_seen")}


@dataclass(frozen=True)
class StreamingCamera:
    """A camera that should stream (active, with a URL), with its DVR."""

    id: UUID
    name: str
    dvr_id: UUID
    dvr_name: str
    status: str
    dvr_status: str
    last_frame: datetime | None
    created_at: datetime
    node_id: UUID | None  # the node it is assigned to


class DeviceRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def streaming_cameras(self) -> list[StreamingCamera]:
        """By DVR, then channel number."""
        cur = await self.conn.execute(_STREAMING_CAMERAS)
        return [StreamingCamera(**row) for row in await cur.fetchall()]

    async def offline_camera_count(self) -> int:
        cur = await self.conn.execute("SELECT count(*) AS n FROM cameras WHERE is_active AND status = 'offline'")
        return (await cur.fetchone())["n"]

    async def set_status(self, device_type: str, device_id: UUID, status: str, last_seen: datetime | None) -> bool:
        """Move a camera or DVR to `status` and advance its last sign of life (a NULL one never moves
        it back); False when it already had that status. Decided under the row lock, so a concurrent
        manual change is not overwritten blindly."""
        table, seen = _DEVICE_TABLES[device_type]
        query = sql.SQL("UPDATE {table} SET status = %s, {seen} = GREATEST({seen}, %s)"  # GREATEST skips NULLs
                        " WHERE id = %s AND status::text <> %s RETURNING id").format(
            table=sql.Identifier(table), seen=sql.Identifier(seen))
        cur = await self.conn.execute(query, (status, last_seen, device_id, status))
        return await cur.fetchone() is not None

    async def log_connectivity(self, device_type: str, device_id: UUID, event: str, details: dict[str, Any]) -> None:
        """A row of device_connectivity_logs: event is 'connected' or 'disconnected'."""
        await self.conn.execute(
            "INSERT INTO device_connectivity_logs (device_type, device_id, event, details) VALUES (%s, %s, %s, %s)",
            (device_type, device_id, event, Jsonb(details)))
