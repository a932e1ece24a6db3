"""What the ingest path reads about a camera while it turns a batch into alerts: whether it records
(clips around alerts) and its name, site time zone and zone
names (rules)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import psycopg

from vigil.errors import NotFound
from vigil.storage.repositories.base import as_uuid


@dataclass(frozen=True)
class CameraSetting:
    name: str
    site_timezone: str
    zone_names: dict[UUID, str]  # every zone of the camera, active or not


class CameraContextRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def records(self, camera_id: UUID) -> bool:
        """Whether the camera records (config recording_enabled, true unless set); False when it is gone."""
        cur = await self.conn.execute("SELECT COALESCE((config->>'recording_enabled')::boolean, true) AS on"
                                      " FROM cameras WHERE id = %s", (camera_id,))
        row = await cur.fetchone()
        return row is not None and row["on"]

    async def setting(self, camera_id: UUID | str) -> CameraSetting:
        """Its name, its site's time zone and the names of its zones; NotFound for no such camera."""
        camera_id = as_uuid("camera_id", camera_id)
        cur = await self.conn.execute(
            "SELECT c.name, s.timezone,"
            " ARRAY(SELECT z.id FROM camera_zones z WHERE z.camera_id = c.id ORDER BY z.id) AS zone_ids,"
            " ARRAY(SELECT z.name FROM camera_zones z WHERE z.camera_id = c.id ORDER BY z.id) AS zone_names"
            " FROM cameras c JOIN dvrs d ON d.id = c.dvr_id JOIN sites s ON s.id = d.site_id WHERE c.id = %s",
            (camera_id,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound("camera", camera_id)
        return CameraSetting(row["name"], row["timezone"], dict(zip(row["zone_ids"], row["zone_names"])))
