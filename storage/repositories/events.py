"""Detection events (the monthly-partitioned `events` table), their reviews, suspicious activities,
the dashboard figures, and the ingest path's bookkeeping: idempotency keys of stored batches, the
one-event-per-track mapping and the event-feed outbox.

The primary key of events is (id, timestamp), so a lookup that knows the timestamp touches one
partition; listings are newest first with keyset pages on (timestamp, id).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from vigil.errors import InvalidArgument, NotFound
from vigil.storage.repositories.base import (
    Keyset,
    Page,
    as_uuid,
    aware,
    columns_of,
    fetch_all,
    fetch_one,
    fetch_page,
    guarded,
    insert_row,
    optional_uuid,
    parse_timestamp,
    translated,
    unit_interval,
    uuid_list,
)
from vigil.storage.repositories.filters import Filters

REVIEW_ACTIONS = ("confirm", "reject", "correct_name", "delete")  # "merge" is recorded by person merges


def _site_of(table: str) -> sql.Composed:
    return sql.SQL("(SELECT d.site_id FROM cameras c JOIN dvrs d ON d.id = c.dvr_id WHERE c.id = {}.camera_id)"
                   ).format(sql.Identifier(table))


def _media_of(table: str, file_type: str) -> sql.Composed:
    """The latest media file of this kind registered for the row (media_files.event_id): a better
    face re-describes its event and brings a newer snapshot."""
    return sql.SQL(
        "(SELECT m.id FROM media_files m WHERE m.event_id = {}.id AND m.file_type = {}"
        " ORDER BY m.created_at DESC, m.id DESC LIMIT 1)"
    ).format(sql.Identifier(table), sql.Literal(file_type))


def _in_sites(table: str) -> sql.Composed:
    return sql.SQL("{}.camera_id IN (SELECT c.id FROM cameras c JOIN dvrs d ON d.id = c.dvr_id"
                   " WHERE d.site_id = ANY(%s))").format(sql.Identifier(table))


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    id: UUID
    camera_id: UUID
    site_id: UUID
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
    snapshot_media_id: UUID | None
    clip_media_id: UUID | None
    created_at: datetime


_COLUMNS = columns_of(Event, confidence=sql.SQL("confidence::float8"), site_id=_site_of("events"),
                      snapshot_media_id=_media_of("events", "image"), clip_media_id=_media_of("events", "video"))
_NEWEST_FIRST = Keyset(("timestamp", "id"), (parse_timestamp, UUID))


@dataclass(frozen=True)
class NewEvent:
    """An event to insert with others in one statement (EventRepository.insert_many)."""
    camera_id: UUID
    event_type: str
    timestamp: datetime
    confidence: float
    bounding_box: dict[str, Any]
    person_id: UUID | None = None
    cluster_id: UUID | None = None
    image_path: str | None = None
    frame_number: int | None = None
    metadata: dict[str, Any] | None = None


_NEW_EVENT_COLUMNS = ("id", "camera_id", "event_type", "timestamp", "confidence", "bounding_box", "person_id",
                      "cluster_id", "image_path", "frame_number", "metadata")


class EventRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def insert_many(self, rows: Sequence[NewEvent]) -> list[Event]:
        """The events in one statement (a batch's new tracks), returned in the order given."""
        if not rows:
            return []
        ids = [uuid4() for _ in rows]
        params: list[Any] = []
        for event_id, r in zip(ids, rows):
            params += [event_id, r.camera_id, r.event_type, aware("timestamp", r.timestamp),
                       unit_interval("confidence", r.confidence), Jsonb(r.bounding_box), r.person_id, r.cluster_id,
                       r.image_path, r.frame_number, Jsonb(r.metadata or {})]
        row = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(_NEW_EVENT_COLUMNS)))
        query = sql.SQL("INSERT INTO events ({}) VALUES {} RETURNING {}").format(
            sql.SQL(", ").join(map(sql.Identifier, _NEW_EVENT_COLUMNS)), sql.SQL(", ").join([row] * len(rows)),
            _COLUMNS)
        async with translated("event"):  # inside the batch's savepoint
            found = {e.id: e for e in await fetch_all(self.conn, Event, query, params)}
        return [found[i] for i in ids]

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

    async def redescribe(self, event_id: UUID, timestamp: datetime, *, event_type: str, confidence: float,
                         bounding_box: dict[str, Any], person_id: UUID | None, cluster_id: UUID | None,
                         image_path: str | None, frame_number: int | None, metadata: dict[str, Any]) -> Event:
        """Replace what an event says about its observation (a track's better face): identity,
        box, confidence, snapshot, metadata. Its key (id, timestamp) and review stay."""
        values = {
            "event_type": event_type, "confidence": unit_interval("confidence", confidence),
            "bounding_box": Jsonb(bounding_box), "person_id": person_id, "cluster_id": cluster_id,
            "image_path": image_path, "frame_number": frame_number, "metadata": Jsonb(metadata),
        }
        query = sql.SQL("UPDATE events SET {} WHERE id = %s AND timestamp = %s RETURNING {}").format(
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values), _COLUMNS)
        async with guarded(self.conn, "event", values):
            found = await fetch_one(self.conn, Event, query, [*values.values(), event_id, timestamp])
        if found is None:
            raise NotFound("event", event_id)
        return found

    async def relabel(self, keys: Sequence[tuple[UUID, datetime]], labels: Sequence[str]) -> list[Event]:
        """Set metadata.object_label of these events (their tracks' labels settled on others), in one
        statement; a reviewed event stays as the operator left it. Returns the events changed."""
        if not keys:
            return []
        query = sql.SQL(
            "UPDATE events SET metadata = jsonb_set(events.metadata, '{{object_label}}', to_jsonb(k.new_label))"
            " FROM unnest(%s::uuid[], %s::timestamptz[], %s::text[]) AS k(event_id, event_ts, new_label)"
            " WHERE events.id = k.event_id AND events.timestamp = k.event_ts AND NOT events.reviewed"
            " RETURNING {}").format(_COLUMNS)
        async with guarded(self.conn, "event"):
            return await fetch_all(self.conn, Event, query,
                                   ([k[0] for k in keys], [k[1] for k in keys], list(labels)))

    async def get(self, event_id: UUID | str, timestamp: datetime | None = None) -> Event:
        """With the timestamp, only its partition is read. Without it, each partition's primary-key
        index is probed; ids are unique only with their timestamp, so the newest such event wins."""
        event_id = as_uuid("event_id", event_id)
        filters = Filters().eq("id", event_id).eq("timestamp", aware("timestamp", timestamp))
        query = sql.SQL("SELECT {} FROM events WHERE {} ORDER BY timestamp DESC LIMIT 1").format(
            _COLUMNS, filters.sql())
        event = await fetch_one(self.conn, Event, query, filters.params)
        if event is None:
            raise NotFound("event", event_id)
        return event

    async def get_many(self, keys: Iterable[tuple[UUID, datetime]]) -> dict[UUID, Event]:
        """Events by (id, timestamp), in one statement; the ones that are gone (deleted) are absent."""
        keys = list(keys)
        if not keys:
            return {}
        query = sql.SQL("SELECT {} FROM events WHERE (id, timestamp) IN"
                        " (SELECT * FROM unnest(%s::uuid[], %s::timestamptz[]))").format(_COLUMNS)
        found = await fetch_all(self.conn, Event, query, ([k[0] for k in keys], [k[1] for k in keys]))
        return {e.id: e for e in found}

    async def list(self, *, camera_ids: Iterable[UUID | str] | None = None,
                   site_ids: Iterable[UUID | str] | None = None, event_types: Iterable[str] | None = None,
                   person_id: UUID | str | None = None, person_ids: Iterable[UUID | str] | None = None,
                   cluster_ids: Iterable[UUID | str] | None = None, reviewed: bool | None = None,
                   object_classes: Iterable[str] | None = None, object_labels: Iterable[str] | None = None,
                   since: datetime | None = None, until: datetime | None = None, page_size: int = 0,
                   page_token: str | None = None) -> Page[Event]:
        """Newest first; `since` is inclusive, `until` exclusive. A list matches any of its values;
        None is no condition. object_classes / object_labels: the producing track's class and
        label (metadata.object_class, metadata.object_label)."""
        filters = Filters()
        event_types = None if event_types is None else list(event_types)
        for column, field, values in (("camera_id", "camera_ids", camera_ids), ("person_id", "person_ids", person_ids),
                                      ("cluster_id", "cluster_ids", cluster_ids)):
            filters.any(column, uuid_list(field, values))
        if site_ids is not None:
            filters.raw(_in_sites("events"), uuid_list("site_ids", site_ids))
        filters.any("event_type", event_types, cast="event_type_enum")
        filters.eq("person_id", optional_uuid("person_id", person_id))
        filters.eq("reviewed", None if reviewed is None else bool(reviewed))
        if object_classes is not None:
            filters.raw("metadata->>'object_class' = ANY(%s)", list(object_classes))
        if object_labels is not None:
            filters.raw("metadata->>'object_label' = ANY(%s)", list(object_labels))
        filters.range("timestamp", aware("since", since), aware("until", until))
        return await fetch_page(self.conn, Event, select=_COLUMNS, table="events", filters=filters,
                                keyset=_NEWEST_FIRST, page_size=page_size, page_token=page_token, resource="event",
                                values={"event_types": event_types})

    async def review(self, event_id: UUID | str, action: str, *, reviewer_id: UUID | None,
                     person_id: UUID | None = None, notes: str | None = None) -> Event | None:
        """Record an operator's review (review_actions) and apply it: the event becomes reviewed with
        this action; CORRECT_NAME re-assigns it to `person_id`; DELETE removes it (returns None)."""
        if action not in REVIEW_ACTIONS:
            raise InvalidArgument("action", f"must be one of {', '.join(REVIEW_ACTIONS)}")
        if (action == "correct_name") != (person_id is not None):
            raise InvalidArgument("person_id", "is required for correct_name and only allowed with it")
        event = await self.get(event_id)
        key = (event.id, event.timestamp)
        async with guarded(self.conn, "review", parents={"to_person_id": "person"}):
            await self.conn.execute(
                "INSERT INTO review_actions (event_id, reviewer_id, action, from_person_id, to_person_id, notes)"
                " VALUES (%s, %s, %s, %s, %s, %s)", (event.id, reviewer_id, action, event.person_id, person_id, notes))
            if action == "delete":
                await self.conn.execute("DELETE FROM events WHERE id = %s AND timestamp = %s", key)
                return None
            await self.conn.execute(
                "UPDATE events SET reviewed = TRUE, review_action = %s, person_id = COALESCE(%s, person_id)"
                " WHERE id = %s AND timestamp = %s", (action, person_id, *key))
        return await self.get(*key)


