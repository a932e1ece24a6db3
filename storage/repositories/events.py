"""Detection events: the monthly-partitioned `events` table.

The primary key is (id, timestamp), so a lookup that knows the timestamp touches one partition;
listings are newest first with keyset pages on (timestamp, id).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from vigil.storage.repositories.base import (
    Keyset,
    NotFound,
    Page,
    as_uuid,
    aware,
    columns_of,
    fetch_one,
    fetch_page,
    insert_row,
    optional_uuid,
    parse_timestamp,
    unit_interval,
    uuid_list,
)


@dataclass(frozen=True)
class Event:
    id: UUID
    camera_id: UUID
    event_type: str
    person_id: UUID | None
    cluster_id: UUID | None
    confidence: float
    bounding_box: dict[str, Any]
    image_path: str | None
    video_clip_path: str | None
    timestamp: datetime
    frame_number: int | None
    metadata: dict[str, Any]
    reviewed: bool
    review_action: str | None
    created_at: datetime


_COLUMNS = columns_of(Event, confidence=sql.SQL("confidence::float8"))
_NEWEST_FIRST = Keyset(("timestamp", "id"), (parse_timestamp, UUID))


class EventRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def insert(self, camera_id: UUID | str, event_type: str, timestamp: datetime, confidence: float,
                     bounding_box: dict[str, Any], *, person_id: UUID | str | None = None,
                     cluster_id: UUID | str | None = None, image_path: str | None = None,
                     video_clip_path: str | None = None, frame_number: int | None = None,
                     metadata: dict[str, Any] | None = None, event_id: UUID | str | None = None) -> Event:
        """`event_id` lets a publisher that retries after a lost ack reuse its id (the row with the
        same (id, timestamp) then already exists: AlreadyExists)."""
        values = {
            "camera_id": as_uuid("camera_id", camera_id), "event_type": event_type,
            "timestamp": aware("timestamp", timestamp), "confidence": unit_interval("confidence", confidence),
            "bounding_box": Jsonb(bounding_box), "person_id": optional_uuid("person_id", person_id),
            "cluster_id": optional_uuid("cluster_id", cluster_id), "image_path": image_path,
            "video_clip_path": video_clip_path, "frame_number": frame_number, "metadata": Jsonb(metadata or {}),
        }
        if event_id is not None:
            values["id"] = as_uuid("event_id", event_id)
        return await insert_row(self.conn, "events", values, Event, _COLUMNS, "event")

    async def get(self, event_id: UUID | str, timestamp: datetime | None = None) -> Event:
        """With the timestamp, only its partition is read. Without it, each partition's primary-key
        index is probed; ids are unique only with their timestamp, so the newest such event wins."""
        where, params = [sql.SQL("id = %s")], [as_uuid("event_id", event_id)]
        if aware("timestamp", timestamp) is not None:
            where.append(sql.SQL("timestamp = %s"))
            params.append(timestamp)
        query = sql.SQL("SELECT {} FROM events WHERE {} ORDER BY timestamp DESC LIMIT 1").format(
            _COLUMNS, sql.SQL(" AND ").join(where))
        event = await fetch_one(self.conn, Event, query, params)
        if event is None:
            raise NotFound("event", params[0])
        return event

    async def list(self, *, camera_ids: Iterable[UUID | str] | None = None,
                   event_types: Iterable[str] | None = None, person_id: UUID | str | None = None,
                   since: datetime | None = None, until: datetime | None = None, page_size: int = 0,
                   page_token: str | None = None) -> Page[Event]:
        """Newest first; `since` is inclusive, `until` exclusive."""
        where, params = [], []
        camera_ids = uuid_list("camera_ids", camera_ids)
        event_types = None if event_types is None else list(event_types)
        if camera_ids is not None:
            where.append(sql.SQL("camera_id = ANY(%s)"))
            params.append(camera_ids)
        if event_types is not None:
            where.append(sql.SQL("event_type = ANY(%s::event_type_enum[])"))
            params.append(event_types)
        if person_id is not None:
            where.append(sql.SQL("person_id = %s"))
            params.append(as_uuid("person_id", person_id))
        if aware("since", since) is not None:
            where.append(sql.SQL("timestamp >= %s"))
            params.append(since)
        if aware("until", until) is not None:
            where.append(sql.SQL("timestamp < %s"))
            params.append(until)
        return await fetch_page(self.conn, Event, select=_COLUMNS, table="events", where=where, params=params,
                                keyset=_NEWEST_FIRST, page_size=page_size, page_token=page_token, resource="event",
                                values={"event_types": event_types})
