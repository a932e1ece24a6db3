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
from vigil.storage.repositories.media import MediaFileRepository

log = get_logger("vigil.control.jobs.media")


async def purge_expired_media(app) -> dict[str, Any]:
    batch_size = app.settings.jobs.media_batch_size
    totals = {"rows": 0, "objects": 0, "kept_shared": 0, "failed": 0, "batches": 0}
    while True:
        async with app.pool.connection() as conn, conn.transaction():
            batch = await MediaFileRepository(conn).mark_for_purge(batch_size)
        if not batch:
            return totals
        gone: list[UUID] = []
        for media in batch:
            if media.shared:
                totals["kept_shared"] += 1
                gone.append(media.id)
                continue
            try:
                await asyncio.to_thread(app.objects.delete, media.storage_path)
            except Exception as exc:  # noqa: BLE001 - the row stays marked; the next run retries
                totals["failed"] += 1
                log.warning("media object not deleted; retried next run", media_id=str(media.id), error=str(exc))
                continue
            totals["objects"] += 1
            gone.append(media.id)
        if gone:
            async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
                deleted = await MediaFileRepository(conn).delete_marked(gone)
                totals["rows"] += deleted
                await AuditLogRepository(conn).record("media.purge", "media_file", details={
                    "deleted_media": deleted, "media_ids": [str(i) for i in gone[:50]]})
        totals["batches"] += 1
        if len(gone) < len(batch):  # failures: stop here rather than spin on them
            return totals
