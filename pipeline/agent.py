"""The node agent: registers the node with the control plane, heartbeats its load, follows its
stream assignments and runs them on a backend whose track batches go out through the publisher.

  register (retried until the control plane answers) → publisher + backend start
  → heartbeat loop (re-registers on NOT_FOUND / OFFLINE; stops every stream when it cannot
    heartbeat for a whole lease, since the control plane has given them to other nodes by then)
  → watch loop (snapshot: run exactly what is listed; then ADD / UPDATE / REMOVE as they come;
    reconnects with back-off and reconciles against the next snapshot)
  → clip jobs arrive in heartbeat responses: cut from the stream's buffer, uploaded, reported
    with CompleteClip; /metrics shows each heartbeat's figures (pipeline/metrics.py)
  GPUs (pipeline/gpu.py) are described at registration and their load read at each heartbeat.
  → on stop: streams end (their tracks END and are published), the publisher flushes or spools.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import av
import grpc
import psutil
from google.protobuf.duration_pb2 import Duration

from vigil import __version__ as vigil_version
from vigil.api.v1 import node_pb2 as pb
from vigil.api.v1 import node_pb2_grpc
from vigil.logs import get_logger
from vigil.pipeline.backend import Backend
from vigil.pipeline.gpu import GpuProbe, GpuReading
from vigil.pipeline.metrics import NodeMetrics
from vigil.pipeline.publisher import Publisher
from vigil.pipeline.recording import ClipUnavailable
from vigil.pipeline.streams import StreamSpec
from vigil.storage.objectstore import ObjectStore

log = get_logger("vigil.pipeline.agent")

RETRY = (0.5, 10.0)  # back-off of registration and watch reconnects: first, cap


@dataclass(frozen=True)
class NodeIdentity:
    id: uuid.UUID
    name: str
    capacity_streams: int
    embedding_model_version: str
    labels: dict[str, str]

    @classmethod
    def load(cls, id_file: Path, name: str, capacity: int, model_version: str,
             labels: dict[str, str] | None = None) -> NodeIdentity:
        """The node id is generated once and kept, so a restarted node updates its own record."""
        id_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            node_id = uuid.UUID(id_file.read_text().strip())
        except (OSError, ValueError):
            node_id = uuid.uuid4()
            partial = id_file.with_suffix(".part")
            partial.write_text(f"{node_id}\n")
            partial.replace(id_file)
        return cls(node_id, name, capacity, model_version, dict(labels or {}))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions(backend: Backend) -> dict[str, str]:
    versions = {"vigil": vigil_version, "python": platform.python_version()}
    for module, key in (("onnxruntime", "onnxruntime"), ("av", "pyav"), ("pyds", "deepstream")):
        try:
            versions[key] = str(getattr(__import__(module), "__version__", "unknown"))
        except ImportError:
            continue
    return versions


def gpu_info(gpu: GpuReading) -> pb.GpuInfo:
    return pb.GpuInfo(index=gpu.index, name=gpu.name[:256], uuid=gpu.uuid[:128],
                      memory_total_bytes=gpu.memory_total_bytes, compute_capability=gpu.compute_capability[:16])


def _fraction(value: float) -> float:
    return min(max(value, 0.0), 1.0)  # the control plane refuses a heartbeat with a value outside [0, 1]


def gpu_stats(gpu: GpuReading) -> pb.GpuStats:
    return pb.GpuStats(index=gpu.index, utilization=_fraction(gpu.utilization),
                       memory_used_bytes=gpu.memory_used_bytes, decoder_utilization=_fraction(gpu.decoder_utilization),
                       encoder_utilization=_fraction(gpu.encoder_utilization),
                       temperature_celsius=gpu.temperature_celsius)


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


class NodeAgent:
    def __init__(self, identity: NodeIdentity, channel: grpc.aio.Channel, api_key: str, backend: Backend,
                 publisher: Publisher, gpus: GpuProbe | None = None):
        self.identity = identity
        self.stub = node_pb2_grpc.NodeServiceStub(channel)
        self.metadata = (("authorization", f"Bearer {api_key}"),)
        self.backend = backend
        self.publisher = publisher
        self.heartbeat_interval = 2.0
        self.lease = 10.0
        self._last_heartbeat_ok = time.monotonic()
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first reading starts the measuring window
        self._log = log.bind(node_id=str(identity.id), node=identity.name)
        self.metrics = NodeMetrics()
        self.gpus = gpus or GpuProbe()
        self.uploads: ObjectStore | None = None  # where clips go; None: clip jobs are answered as failed
        self._clip_tasks: set[asyncio.Task] = set()

    # --- registration ------------------------------------------------------------------------

    def describe(self) -> pb.Node:
        return pb.Node(
            id=str(self.identity.id), name=self.identity.name, hostname=socket.gethostname()[:255],
            backend=self.backend.node_backend, capacity_streams=self.identity.capacity_streams,
            gpus=[gpu_info(g) for g in self.gpus.read()],
            cpu=pb.CpuInfo(model=_cpu_model()[:200], logical_cores=len(os.sched_getaffinity(0)),
                           memory_total_bytes=psutil.virtual_memory().total),
            versions=_versions(self.backend), embedding_model_version=self.identity.embedding_model_version,
            labels=self.identity.labels)

    async def register(self, stop: asyncio.Event | None = None) -> None:
        """RegisterNode, retried with back-off while the control plane is unreachable."""
        delay = RETRY[0]
        while True:
            node = self.describe()
            try:
                response = await self.stub.RegisterNode(pb.RegisterNodeRequest(node=node),
                                                        metadata=self.metadata, timeout=10)
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED,
                                  grpc.StatusCode.PERMISSION_DENIED):
                    raise RegistrationRefused(f"{exc.code().name}: {exc.details()}") from exc
                self._log.warning("control plane unreachable; retrying registration", code=exc.code().name,
                                  retry_in_s=round(delay, 1))
            if stop is not None and stop.is_set():
                raise asyncio.CancelledError
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, RETRY[1])
        self.heartbeat_interval = response.heartbeat_interval.ToTimedelta().total_seconds() or 2.0
        self.lease = response.lease_duration.ToTimedelta().total_seconds() or 10.0
        self._last_heartbeat_ok = time.monotonic()
        self.metrics.registered(node)
        self._log.info("registered", state=pb.NodeState.Name(response.node.state),
                       heartbeat_s=self.heartbeat_interval, lease_s=self.lease)

    # --- run ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await self.register(stop)
        await self.publisher.start()
        await self.backend.start()
        tasks = [asyncio.create_task(self._heartbeats(stop), name="heartbeat"),
                 asyncio.create_task(self._watch(stop), name="watch")]
        try:
            await stop.wait()
        finally:
            for task in [*tasks, *self._clip_tasks]:
                task.cancel()
            await asyncio.gather(*tasks, *self._clip_tasks, return_exceptions=True)
            await self.backend.stop()  # open tracks END and are handed to the publisher
            await self.publisher.close()
            self.gpus.close()
            self._log.info("node stopped", publisher=self.publisher.stats())

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.heartbeat_interval)
            try:
                response = await self.stub.Heartbeat(self.heartbeat(), metadata=self.metadata,
                                                     timeout=max(self.heartbeat_interval, 2.0))
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    await self.register(stop)
                    continue
                self._log.warning("heartbeat failed", code=exc.code().name, details=exc.details())
                if time.monotonic() - self._last_heartbeat_ok > self.lease and self.backend.stream_ids():
                    # the control plane has moved these cameras to other nodes by now
                    self._log.warning("lease lost: stopping every stream until the control plane is back")
                    for camera_id in list(self.backend.stream_ids()):
                        await self.backend.remove_stream(camera_id)
                continue
            self._last_heartbeat_ok = time.monotonic()
            for job in response.clip_jobs:  # each on its own task: cutting and uploading take a while
                task = asyncio.create_task(self._clip(job), name=f"clip-{job.clip_id}")
                self._clip_tasks.add(task)
                task.add_done_callback(self._clip_tasks.discard)
            if response.heartbeat_interval.ToTimedelta().total_seconds():
                self.heartbeat_interval = response.heartbeat_interval.ToTimedelta().total_seconds()
            if response.state == pb.NODE_STATE_OFFLINE:
                await self.register(stop)  # the control plane gave up on us; say we are back

    def heartbeat(self) -> pb.HeartbeatRequest:
        published = self.publisher.stats()
        depths = dict(self.backend.queue_depths())
        depths["publish"] = depths.get("publish", 0) + published.queue_depth
        stats = pb.NodeStats(
            cpu_utilization=min(self._process.cpu_percent(None) / 100 / max(psutil.cpu_count() or 1, 1), 1.0),
            memory_used_bytes=self._process.memory_info().rss, queue_depths=depths,
            inference_duration=_duration(self.backend.inference_seconds()), unacked_batches=published.unacked,
            spooled_batches=published.spooled_batches, spooled_bytes=published.spooled_bytes,
            gpus=[gpu_stats(g) for g in self.gpus.read()])
        request = pb.HeartbeatRequest(node_id=str(self.identity.id), stats=stats, streams=self.backend.stream_stats())
        self.metrics.observe(request)
        return request

    async def _clip(self, job: pb.ClipJob) -> None:
        """Cut the clip from the stream's buffer (stream copy), upload it, report it. A clip that
        cannot be cut is reported as failed; one whose report is lost is handed out again."""
        start, end = job.start_time.ToDatetime(UTC), job.end_time.ToDatetime(UTC)
        done = pb.CompleteClipRequest(node_id=str(self.identity.id), clip_id=job.clip_id)
        try:
            if self.uploads is None:
                raise ClipUnavailable("this node has no object storage to upload clips to")
            clip = await asyncio.to_thread(self.backend.cut_clip, uuid.UUID(job.camera_id), start, end)
            await asyncio.to_thread(self.uploads.put, job.storage_path, clip.data, content_type="video/mp4")
            done.size_bytes, done.checksum = len(clip.data), clip.checksum
            done.start_time.FromDatetime(clip.start_time)
            done.end_time.FromDatetime(clip.end_time)
            outcome = "ready"
        except (ClipUnavailable, ValueError, OSError, av.FFmpegError) as exc:
            done.error = str(exc)[:1000] or type(exc).__name__
            outcome = "failed"
        try:
            await self.stub.CompleteClip(done, metadata=self.metadata, timeout=10)
        except grpc.aio.AioRpcError as exc:
            self._log.warning("clip not reported; the control plane hands it out again", clip_id=job.clip_id,
                              code=exc.code().name)
            return
        self.metrics.clips.labels(outcome=outcome).inc()
        self._log.info("clip cut", clip_id=job.clip_id, camera_id=job.camera_id, outcome=outcome,
                       error=done.error or None, size_bytes=done.size_bytes or None)

    async def _watch(self, stop: asyncio.Event) -> None:
        delay = RETRY[0]
        while not stop.is_set():
            try:
                call = self.stub.WatchAssignments(pb.WatchAssignmentsRequest(node_id=str(self.identity.id)),
                                                  metadata=self.metadata)
                async for message in call:
                    delay = RETRY[0]
                    await self.apply(message)
                self._log.info("assignment stream ended; reconnecting")
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    await self.register(stop)
                    continue
                self._log.warning("assignment stream failed", code=exc.code().name, retry_in_s=round(delay, 1))
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, RETRY[1])

    async def apply(self, message: pb.WatchAssignmentsResponse) -> None:
        """Run exactly the snapshot's streams, or apply one message's changes in order."""
        if message.snapshot:
            listed = {uuid.UUID(c.camera_id) for c in message.changes if c.kind == pb.ASSIGNMENT_CHANGE_KIND_ADD}
            for camera_id in self.backend.stream_ids() - listed:
                await self.backend.remove_stream(camera_id)
        for change in message.changes:
            try:
                if change.kind == pb.ASSIGNMENT_CHANGE_KIND_REMOVE:
                    await self.backend.remove_stream(uuid.UUID(change.camera_id))
                elif change.kind == pb.ASSIGNMENT_CHANGE_KIND_ADD:
                    await self.backend.add_stream(StreamSpec.from_assignment(change.assignment))
                elif change.kind == pb.ASSIGNMENT_CHANGE_KIND_UPDATE:
                    await self.backend.update_stream(StreamSpec.from_assignment(change.assignment))
            except ValueError as exc:  # a malformed assignment must not stop the others
                self._log.error("assignment not applied", camera_id=change.camera_id, error=str(exc))
            self._log.info("assignment applied", change=pb.AssignmentChangeKind.Name(change.kind),
                           camera_id=change.camera_id)


class RegistrationRefused(RuntimeError):
    """The control plane answered, and said no: retrying will not help."""
