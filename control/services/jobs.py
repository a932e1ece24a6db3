"""JobService: the scheduled jobs, their schedules and latest runs (system:read), and running one
now (system:configure, super_admin only by default)."""

from __future__ import annotations

from datetime import timedelta

from google.protobuf import duration_pb2, struct_pb2

from vigil.api.v1 import job_pb2 as pb
from vigil.api.v1 import job_pb2_grpc
from vigil.control.convert import timestamp
from vigil.control.jobs.scheduler import JobRunner, RunOutcome
from vigil.control.rpc import rpc
from vigil.errors import InvalidArgument, NotFound
from vigil.settings import JobsSettings
from vigil.storage.repositories.jobs import JobRun

OUTCOME = {"running": pb.JOB_OUTCOME_RUNNING, "succeeded": pb.JOB_OUTCOME_SUCCEEDED,
           "failed": pb.JOB_OUTCOME_FAILED, "skipped": pb.JOB_OUTCOME_SKIPPED}


def _duration(delta: timedelta) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromTimedelta(delta)
    return d


def _struct(values: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def run_message(run: JobRun) -> pb.JobRun:
    message = pb.JobRun(job_name=run.job_name, replica=run.replica, start_time=timestamp(run.started_at),
                        finish_time=timestamp(run.finished_at), outcome=OUTCOME[run.outcome],
                        detail=_struct(run.detail or {}), error=run.error or "")
    if run.finished_at is not None:
        message.duration.CopyFrom(_duration(run.finished_at - run.started_at))
    return message


class JobService(job_pb2_grpc.JobServiceServicer):
    def __init__(self, jobs: JobRunner, settings: JobsSettings):
        self.jobs = jobs
        self.settings = settings

    @rpc("system", "read")
    async def ListJobs(self, request, context):
        runner = self.jobs
        last = await runner.last_runs()
        jobs = []
        for job in sorted(runner.jobs.values(), key=lambda j: j.name):
            message = pb.Job(name=job.name, description=job.description, cron=job.schedule.cron or "",
                             enabled=self.settings.enabled and job.schedule.enabled,
                             next_run_time=timestamp(runner.next_run_time(job.name)))
            if not job.schedule.cron:
                message.interval.CopyFrom(_duration(timedelta(seconds=job.schedule.interval_s)))
            if job.name in last:
                message.last_run.CopyFrom(run_message(last[job.name]))
            jobs.append(message)
        return pb.ListJobsResponse(jobs=jobs)

    @rpc("system", "configure")
    async def RunJob(self, request, context):
        if not request.name:
            raise InvalidArgument("name", f"is required: one of {', '.join(sorted(self.jobs.jobs))}")
        if request.name not in self.jobs.jobs:
            raise NotFound("job", request.name)
        outcome: RunOutcome = await self.jobs.run(request.name)
        if not outcome.ran:
            return pb.RunJobResponse(run=pb.JobRun(job_name=request.name, replica=self.jobs.replica,
                                                   outcome=pb.JOB_OUTCOME_SKIPPED), skip_reason=outcome.reason)
        run = (await self.jobs.last_runs())[request.name]
        return pb.RunJobResponse(run=run_message(run))


SERVICE = (JobService, job_pb2_grpc.add_JobServiceServicer_to_server, "vigil.v1.JobService")
