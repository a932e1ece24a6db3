"""The index of media in object storage (snapshots, face crops, clips) and its retention.

Retention contract (SCHEMA.md): list what expired, delete those objects from object storage,
then delete the rows, so a row never disappears while its object still exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import psycopg
from psycopg import sql

from vigil.errors import InvalidArgument, NotFound
from vigil.storage.repositories.base import (
    Keyset,
    Page,
    as_uuid,
    aware,
    columns_of,
    delete_row,
    fetch_one,
    fetch_page,
    guarded,
    insert_row,
    optional_uuid,
    parse_timestamp,
    uuid_list,
)
from vigil.storage.repositories.filters import Filters

RETENTION_GRACE = timedelta(days=7)  # as fn_cleanup_expired_media: rows go 7 days after retention_until

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_MEDIA_MIME = re.compile(r"^(?P<kind>image|video)/[A-Za-z0-9][A-Za-z0-9.+-]*$")  # kind = media_file_type_enum


@dataclass(frozen=True)
class MediaFile:
    id: UUID
    file_type: str  # image | video
    storage_path: str  # object key in the media bucket
    file_size: int
    checksum: str  # SHA-256, lowercase hex
    camera_id: UUID
    event_id: UUID | None
    timestamp: datetime
    retention_until: datetime
    created_at: datetime


_COLUMNS = columns_of(MediaFile)
_NEWEST_FIRST = Keyset(("timestamp", "id"), (parse_timestamp, UUID))
_OLDEST_EXPIRY_FIRST = Keyset(("retention_until", "id"), (parse_timestamp, UUID), descending=False)


def file_type_of(mime_type: str) -> str:
    """media_files keeps only the kind of file (the object store keeps the exact content type)."""
    match = _MEDIA_MIME.match(mime_type.lower()) if isinstance(mime_type, str) else None
    if match is None:
        raise InvalidArgument("mime_type", f"must be an image/* or video/* type, got {mime_type!r}")
    return match["kind"]


@dataclass(frozen=True)
class PurgeCandidate:
    id: UUID
    storage_path: str
    shared: bool  # the object is still named by a live media row or a face image: keep it


_MARK_FOR_PURGE = """
WITH batch AS (
    SELECT id FROM media_files
    WHERE retention_until < now() - %(grace)s
    ORDER BY purging_at NULLS LAST, retention_until, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE media_files m SET purging_at = COALESCE(m.purging_at, now())
FROM batch WHERE m.id = batch.id
RETURNING m.id, m.storage_path,
    EXISTS (SELECT 1 FROM media_files o WHERE o.storage_path = m.storage_path AND o.id <> m.id
            AND o.purging_at IS NULL AND o.retention_until >= now() - %(grace)s)
    OR EXISTS (SELECT 1 FROM face_embeddings f WHERE f.source_image_path = m.storage_path) AS shared
"""


class MediaFileRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def register(self, camera_id: UUID | str, storage_path: str, *, checksum: str, file_size: int,
                       mime_type: str, timestamp: datetime, retention_until: datetime,
                       event_id: UUID | str | None = None) -> MediaFile:
        """Record an object already written to object storage."""
        if not isinstance(checksum, str) or not _SHA256_HEX.match(checksum):
            raise InvalidArgument("checksum", "must be a SHA-256 digest in lowercase hex")
        if not isinstance(file_size, int) or isinstance(file_size, bool) or file_size < 0:
            raise InvalidArgument("file_size", "must be a non-negative integer")
        if not storage_path:
            raise InvalidArgument("storage_path", "is required")
        values = {
            "camera_id": as_uuid("camera_id", camera_id), "storage_path": storage_path, "checksum": checksum,
            "file_size": file_size, "file_type": file_type_of(mime_type), "timestamp": aware("timestamp", timestamp),
            "retention_until": aware("retention_until", retention_until),
            "event_id": optional_uuid("event_id", event_id),
        }
        return await insert_row(self.conn, "media_files", values, MediaFile, _COLUMNS, "media_file")

    async def get(self, media_id: UUID | str) -> MediaFile:
        media_id = as_uuid("media_id", media_id)
        found = await fetch_one(
            self.conn,
            MediaFile,
            sql.SQL("SELECT {} FROM media_files WHERE id = %s AND purging_at IS NULL").format(_COLUMNS),
            (media_id,),
        )
        if found is None:
            raise NotFound("media_file", media_id)
        return found

    async def list(self, *, camera_ids: Iterable[UUID | str] | None = None, event_id: UUID | str | None = None,
                   file_types: Iterable[str] | None = None, since: datetime | None = None,
                   until: datetime | None = None, page_size: int = 0,
                   page_token: str | None = None) -> Page[MediaFile]:
        """Newest capture first. Lists match any of their values (empty or None: no condition);
        `since` is inclusive, `until` exclusive."""
        filters = Filters().raw("purging_at IS NULL")  # marked rows are being deleted (media_retention job)
        file_types = None if file_types is None else list(file_types)
        filters.any("camera_id", uuid_list("camera_ids", camera_ids or None))
        filters.eq("event_id", optional_uuid("event_id", event_id))
        filters.any("file_type", file_types or None, cast="media_file_type_enum")
        filters.range("timestamp", aware("since", since), aware("until", until))
        return await fetch_page(self.conn, MediaFile, select=_COLUMNS, table="media_files", filters=filters,
                                keyset=_NEWEST_FIRST, page_size=page_size, page_token=page_token,
                                resource="media_file", values={"file_types": file_types})

    async def list_expired(self, *, page_size: int = 0, page_token: str | None = None) -> Page[MediaFile]:
        """Media whose retention ended more than RETENTION_GRACE ago (exactly what purge_expired()
        removes), oldest expiry first, in batches: delete each batch's objects, then its rows."""
        return await fetch_page(self.conn, MediaFile, select=_COLUMNS, table="media_files",
                                filters=Filters().raw("retention_until < now() - %s", RETENTION_GRACE),
                                keyset=_OLDEST_EXPIRY_FIRST, page_size=page_size, page_token=page_token,
                                resource="media_file")

    async def delete(self, media_id: UUID | str) -> None:
        """Remove one row (its clips go with it); delete the object from object storage first."""
        await delete_row(self.conn, "media_files", as_uuid("media_id", media_id), "media_file")

    async def purge_expired(self) -> int:
        """Rows of media past retention + 7 days, via fn_cleanup_expired_media (which writes an
        audit row); only after their objects are gone. Returns how many media rows went."""
        async with guarded(self.conn, "media_file"):
            cur = await self.conn.execute("SELECT fn_cleanup_expired_media() AS deleted")
            return (await cur.fetchone())["deleted"]

    async def mark_for_purge(self, limit: int) -> list[PurgeCandidate]:
        """Mark up to `limit` rows past retention + RETENTION_GRACE as being deleted (purging_at;
        rows marked earlier come first) and return them; rows another transaction holds are skipped.
        From the commit on, every reader treats them as deleted."""
        cur = await self.conn.execute(_MARK_FOR_PURGE, {"grace": RETENTION_GRACE, "limit": limit})
        return [PurgeCandidate(row["id"], row["storage_path"], row["shared"]) for row in await cur.fetchall()]

    async def delete_marked(self, media_ids: Sequence[UUID]) -> int:
        """Delete marked rows (their clips go with them) whose objects are gone; how many went."""
        cur = await self.conn.execute("DELETE FROM media_files WHERE id = ANY(%s) AND purging_at IS NOT NULL",
                                      (list(media_ids),))
        return cur.rowcount
