"""The record of scheduled-job runs (scheduled_job_runs): one row per run on the replica that ran
it, started, then finished with its outcome; JobService.ListJobs shows the latest of each job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class JobRun:
    id: int
    job_name: str
    replica: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    detail: dict[str, Any]
    error: str | None


class JobRunRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def ran_within(self, job_name: str, period: timedelta) -> bool:
        """Whether a run of the job started in the last `period` (on any replica)."""
        cur = await self.conn.execute(
            "SELECT 1 FROM scheduled_job_runs WHERE job_name = %s AND started_at > now() - %s LIMIT 1",
            (job_name, period))
        return await cur.fetchone() is not None

    async def start(self, job_name: str, replica: str) -> int:
        """A run begins (outcome 'running'); its id."""
        cur = await self.conn.execute(
            "INSERT INTO scheduled_job_runs (job_name, replica) VALUES (%s, %s) RETURNING id", (job_name, replica))
        return (await cur.fetchone())["id"]

    async def prune(self, job_name: str, older_than: timedelta) -> None:
        await self.conn.execute("DELETE FROM scheduled_job_runs WHERE job_name = %s AND started_at < now() - %s",
                                (job_name, older_than))

    async def finish(self, run_id: int, outcome: str, detail: dict[str, Any], error: str | None) -> None:
        await self.conn.execute(
            "UPDATE scheduled_job_runs SET finished_at = now(), outcome = %s, detail = %s, error = %s WHERE id = %s",
            (outcome, Jsonb(detail), error, run_id))

    async def cancel(self, run_id: int) -> None:
        """The run was cut short: its replica stopped."""
        await self.conn.execute("UPDATE scheduled_job_runs SET finished_at = now(), outcome = 'failed',"
                                " error = 'cancelled: the replica stopped' WHERE id = %s", (run_id,))

    async def latest(self) -> dict[str, JobRun]:
        """The latest run of every job (any replica)."""
        cur = await self.conn.execute(
            "SELECT DISTINCT ON (job_name) id, job_name, replica, started_at, finished_at, outcome, detail, error"
            " FROM scheduled_job_runs ORDER BY job_name, started_at DESC, id DESC")
        return {row["job_name"]: JobRun(**row) for row in await cur.fetchall()}
