"""The job scheduler across two real control-plane replicas on the same stack: a job runs on one
replica at a time, a slot one replica ran is skipped by the other, APScheduler fires jobs from
their configured schedules, and runs are visible through JobService."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.fixtures.control import replica
from vigil.api.v1 import job_pb2 as pb
from vigil.control.jobs.scheduler import Job
from vigil.settings import JobSchedule


def sleeper(counter: list, seconds: float):
    async def run(context):
        counter.append(context.replica)
        await asyncio.sleep(seconds)
        return {"slept_s": seconds}
    return run


async def test_two_replicas_run_a_job_once_at_a_time(app, stack, settings):
    ran: list[str] = []
    async with replica(stack, settings) as (_, other):
        for runner in (app.jobs, other.jobs):
            runner.jobs["test_sleep"] = Job("test_sleep", "sleeps", sleeper(ran, 1.0), JobSchedule(interval_s=3600))
        first, second = await asyncio.gather(app.jobs.run("test_sleep"), other.jobs.run("test_sleep"))
        assert sorted([first.outcome, second.outcome]) == ["skipped", "succeeded"]
        assert len(ran) == 1
        skipped = first if first.outcome == "skipped" else second
        assert skipped.reason == "another replica is running it"
        # a scheduled firing of the same slot on the other replica is skipped: one run per slot
        again = await other.jobs.run("test_sleep", forced=False)
        assert (again.ran, again.reason) == (False, "this slot ran on another replica")
        assert len(ran) == 1
        app.jobs.jobs.pop("test_sleep")


async def test_schedules_fire_on_both_replicas_and_run_once_per_slot(app, stack, settings, db):
    ran: list[str] = []
    enabled = settings.model_copy(update={"jobs": settings.jobs.model_copy(update={"enabled": True})})
    async with replica(stack, enabled) as (_, one), replica(stack, enabled) as (_, two):
        await one.jobs.stop()
        await two.jobs.stop()  # rescheduled below with only the test job, every second
        for runner in (one.jobs, two.jobs):
            runner.jobs = {"test_tick": Job("test_tick", "ticks", sleeper(ran, 0.0), JobSchedule(interval_s=1.0))}
            runner.start()
        await asyncio.sleep(4.5)
        await one.jobs.stop()
        await two.jobs.stop()
    # two replicas firing every second for ~4.5 s: one run per slot, not two
    assert 3 <= len(ran) <= 6
    rows = db.execute("SELECT replica, outcome FROM scheduled_job_runs WHERE job_name = 'test_tick'").fetchall()
    assert len(rows) == len(ran) and {r[1] for r in rows} == {"succeeded"}


async def test_job_service_lists_runs_and_checks_requests(app, jobs, as_role):
    run = await jobs.RunJob(pb.RunJobRequest(name="ingest_state"), metadata=as_role("super_admin"))
    assert run.run.outcome == pb.JOB_OUTCOME_SUCCEEDED and run.run.HasField("duration")
    listed = await jobs.ListJobs(pb.ListJobsRequest(), metadata=as_role("admin"))
    by_name = {j.name: j for j in listed.jobs}
    assert {"partitions", "media_retention", "cluster_consolidation", "device_health", "ingest_state",
            "gallery_calibration"} <= set(by_name)
    assert by_name["partitions"].cron == "15 3 * * *"
    assert by_name["device_health"].interval.seconds == 15
    last = by_name["ingest_state"].last_run
    assert last.outcome == pb.JOB_OUTCOME_SUCCEEDED and last.replica == app.jobs.replica
    assert set(last.detail.keys()) == {"ingest_batches", "track_events"}

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await jobs.RunJob(pb.RunJobRequest(), metadata=as_role("super_admin"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in refused.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await jobs.RunJob(pb.RunJobRequest(name="nope"), metadata=as_role("super_admin"))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await jobs.RunJob(pb.RunJobRequest(name="partitions"), metadata=as_role("admin"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_failing_job_is_recorded_as_failed(app, db):
    async def broken(app):
        raise RuntimeError("disk on fire")

    app.jobs.jobs["test_broken"] = Job("test_broken", "fails", broken, JobSchedule(interval_s=3600))
    try:
        outcome = await app.jobs.run("test_broken")
    finally:
        app.jobs.jobs.pop("test_broken")
    assert outcome.outcome == "failed" and "disk on fire" in outcome.error
    row = db.execute("SELECT outcome, error, finished_at IS NOT NULL FROM scheduled_job_runs"
                     " WHERE job_name = 'test_broken' ORDER BY id DESC LIMIT 1").fetchone()
    assert row[0] == "failed" and "disk on fire" in row[1] and row[2]
