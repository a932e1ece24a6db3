"""Job "media_retention": delete media whose retention ended more than 7 days ago, in batches.

Per batch, three steps, each safe to stop after:
  1. mark the batch's rows (media_files.purging_at) and commit: from then on every reader treats
     them as deleted, so nobody is handed a row whose object is about to go;
  2. delete their objects from object storage (idempotent; an object still named by a live media
     row or by an enrolled/cluster face is kept, since snapshots double as face images);
  3. delete the rows whose objects are gone (their video_clips go with them) and audit the batch.
A crash after 1 or 2 leaves marked rows, which the next run finishes first. Rows are never deleted
before their objects, so no object is ever orphaned by this job.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from vigil.logs import get_logger
from vigil.storage.db import acting_as
from vigil.storage.repositories.audit import AuditLogRepository
from vigil.storage.repositories.media import RETENTION_GRACE

log = get_logger("vigil.control.jobs.media")

_MARK = """
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


async def purge_expired_media(app) -> dict[str, Any]:
    batch_size = app.settings.jobs.media_batch_size
    totals = {"rows": 0, "objects": 0, "kept_shared": 0, "failed": 0, "batches": 0}
    while True:
        async with app.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_MARK, {"grace": RETENTION_GRACE, "limit": batch_size})
            batch = await cur.fetchall()
        if not batch:
            return totals
        gone: list[UUID] = []
        for row in batch:
            if row["shared"]:
                totals["kept_shared"] += 1
                gone.append(row["id"])
                continue
            try:
                await asyncio.to_thread(app.objects.delete, row["storage_path"])
            except Exception as exc:  # noqa: BLE001 - the row stays marked; the next run retries
                totals["failed"] += 1
                log.warning("media object not deleted; retried next run", media_id=str(row["id"]), error=str(exc))
                continue
            totals["objects"] += 1
            gone.append(row["id"])
        if gone:
            async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
                cur = await conn.execute("DELETE FROM media_files WHERE id = ANY(%s) AND purging_at IS NOT NULL",
                                         (gone,))
                totals["rows"] += cur.rowcount
                await AuditLogRepository(conn).record("media.purge", "media_file", details={
                    "deleted_media": cur.rowcount, "media_ids": [str(i) for i in gone[:50]]})
        totals["batches"] += 1
        if len(gone) < len(batch):  # failures: stop here rather than spin on them
            return totals
