"""Clip requests (clip_requests) and the clips they produce (video_clips + media_files).

Life of a clip: created PENDING (by an alert, or MediaService.RequestClip) → handed to the node
running its camera in a heartbeat response once its end time has passed (PROCESSING; handed out
again if not completed within CLAIM_TIMEOUT) → the node uploads the MP4 to the request's
storage_path and calls CompleteClip → READY (media_files + video_clips rows linked to the event
and alert) or FAILED. Requests nobody could serve within GIVE_UP_AFTER of their end time fail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import psycopg
from psycopg import sql

from vigil.errors import InvalidArgument, NotFound
from vigil.storage.repositories.base import as_uuid, aware, columns_of, fetch_all, fetch_one, guarded, optional_uuid
from vigil.storage.repositories.media import MediaFileRepository

CLAIM_TIMEOUT = timedelta(seconds=60)
GIVE_UP_AFTER = timedelta(minutes=5)  # nodes keep ~30 s of video: a clip not cut by then never will be
MAX_ATTEMPTS = 3
MAX_LENGTH = timedelta(minutes=10)
CLIP_RETENTION = timedelta(days=30)
MAX_JOBS_PER_HEARTBEAT = 8
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ClipRequest:
    id: UUID
    camera_id: UUID
    event_id: UUID | None
    alert_id: UUID | None
    start_time: datetime
    end_time: datetime
    state: str  # pending | processing | ready | failed
    node_id: UUID | None
    attempts: int
    storage_path: str
    video_clip_id: UUID | None
    error: str | None
    created_at: datetime
    completed_at: datetime | None
    # of the produced clip (video_clips / media_files), when READY
    media_file_id: UUID | None
    duration: Decimal | None
    size_bytes: int | None


_COLUMNS = columns_of(
    ClipRequest,
    **{name: sql.SQL("r.{}").format(sql.Identifier(name)) for name in (
        "id", "camera_id", "event_id", "alert_id", "start_time", "end_time", "created_at")},
    media_file_id=sql.SQL("v.media_file_id"), duration=sql.SQL("v.duration"), size_bytes=sql.SQL("v.size_bytes"))
_FROM = sql.SQL("clip_requests r LEFT JOIN video_clips v ON v.id = r.video_clip_id")


def clip_key(camera_id: UUID, clip_id: UUID, start: datetime) -> str:
    return f"{camera_id}/{start:%Y/%m/%d}/clip-{clip_id}.mp4"


class ClipRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def create(self, camera_id: UUID | str, start_time: datetime, end_time: datetime, *,
                     event_id: UUID | str | None = None, alert_id: UUID | str | None = None) -> ClipRequest:
        camera_id = as_uuid("camera_id", camera_id)
        start_time, end_time = aware("start_time", start_time), aware("end_time", end_time)
        if end_time <= start_time:
            raise InvalidArgument("end_time", "must be after start_time")
        if end_time - start_time > MAX_LENGTH:
            raise InvalidArgument("end_time", "must be at most 10 minutes after start_time")
        clip_id = uuid4()
        async with guarded(self.conn, "clip", parents={"camera_id": "camera"}):
            await self.conn.execute(
                "INSERT INTO clip_requests (id, camera_id, event_id, alert_id, start_time, end_time, storage_path)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (clip_id, camera_id, optional_uuid("event_id", event_id), optional_uuid("alert_id", alert_id),
                 start_time, end_time, clip_key(camera_id, clip_id, start_time)))
        return await self.get(clip_id)

    async def get(self, clip_id: UUID | str) -> ClipRequest:
        clip_id = as_uuid("id", clip_id)
        found = await fetch_one(self.conn, ClipRequest,
                                sql.SQL("SELECT {} FROM {} WHERE r.id = %s").format(_COLUMNS, _FROM), (clip_id,))
        if found is None:
            raise NotFound("clip", clip_id)
        return found

    async def claim(self, node_id: UUID) -> list[ClipRequest]:
        """Clips of cameras assigned to the node whose end time has passed: PENDING ones, and
        PROCESSING ones whose claim timed out. Those that waited too long fail first."""
        await self.conn.execute(
            "UPDATE clip_requests SET state = 'failed', completed_at = now(), error = CASE WHEN attempts >= %s"
            " THEN 'no node completed the clip after ' || attempts || ' attempts'"
            " ELSE 'no node running the camera recorded the interval in time' END"
            " WHERE state IN ('pending', 'processing') AND (end_time < now() - %s OR (attempts >= %s"
            " AND claimed_at < now() - %s))", (MAX_ATTEMPTS, GIVE_UP_AFTER, MAX_ATTEMPTS, CLAIM_TIMEOUT))
        cur = await self.conn.execute(
            "UPDATE clip_requests SET state = 'processing', node_id = %(node)s, claimed_at = now(),"
            " attempts = attempts + 1 WHERE id IN ("
            "  SELECT r.id FROM clip_requests r JOIN stream_assignments a ON a.camera_id = r.camera_id"
            "  WHERE a.node_id = %(node)s AND r.end_time <= now() AND r.attempts < %(max)s"
            "  AND (r.state = 'pending' OR (r.state = 'processing' AND r.claimed_at < now() - %(timeout)s))"
            "  ORDER BY r.end_time LIMIT %(limit)s FOR UPDATE OF r SKIP LOCKED) RETURNING id",
            {"node": node_id, "max": MAX_ATTEMPTS, "timeout": CLAIM_TIMEOUT, "limit": MAX_JOBS_PER_HEARTBEAT})
        ids = [row["id"] for row in await cur.fetchall()]
        if not ids:
            return []
        return await fetch_all(self.conn, ClipRequest, sql.SQL("SELECT {} FROM {} WHERE r.id = ANY(%s)"
                                                               " ORDER BY r.end_time").format(_COLUMNS, _FROM), (ids,))

    async def fail(self, clip_id: UUID, error: str) -> ClipRequest:
        await self.conn.execute(
            "UPDATE clip_requests SET state = 'failed', error = %s, completed_at = now()"
            " WHERE id = %s AND state IN ('pending', 'processing')", (error[:2000], clip_id))
        return await self.get(clip_id)

    async def complete(self, clip_id: UUID | str, *, size_bytes: int, checksum: str, start_time: datetime,
                       end_time: datetime) -> ClipRequest:
        """Register the uploaded clip: media_files (video, the event's), video_clips (event and
        alert), the request READY. Completing a READY clip again changes nothing."""
        clip_id = as_uuid("clip_id", clip_id)
        if not isinstance(checksum, str) or not _SHA256_HEX.match(checksum):
            raise InvalidArgument("checksum", "must be a SHA-256 digest in lowercase hex")
        if size_bytes <= 0:
            raise InvalidArgument("size_bytes", "must be positive")
        start_time, end_time = aware("start_time", start_time), aware("end_time", end_time)
        if start_time is None or end_time is None or end_time <= start_time:
            raise InvalidArgument("end_time", "start_time and end_time are required, end after start")
        cur = await self.conn.execute("SELECT state FROM clip_requests WHERE id = %s FOR UPDATE", (clip_id,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound("clip", clip_id)
        request = await self.get(clip_id)
        if row["state"] == "ready":
            return request
        media = await MediaFileRepository(self.conn).register(
            request.camera_id, request.storage_path, checksum=checksum, file_size=size_bytes, mime_type="video/mp4",
            timestamp=start_time, retention_until=start_time + CLIP_RETENTION, event_id=request.event_id)
        seconds = max(round((end_time - start_time).total_seconds(), 2), 0.01)
        async with guarded(self.conn, "clip"):
            cur = await self.conn.execute(
                "INSERT INTO video_clips (media_file_id, duration, start_time, end_time, camera_id, event_id,"
                " alert_id, format, size_bytes) VALUES (%s, %s, %s, %s, %s, %s, %s, 'mp4', %s) RETURNING id",
                (media.id, seconds, start_time, end_time, request.camera_id, request.event_id, request.alert_id,
                 size_bytes))
            video_clip_id = (await cur.fetchone())["id"]
            await self.conn.execute(
                "UPDATE clip_requests SET state = 'ready', video_clip_id = %s, error = NULL, completed_at = now()"
                " WHERE id = %s", (video_clip_id, clip_id))
        return await self.get(clip_id)
