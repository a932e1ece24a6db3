"""The parts of a Fact that come from the database: who the recognised persons are (status, role,
active watchlists) and what the camera is called, in which time zone, with which zone names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from uuid import UUID

import psycopg

from vigil.control.rules.facts import PersonFacts
from vigil.storage.repositories.base import as_uuid
from vigil.errors import NotFound


@dataclass(frozen=True)
class CameraFacts:
    name: str
    site_timezone: str
    zone_names: Mapping[UUID, str]  # every zone of the camera, active or not


async def person_facts(conn: psycopg.AsyncConnection, person_ids: Iterable[UUID]) -> dict[UUID, PersonFacts]:
    """The persons that exist among these ids, with the active watchlists each is on."""
    cur = await conn.execute(
        "SELECT p.id, p.status::text AS status, p.role, p.name,"
        " ARRAY(SELECT e.watchlist_id FROM watchlist_entries e JOIN watchlists w ON w.id = e.watchlist_id"
        "       WHERE e.person_id = p.id AND w.is_active) AS watchlist_ids"
        " FROM persons p WHERE p.id = ANY(%s)", ([as_uuid("person_ids", i) for i in person_ids],))
    return {row["id"]: PersonFacts(row["id"], row["status"], row["role"], row["name"], frozenset(row["watchlist_ids"]))
            for row in await cur.fetchall()}


async def camera_facts(conn: psycopg.AsyncConnection, camera_id: UUID) -> CameraFacts:
    camera_id = as_uuid("camera_id", camera_id)
    cur = await conn.execute(
        "SELECT c.name, s.timezone,"
        " ARRAY(SELECT z.id FROM camera_zones z WHERE z.camera_id = c.id ORDER BY z.id) AS zone_ids,"
        " ARRAY(SELECT z.name FROM camera_zones z WHERE z.camera_id = c.id ORDER BY z.id) AS zone_names"
        " FROM cameras c JOIN dvrs d ON d.id = c.dvr_id JOIN sites s ON s.id = d.site_id WHERE c.id = %s",
        (camera_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound("camera", camera_id)
    return CameraFacts(row["name"], row["timezone"], dict(zip(row["zone_ids"], row["zone_names"])))