# --------------------------------------------------------------------------- suspicious activities


@dataclass(frozen=True)
class SuspiciousActivity:
    id: UUID
    camera_id: UUID
    site_id: UUID
    event_id: UUID | None
    activity_type: str
    zone_id: UUID | None
    confidence: float
    severity: str
    details: dict[str, Any]
    image_path: str | None
    video_clip_path: str | None
    timestamp: datetime
    alert_sent: bool
    snapshot_media_id: UUID | None
    clip_media_id: UUID | None
    created_at: datetime


_ACTIVITY_TABLE = "suspicious_activity_events"
_ACTIVITY_COLUMNS = columns_of(
    SuspiciousActivity, confidence=sql.SQL("confidence::float8"), site_id=_site_of(_ACTIVITY_TABLE),
    snapshot_media_id=_media_of(_ACTIVITY_TABLE, "image"), clip_media_id=_media_of(_ACTIVITY_TABLE, "video"))


class SuspiciousActivityRepository:
    """suspicious_activity_events: what the analytics detected."""

    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def record(self, camera_id: UUID, activity_type: str, zone_id: UUID | None, confidence: float,
                     severity: str, details: dict[str, Any], detected_at: datetime) -> SuspiciousActivity:
        """A detection, not yet alerted (alert_sent false)."""
        cur = await self.conn.execute(
            "INSERT INTO suspicious_activity_events (camera_id, activity_type, zone_id, confidence, severity,"
            " details, timestamp, alert_sent) VALUES (%s, %s, %s, %s, %s, %s, %s, false) RETURNING id",
            (camera_id, activity_type, zone_id, confidence, severity, Jsonb(details), detected_at))
        return await self.get((await cur.fetchone())["id"])

    async def get(self, activity_id: UUID | str) -> SuspiciousActivity:
        activity_id = as_uuid("activity_id", activity_id)
        found = await fetch_one(self.conn, SuspiciousActivity, sql.SQL(
            "SELECT {} FROM suspicious_activity_events WHERE id = %s ORDER BY timestamp DESC LIMIT 1"
        ).format(_ACTIVITY_COLUMNS), (activity_id,))
        if found is None:
            raise NotFound("suspicious_activity", activity_id)
        return found

    async def list(self, *, camera_ids: Iterable[UUID | str] | None = None,
                   site_ids: Iterable[UUID | str] | None = None, activity_types: Iterable[str] | None = None,
                   zone_ids: Iterable[UUID | str] | None = None, severities: Iterable[str] | None = None,
                   object_classes: Iterable[str] | None = None,
                   since: datetime | None = None, until: datetime | None = None, page_size: int = 0,
                   page_token: str | None = None) -> Page[SuspiciousActivity]:
        """Newest first; `since` is inclusive, `until` exclusive; None is no condition.
        object_classes: details.object_class, 'person' for activities from before it was stored."""
        filters = Filters()
        activity_types = None if activity_types is None else list(activity_types)
        severities = None if severities is None else list(severities)
        for column, values in (("camera_id", camera_ids), ("zone_id", zone_ids)):
            filters.any(column, uuid_list(f"{column}s", values))
        if site_ids is not None:
            filters.raw(_in_sites(_ACTIVITY_TABLE), uuid_list("site_ids", site_ids))
        filters.any("activity_type", activity_types, cast="activity_type_enum")
        filters.any("severity", severities, cast="severity_enum")
        if object_classes is not None:
            filters.raw("COALESCE(details->>'object_class', 'person') = ANY(%s)", list(object_classes))
        filters.range("timestamp", aware("since", since), aware("until", until))
        return await fetch_page(self.conn, SuspiciousActivity, select=_ACTIVITY_COLUMNS, table=_ACTIVITY_TABLE,
                                filters=filters, keyset=_NEWEST_FIRST, page_size=page_size,
                                page_token=page_token, resource="suspicious_activity",
                                values={"activity_types": activity_types, "severities": severities})


