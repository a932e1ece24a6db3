"""Scheduled jobs of the control plane: APScheduler fires them on every replica, and a PostgreSQL
advisory lock lets exactly one replica run a job at a time.

Each run, on the replica that wins the lock:
  * skips when another replica already ran the job for this schedule slot (a run started within
    SLOT_FRACTION of the schedule's period: replicas' interval timers are out of phase), so N
    replicas give one run per slot, not N;
  * records itself in scheduled_job_runs (running → succeeded/failed, duration, what it did), which
    JobService.ListJobs shows;
  * holds a session-level advisory lock on a connection of its own for the whole run: jobs that
    commit in batches (media retention) keep it across their transactions, and a replica that dies
    mid-run releases it with its connection.

    runner = JobRunner(JobContext(pool, objects, settings, metrics, replica), jobs)   # app.jobs
    runner.start()                     # schedules from settings.jobs
    await runner.run("partitions")     # now, on this replica (JobService.RunJob)
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from psycopg_pool import AsyncConnectionPool

from vigil.control.metrics import ControlMetrics
from vigil.logs import get_logger
from vigil.settings import JobSchedule, VigilSettings
from vigil.storage.locks import try_session_lock, unlock_session_lock
from vigil.storage.objectstore import ObjectStore
from vigil.storage.repositories.jobs import JobRun, JobRunRepository

log = get_logger("vigil.control.jobs")

JobFunction = Callable[[Any], Awaitable[dict[str, Any]]]
SLOT_FRACTION = 0.8
RUN_HISTORY = timedelta(days=30)  # scheduled_job_runs rows older than this are pruned by the job's next run
MAX_ERROR = 2000


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    function: JobFunction
    schedule: JobSchedule


@dataclass(frozen=True)
class JobContext:
    """What the jobs (and the runner) use of their replica; each job function takes one."""

    pool: AsyncConnectionPool
    objects: ObjectStore
    settings: VigilSettings
    metrics: ControlMetrics
    replica: str  # this replica's name in scheduled_job_runs and the health log


@dataclass(frozen=True)
class RunOutcome:
    job: str
    ran: bool  # False: another replica held the lock, or ran this slot already
    outcome: str  # succeeded | failed | skipped
    detail: dict[str, Any]
    error: str | None = None
    duration_s: float = 0.0
    reason: str = ""  # why it was skipped


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def trigger_of(schedule: JobSchedule):
    if schedule.cron:
        return CronTrigger.from_crontab(schedule.cron, timezone="UTC")
    return IntervalTrigger(seconds=schedule.interval_s, timezone="UTC")


def period_of(schedule: JobSchedule) -> timedelta:
    """Time between two slots of the schedule (for cron: between its next two fire times)."""
    if not schedule.cron:
        return timedelta(seconds=schedule.interval_s)
    trigger = trigger_of(schedule)
    now = datetime.now(UTC)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    return second - first


class JobRunner:
    def __init__(self, context: JobContext, jobs: list[Job]):
        self.context = context
        self.jobs = {job.name: job for job in jobs}
        self.replica = context.replica
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task] = set()

    def start(self) -> None:
        if not self.context.settings.jobs.enabled or self._scheduler is not None:
            return
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        for job in self.jobs.values():
            if job.schedule.enabled:
                self._scheduler.add_job(self._scheduled, trigger_of(job.schedule), args=[job.name], id=job.name,
                                        name=job.name, max_instances=1, coalesce=True, misfire_grace_time=60)
        # every replica logs its own figures: no lock, not a run of the fleet
        self._scheduler.add_job(
            self._log_health,
            IntervalTrigger(seconds=self.context.settings.jobs.health_log_interval_s),
            id="control_health",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.start()
        log.info("job scheduler started", jobs=[j.name for j in self.jobs.values() if j.schedule.enabled])

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    def next_run_time(self, name: str) -> datetime | None:
        if self._scheduler is None:
            return None
        scheduled = self._scheduler.get_job(name)
        return scheduled.next_run_time if scheduled is not None else None

    async def _log_health(self) -> None:
        from vigil.control.jobs.health import log_control_health

        try:
            await log_control_health(self.context)
        except Exception as exc:  # noqa: BLE001 - the database may be down; the next interval tries again
            log.warning("control-plane health not logged", error=str(exc))

    async def _scheduled(self, name: str) -> None:
        task = asyncio.current_task()
        self._running.add(task)
        try:
            await self.run(name, forced=False)
        except Exception:
            log.exception("scheduled job crashed", job=name)
        finally:
            self._running.discard(task)

    async def run(self, name: str, *, forced: bool = True) -> RunOutcome:
        """Run the job now if this replica gets its lock. `forced` (an operator's RunJob) ignores
        whether this slot already ran; a scheduled firing does not."""
        job = self.jobs[name]
        metrics = self.context.metrics
        async with self.context.pool.connection() as lock_conn:
            await lock_conn.set_autocommit(True)
            try:
                if not await try_session_lock(lock_conn, f"vigil.job.{name}"):
                    metrics.job_runs.labels(job=name, outcome="skipped").inc()
                    return RunOutcome(name, False, "skipped", {}, reason="another replica is running it")
                try:
                    if not forced and await self._ran_this_slot(lock_conn, job):
                        metrics.job_runs.labels(job=name, outcome="skipped").inc()
                        return RunOutcome(name, False, "skipped", {}, reason="this slot ran on another replica")
                    return await self._execute(lock_conn, job)
                finally:
                    await unlock_session_lock(lock_conn, f"vigil.job.{name}")
            finally:
                await lock_conn.set_autocommit(False)

    async def _ran_this_slot(self, conn, job: Job) -> bool:
        return await JobRunRepository(conn).ran_within(job.name, period_of(job.schedule) * SLOT_FRACTION)

    async def _execute(self, conn, job: Job) -> RunOutcome:
        runs = JobRunRepository(conn)
        run_id = await runs.start(job.name, self.replica)
        await runs.prune(job.name, RUN_HISTORY)
        started = time.perf_counter()
        bound = log.bind(job=job.name, run_id=run_id)
        try:
            detail = await job.function(self.context) or {}
            outcome, error = "succeeded", None
        except asyncio.CancelledError:
            await runs.cancel(run_id)
            raise
        except Exception as exc:  # noqa: BLE001 - recorded as the run's outcome
            detail, outcome, error = {}, "failed", f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
            bound.exception("job failed")
        seconds = time.perf_counter() - started
        await runs.finish(run_id, outcome, detail, error)
        metrics = self.context.metrics
        metrics.job_runs.labels(job=job.name, outcome=outcome).inc()
        metrics.job_seconds.labels(job=job.name).observe(seconds)
        if outcome == "succeeded":
            metrics.job_last_success.labels(job=job.name).set(time.time())
            bound.info("job ran", seconds=round(seconds, 3), **{k: v for k, v in detail.items()
                                                                if isinstance(v, (int, float, str))})
        return RunOutcome(job.name, True, outcome, detail, error, seconds)

    async def last_runs(self) -> dict[str, JobRun]:
        """The latest run of every job (any replica)."""
        async with self.context.pool.connection() as conn:
            return await JobRunRepository(conn).latest()
