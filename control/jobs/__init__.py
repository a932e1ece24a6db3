"""Scheduled jobs of the control plane (scheduler.py) and the jobs themselves.

    app.jobs.start()                      # APScheduler, schedules from settings.jobs
    await app.jobs.run("media_retention")  # now, if this replica gets the job's lock
"""

from __future__ import annotations

from vigil.control.jobs.clusters import consolidate_clusters
from vigil.control.jobs.devices import check_devices
from vigil.control.jobs.gallery import calibrate_galleries
from vigil.control.jobs.media import purge_expired_media
from vigil.control.jobs.partitions import maintain_partitions, purge_ingest_state
from vigil.control.jobs.scheduler import Job, JobContext, JobRunner, RunOutcome

__all__ = ["Job", "JobContext", "JobRunner", "RunOutcome", "build_jobs"]


def build_jobs(context: JobContext) -> JobRunner:
    s = context.settings.jobs
    return JobRunner(context, [
        Job("partitions", "Create upcoming monthly partitions and drop those past retention.",
            maintain_partitions, s.partitions),
        Job("media_retention", "Delete media past retention: objects first, then rows, in batches.",
            purge_expired_media, s.media_retention),
        Job("cluster_consolidation", "Merge unknown-face clusters whose representatives match.",
            consolidate_clusters, s.cluster_consolidation),
        Job("device_health", "Mark cameras and DVRs offline or online from the frames nodes report.",
            check_devices, s.device_health),
        Job("ingest_state", "Purge ingest idempotency keys and track mappings older than 8 days.",
            purge_ingest_state, s.ingest_state),
        Job("gallery_calibration", "Measure each grown face gallery's 1:N identification threshold again.",
            calibrate_galleries, s.gallery_calibration),
    ])