# --------------------------------------------------------------------------- dashboard


@dataclass(frozen=True)
class DashboardStats:
    """The row of vw_dashboard_stats, read as the caller (its row-level security applies)."""
    total_cameras: int
    online_cameras: int
    offline_cameras: int
    camera_uptime_pct: float | None
    events_today: int
    recognized_today: int
    faces_today: int
    humans_today: int
    unreviewed_events: int
    pending_alerts: int
    acknowledged_alerts: int
    critical_alerts: int
    total_persons: int
    known_persons: int
    unknown_persons: int
    blacklisted_persons: int
    vip_persons: int
    suspicious_today: int
    critical_suspicious: int
    computed_at: datetime


async def dashboard_stats(conn: psycopg.AsyncConnection) -> DashboardStats:
    return await fetch_one(conn, DashboardStats, sql.SQL("SELECT {} FROM vw_dashboard_stats").format(
        columns_of(DashboardStats, camera_uptime_pct=sql.SQL("camera_uptime_pct::float8"),
                   computed_at=sql.SQL("now()"))))


# --------------------------------------------------------------------------- ingest bookkeeping


class IngestBatchRepository:
    """Idempotency keys of stored ingest batches (ingest_batches)."""

    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def claim(self, idempotency_key: str, *, node_id: UUID, camera_id: UUID, sequence: int,
                    update_count: int) -> bool:
        """Record the key; False when it was already stored. A concurrent claim of the same key waits
        for the first transaction and then sees it (or takes over if that one rolled back). Run inside
        the batch's savepoint."""
        async with translated("ingest_batch", parents={"camera_id": "camera"}):
            cur = await self.conn.execute(
                "INSERT INTO ingest_batches (idempotency_key, node_id, camera_id, sequence, update_count)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (idempotency_key) DO NOTHING RETURNING 1",
                (idempotency_key, node_id, camera_id, sequence, update_count))
            return await cur.fetchone() is not None


