"""The parts of a Fact that come from the database: who the recognised persons are (status, role,
active watchlists) and what the camera is called, in which time zone, with which zone names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from uuid import UUID

import psycopg

from vigil.control.rules.facts import PersonFacts
from vigil.storage.repositories.camera_context import CameraContextRepository
from vigil.storage.repositories.persons import PersonRepository


@dataclass(frozen=True)
class CameraFacts:
    name: str
    site_timezone: str
    zone_names: Mapping[UUID, str]  # every zone of the camera, active or not


async def person_facts(conn: psycopg.AsyncConnection, person_ids: Iterable[UUID]) -> dict[UUID, PersonFacts]:
    """The persons that exist among these ids, with the active watchlists each is on."""
    standings = await PersonRepository(conn).standings(person_ids)
    return {p.id: PersonFacts(p.id, p.status, p.role, p.name, p.watchlist_ids) for p in standings.values()}


async def camera_facts(conn: psycopg.AsyncConnection, camera_id: UUID) -> CameraFacts:
    setting = await CameraContextRepository(conn).setting(camera_id)
    return CameraFacts(setting.name, setting.site_timezone, setting.zone_names)
