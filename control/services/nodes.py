"""NodeService: pipeline nodes register, heartbeat and watch the streams assigned to them;
operators list, drain, resume and delete them.

Permissions: a node's key (role api_client) needs nodes:write to register, heartbeat and watch;
managing the fleet (drain, resume, delete) is nodes:configure (super_admin, admin, operator);
reading is nodes:read. Assignments themselves are made by control.nodes.reconciler.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta

from google.protobuf import duration_pb2
from google.protobuf.message import Message

from vigil.api.v1 import node_pb2 as pb
from vigil.api.v1 import node_pb2_grpc
from vigil.control.convert import EnumMap, as_json, from_json, timestamp
from vigil.control.jobs.health import record_node_health
from vigil.control.nodes.runtime import WATCH_POLL_S, NodeRuntime
from vigil.control.nodes.streams import AssignmentTracker
from vigil.control.request_checks import (
    api_token,
    checked_text,
    instant,
    repository_token,
    required_id,
    required_message,
)
from vigil.control.rpc import rpc
from vigil.control.transactions import CallerDatabase
from vigil.errors import InvalidArgument
from vigil.logs import get_logger
from vigil.settings import ControlSettings
from vigil.storage.crypto import SecretBox
from vigil.storage.repositories.clips import ClipRepository
from vigil.storage.repositories.nodes import MAX_CAPACITY, Node, NodeRegistration, NodeRepository

log = get_logger("vigil.control.nodes")

BACKEND = EnumMap(pb.NodeBackend, "NODE_BACKEND_", "node.backend")
BACKEND_FILTER = EnumMap(pb.NodeBackend, "NODE_BACKEND_", "backends")
STATE = EnumMap(pb.NodeState, "NODE_STATE_", "state")
STATE_FILTER = EnumMap(pb.NodeState, "NODE_STATE_", "states")
STREAM_STATES = {v.number for v in pb.StreamState.DESCRIPTOR.values if v.number}

MAX_MAP_ENTRIES = 32
MAX_MAP_KEY = 64
MAX_MAP_VALUE = 128
MAX_STREAMS = MAX_CAPACITY
MAX_LAST_ERROR = 1000
MAX_DURATION_S = 315_576_000_000  # the Duration range of protobuf
INT64_MAX = 2**63 - 1


# --------------------------------------------------------------------------- checks of request fields


def non_negative(path: str, value: int) -> int:
    if value < 0:
        raise InvalidArgument(path, f"must not be negative, got {value}")
    return value


def fraction(path: str, value: float) -> float:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidArgument(path, f"must be within [0, 1], got {value}")
    return value


def finite_non_negative(path: str, value: float) -> float:
    if not (math.isfinite(value) and value >= 0.0):
        raise InvalidArgument(path, f"must be a finite number >= 0, got {value}")
    return value


def finite(path: str, value: float) -> float:
    if not math.isfinite(value):
        raise InvalidArgument(path, f"must be a finite number, got {value}")
    return value


def duration(message: Message, field: str, path: str) -> None:
    if not message.HasField(field):
        return
    d = getattr(message, field)
    if not (0 <= d.seconds <= MAX_DURATION_S and 0 <= d.nanos < 1_000_000_000):
        raise InvalidArgument(path, "must be a non-negative, valid duration")


def string_map(path: str, values: Mapping[str, str]) -> dict[str, str]:
    if len(values) > MAX_MAP_ENTRIES:
        raise InvalidArgument(path, f"must hold at most {MAX_MAP_ENTRIES} entries, got {len(values)}")
    for key, value in values.items():
        if not key.strip() or len(key) > MAX_MAP_KEY or "\x00" in key:
            raise InvalidArgument(path, f"keys must be 1..{MAX_MAP_KEY} characters without NUL, got {key[:80]!r}")
        checked_text(f"{path}[{key!r}]", value, MAX_MAP_VALUE)
    return dict(values)


def registration(request: pb.RegisterNodeRequest) -> NodeRegistration:
    node = required_message(request, "node")
    capacity = node.capacity_streams
    if not 1 <= capacity <= MAX_CAPACITY:
        raise InvalidArgument("node.capacity_streams", f"must be within 1..{MAX_CAPACITY}, got {capacity}")
    for i, gpu in enumerate(node.gpus):
        non_negative(f"node.gpus[{i}].index", gpu.index)
        non_negative(f"node.gpus[{i}].memory_total_bytes", gpu.memory_total_bytes)
        checked_text(f"node.gpus[{i}].name", gpu.name, 256)
        checked_text(f"node.gpus[{i}].uuid", gpu.uuid, 128)
        checked_text(f"node.gpus[{i}].compute_capability", gpu.compute_capability, 16)
    if node.HasField("cpu"):
        checked_text("node.cpu.model", node.cpu.model, 256)
        non_negative("node.cpu.logical_cores", node.cpu.logical_cores)
        non_negative("node.cpu.memory_total_bytes", node.cpu.memory_total_bytes)
    return NodeRegistration(
        id=required_id("node.id", node.id),
        name=checked_text("node.name", node.name, 100, required=True),
        hostname=checked_text("node.hostname", node.hostname, 255),
        backend=BACKEND.label(node.backend),
        capacity_streams=capacity,
        embedding_model_version=checked_text("node.embedding_model_version", node.embedding_model_version, 100,
                                             required=True),
        gpus=[as_json(g) for g in node.gpus],
        cpu=as_json(node.cpu),
        versions=string_map("node.versions", node.versions),
        labels=string_map("node.labels", node.labels),
    )


def checked_stats(stats: pb.NodeStats) -> None:
    fraction("stats.cpu_utilization", stats.cpu_utilization)
    for field in ("memory_used_bytes", "unacked_batches", "spooled_batches", "spooled_bytes"):
        non_negative(f"stats.{field}", getattr(stats, field))
    duration(stats, "inference_duration", "stats.inference_duration")
    if len(stats.queue_depths) > MAX_MAP_ENTRIES:
        raise InvalidArgument("stats.queue_depths", f"must hold at most {MAX_MAP_ENTRIES} stages")
    for stage, depth in stats.queue_depths.items():
        if not stage.strip() or len(stage) > MAX_MAP_KEY or "\x00" in stage:
            raise InvalidArgument("stats.queue_depths", f"stage names must be 1..{MAX_MAP_KEY} characters")
        non_negative(f"stats.queue_depths[{stage!r}]", depth)
    for i, gpu in enumerate(stats.gpus):
        path = f"stats.gpus[{i}]"
        non_negative(f"{path}.index", gpu.index)
        fraction(f"{path}.utilization", gpu.utilization)
        fraction(f"{path}.decoder_utilization", gpu.decoder_utilization)
        fraction(f"{path}.encoder_utilization", gpu.encoder_utilization)
        non_negative(f"{path}.memory_used_bytes", gpu.memory_used_bytes)
        finite(f"{path}.temperature_celsius", gpu.temperature_celsius)


def checked_streams(streams) -> None:
    if len(streams) > MAX_STREAMS:
        raise InvalidArgument("streams", f"must hold at most {MAX_STREAMS} streams, got {len(streams)}")
    for i, s in enumerate(streams):
        path = f"streams[{i}]"
        required_id(f"{path}.camera_id", s.camera_id)
        if s.state not in STREAM_STATES:
            raise InvalidArgument(f"{path}.state", "must be one of STARTING, RUNNING, RECONNECTING, FAILED, STOPPED")
        finite_non_negative(f"{path}.decode_fps", s.decode_fps)
        finite_non_negative(f"{path}.processed_fps", s.processed_fps)
        duration(s, "latency", f"{path}.latency")
        duration(s, "inference_duration", f"{path}.inference_duration")
        for field in ("dropped_frames", "queue_depth", "reconnects", "active_tracks"):
            non_negative(f"{path}.{field}", getattr(s, field))
        instant(s, f"{path}.last_frame_time")
        checked_text(f"{path}.last_error", s.last_error, MAX_LAST_ERROR)


# --------------------------------------------------------------------------- messages


def seconds(value: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromTimedelta(timedelta(seconds=value))
    return d


def node_message(node: Node) -> pb.Node:
    message = pb.Node(
        id=str(node.id), name=node.name, hostname=node.hostname or "", backend=BACKEND.number(node.backend),
        capacity_streams=node.capacity_streams, versions=node.versions, labels=node.labels,
        embedding_model_version=node.embedding_model_version, state=STATE.number(node.state),
        camera_ids=[str(c) for c in node.camera_ids], register_time=timestamp(node.registered_at),
        last_heartbeat_time=timestamp(node.last_heartbeat_at))
    for gpu in node.gpus:
        from_json(gpu, message.gpus.add())
    from_json(node.cpu, message.cpu)
    if node.stats is not None:
        from_json(node.stats, message.stats)
    for stream in node.streams:
        from_json(stream, message.streams.add())
    return message


# --------------------------------------------------------------------------- the service


class NodeService(node_pb2_grpc.NodeServiceServicer):
    def __init__(self, db: CallerDatabase, secrets: SecretBox, nodes: NodeRuntime, settings: ControlSettings,
                 health_log_interval: timedelta):
        self.db = db
        self.secrets = secrets
        self.nodes = nodes
        self.settings = settings
        self.health_log_interval = health_log_interval  # a node's health is logged at most this often

    @property
    def _heartbeat_interval(self) -> duration_pb2.Duration:
        return seconds(self.settings.node_heartbeat_interval_s)

    @rpc("nodes", "write")
    async def RegisterNode(self, request, context):
        node = registration(request)
        lease = timedelta(seconds=self.settings.node_lease_s)
        async with self.db.transaction() as tx:
            registered = await NodeRepository(tx.conn).register(node, lease)
            await tx.audit("node.register", "node", node.id,
                           {"name": node.name, "backend": node.backend, "capacity_streams": node.capacity_streams,
                            "state": registered.state})
        log.info("node registered", node_id=str(node.id), name=node.name, backend=node.backend,
                 capacity_streams=node.capacity_streams, state=registered.state)
        self.nodes.reconciler.wake()  # its streams (or an OFFLINE node's return) now, not within a second
        return pb.RegisterNodeResponse(node=node_message(registered), heartbeat_interval=self._heartbeat_interval,
                                       lease_duration=seconds(self.settings.node_lease_s))

    @rpc("nodes", "write")
    async def Heartbeat(self, request, context):
        node_id = required_id("node_id", request.node_id)
        if request.HasField("stats"):
            checked_stats(request.stats)
        checked_streams(request.streams)
        stats = as_json(request.stats) if request.HasField("stats") else None
        async with self.db.transaction() as tx:
            node = await NodeRepository(tx.conn).heartbeat(node_id, stats, [as_json(s) for s in request.streams])
            await record_node_health(tx.conn, node_id, request, self.health_log_interval)
            clips = await ClipRepository(tx.conn).claim(node_id) if node.state != "offline" else []
        return pb.HeartbeatResponse(state=STATE.number(node.state), heartbeat_interval=self._heartbeat_interval,
                                    clip_jobs=[pb.ClipJob(clip_id=str(c.id), camera_id=str(c.camera_id),
                                                          start_time=timestamp(c.start_time),
                                                          end_time=timestamp(c.end_time), storage_path=c.storage_path)
                                               for c in clips])

    @rpc("nodes", "write")
    async def CompleteClip(self, request, context):
        node_id = required_id("node_id", request.node_id)
        clip_id = required_id("clip_id", request.clip_id)
        error = checked_text("error", request.error, MAX_LAST_ERROR)
        if not error:
            start, end = instant(request, "start_time"), instant(request, "end_time")
            if start is None:
                raise InvalidArgument("start_time", "is required unless error is set")
            if end is None:
                raise InvalidArgument("end_time", "is required unless error is set")
        async with self.db.transaction() as tx:
            await NodeRepository(tx.conn).get(node_id)  # NOT_FOUND for an unregistered node
            clips = ClipRepository(tx.conn)
            if error:
                clip = await clips.fail(clip_id, f"node {node_id}: {error}")
            else:
                clip = await clips.complete(clip_id, size_bytes=request.size_bytes, checksum=request.checksum,
                                            start_time=start, end_time=end)
        log.info("clip completed", clip_id=str(clip_id), node_id=str(node_id), state=clip.state,
                 error=clip.error or None)
        return pb.CompleteClipResponse(media_id=str(clip.media_file_id) if clip.media_file_id else "")

    @rpc("nodes", "write")
    async def WatchAssignments(self, request, context):
        node_id = required_id("node_id", request.node_id)
        async with self.db.transaction() as tx:
            await NodeRepository(tx.conn).get(node_id)  # NOT_FOUND before the stream starts
        tracker = AssignmentTracker(node_id, self.secrets)
        runtime = self.nodes
        async with self.db.transaction() as tx:
            snapshot = await tracker.changes(tx.conn)
        log.info("node watching its assignments", node_id=str(node_id), streams=len(snapshot))
        yield pb.WatchAssignmentsResponse(snapshot=True, changes=snapshot)
        # a cancelled call cancels this handler at the await; a stopping replica ends it with OK
        while not runtime.closing.is_set():
            await runtime.signal.wait(WATCH_POLL_S)
            if runtime.closing.is_set():
                break
            async with self.db.transaction() as tx:
                changes = await tracker.changes(tx.conn)
            if changes:
                yield pb.WatchAssignmentsResponse(changes=changes)
        log.info("assignment watch ended: the control plane replica is stopping", node_id=str(node_id))

    @rpc("nodes", "read")
    async def ListNodes(self, request, context):
        states = STATE_FILTER.labels(request.states)
        backends = BACKEND_FILTER.labels(request.backends)
        async with self.db.transaction() as tx:
            page = await NodeRepository(tx.conn).list(states=states, backends=backends, page_size=request.page_size,
                                                      page_token=repository_token(request))
        return pb.ListNodesResponse(nodes=[node_message(n) for n in page.items],
                                    next_page_token=api_token(request, page.next_page_token))

    @rpc("nodes", "read")
    async def GetNode(self, request, context):
        node_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            return pb.GetNodeResponse(node=node_message(await NodeRepository(tx.conn).get(node_id)))

    @rpc("nodes", "configure")
    async def DrainNode(self, request, context):
        node_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            node = await NodeRepository(tx.conn).drain(node_id)
            await tx.audit("node.drain", "node", node_id, {"state": node.state})
        self.nodes.reconciler.wake()  # move its streams now
        return pb.DrainNodeResponse(node=node_message(node))

    @rpc("nodes", "configure")
    async def ResumeNode(self, request, context):
        node_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            node = await NodeRepository(tx.conn).resume(node_id)
            await tx.audit("node.resume", "node", node_id, {"state": node.state})
        self.nodes.reconciler.wake()
        return pb.ResumeNodeResponse(node=node_message(node))

    @rpc("nodes", "configure")
    async def DeleteNode(self, request, context):
        node_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            await NodeRepository(tx.conn).delete(node_id)
            await tx.audit("node.delete", "node", node_id)
        return pb.DeleteNodeResponse()


SERVICE = (NodeService, node_pb2_grpc.add_NodeServiceServicer_to_server, "vigil.v1.NodeService")