@dataclass(frozen=True)
class TrackEvent:
    """The event a track produced for one kind: 'human' (a person track), 'vehicle' or 'face'."""
    track_id: str
    kind: str
    event_id: UUID
    event_timestamp: datetime
    face_quality: float | None
    parent_track_id: str | None
    object_label: str | None = None  # the label the event states ('vehicle' only)


_TRACK_EVENT_COLUMNS = columns_of(TrackEvent, face_quality=sql.SQL("face_quality::float8"))


class TrackEventRepository:
    """One event per (camera, track, kind) (track_events)."""

    def __init__(self, conn: psycopg.AsyncConnection, camera_id: UUID):
        self.conn = conn
        self.camera_id = camera_id

    async def existing(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], TrackEvent]:
        """The existing rows of these (track_id, kind) keys. Not locked row by row: only ingest writes
        track_events, and it holds the camera's ingest lock (storage.locks) for the transaction, so
        locking a batch's hundred rows again would only cost a WAL record each."""
        keys = list(keys)
        if not keys:
            return {}
        query = sql.SQL("SELECT {} FROM track_events WHERE camera_id = %s AND (track_id, kind) IN"
                        " (SELECT * FROM unnest(%s::text[], %s::text[]))").format(_TRACK_EVENT_COLUMNS)
        found = await fetch_all(self.conn, TrackEvent, query,
                                (self.camera_id, [k[0] for k in keys], [k[1] for k in keys]))
        return {(t.track_id, t.kind): t for t in found}

    async def add(self, rows: Sequence[TrackEvent]) -> None:
        if not rows:
            return
        async with translated("track_event"):  # one statement for the batch's new tracks, in its savepoint
            await self.conn.execute(
                "INSERT INTO track_events (camera_id, track_id, kind, event_id, event_timestamp, face_quality,"
                " parent_track_id, object_label) SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::uuid[],"
                " %s::timestamptz[], %s::numeric[], %s::text[], %s::text[])",
                (self.camera_id, [r.track_id for r in rows], [r.kind for r in rows], [r.event_id for r in rows],
                 [r.event_timestamp for r in rows], [r.face_quality for r in rows],
                 [r.parent_track_id for r in rows], [r.object_label for r in rows]))

    async def set_face_quality(self, track_id: str, quality: float) -> None:
        async with guarded(self.conn, "track_event"):
            await self.conn.execute("UPDATE track_events SET face_quality = %s"
                                    " WHERE camera_id = %s AND track_id = %s AND kind = 'face'",
                                    (quality, self.camera_id, track_id))

    async def set_labels(self, kind: str, labels: dict[str, str]) -> None:
        """The label each of these tracks' events now states."""
        if not labels:
            return
        async with guarded(self.conn, "track_event"):
            await self.conn.execute(
                "UPDATE track_events t SET object_label = l.label FROM unnest(%s::text[], %s::text[])"
                " AS l(track_id, label) WHERE t.camera_id = %s AND t.kind = %s AND t.track_id = l.track_id",
                (list(labels), list(labels.values()), self.camera_id, kind))

    async def set_parents(self, parents: dict[str, str]) -> None:
        """Face tracks' person tracks, where the node (newly) associated them."""
        if not parents:
            return
        async with guarded(self.conn, "track_event"):
            await self.conn.execute(
                "UPDATE track_events t SET parent_track_id = p.parent FROM unnest(%s::text[], %s::text[])"
                " AS p(track_id, parent) WHERE t.camera_id = %s AND t.kind = 'face' AND t.track_id = p.track_id"
                " AND t.parent_track_id IS DISTINCT FROM p.parent",
                (list(parents), list(parents.values()), self.camera_id))

    async def identities(self, track_ids: Iterable[str]) -> dict[str, tuple[UUID | None, UUID | None]]:
        """track_id → (person_id, cluster_id) of these tracks' face events and, for person tracks, of
        the face events of their face tracks; a recognised person wins over a cluster."""
        track_ids = list(track_ids)
        cur = await self.conn.execute(
            "SELECT t.track_id, t.parent_track_id, e.person_id, e.cluster_id FROM track_events t"
            " JOIN events e ON e.id = t.event_id AND e.timestamp = t.event_timestamp"
            " WHERE t.camera_id = %(camera)s AND t.kind = 'face'"
            " AND (t.track_id = ANY(%(tracks)s) OR t.parent_track_id = ANY(%(tracks)s))"
            " ORDER BY e.person_id IS NULL, t.updated_at DESC",
            {"camera": self.camera_id, "tracks": track_ids})
        found: dict[str, tuple[UUID | None, UUID | None]] = {}
        for row in await cur.fetchall():
            identity = (row["person_id"], row["cluster_id"])
            for track in (row["track_id"], row["parent_track_id"]):
                if track is not None and identity != (None, None):
                    found.setdefault(track, identity)
        return found


class FeedOutboxRepository:
    """Event-feed messages committed with their rows and not yet on the Redis stream (feed_outbox).
    add() takes no savepoint of its own: a failed add fails the caller's transaction (or savepoint)."""

    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def add(self, payloads: Sequence[dict[str, Any]]) -> None:
        if not payloads:
            return
        async with translated("feed_outbox"):  # one statement; ids follow the order given
            await self.conn.execute("INSERT INTO feed_outbox (payload) SELECT p FROM unnest(%s::jsonb[])"
                                    " WITH ORDINALITY AS u(p, n) ORDER BY n", ([Jsonb(p) for p in payloads],))

    async def oldest(self, limit: int) -> list[tuple[int, UUID, dict[str, Any]]]:
        """(id, message_id, payload) of the oldest pending messages, in id order."""
        cur = await self.conn.execute("SELECT id, message_id, payload FROM feed_outbox ORDER BY id LIMIT %s",
                                      (limit,))
        return [(row["id"], row["message_id"], row["payload"]) for row in await cur.fetchall()]

    async def remove(self, ids: Sequence[int]) -> None:
        await self.conn.execute("DELETE FROM feed_outbox WHERE id = ANY(%s)", (list(ids),))

    async def depth(self) -> int:
        """How many messages wait for the relay."""
        cur = await self.conn.execute("SELECT count(*) AS n FROM feed_outbox")
        return (await cur.fetchone())["n"]


class FeedAudienceRepository:
    """What a feed subscriber may see and which persons its watchlist filter names."""

    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def assigned_site_ids(self, user_id: UUID | None) -> set[UUID]:
        """The sites row-level security lets this user see (user_site_assignments)."""
        cur = await self.conn.execute("SELECT site_id FROM user_site_assignments WHERE user_id = %s", (user_id,))
        return {row["site_id"] for row in await cur.fetchall()}

    async def watched(self, watchlist_ids: Sequence[UUID], person_ids: Iterable[UUID | str]) -> set[UUID]:
        """Those of the persons who are on any of the watchlists now."""
        cur = await self.conn.execute(
            "SELECT DISTINCT person_id FROM watchlist_entries WHERE watchlist_id = ANY(%s) AND person_id = ANY(%s)",
            (list(watchlist_ids), uuid_list("person_ids", person_ids)))
        return {row["person_id"] for row in await cur.fetchall()}
