"""`vigil loadtest control`: a synthetic publisher that drives IngestService with M virtual
cameras at F frames/s and K objects per frame, without video, to measure the control plane alone.

One registered node, one Publish stream per camera (a real node multiplexes its cameras on one
stream; one per camera lets the replica use its connection pool as a fleet of nodes would), at
most `window` unacked batches per stream. Each object is a track that lives `track_seconds`:
START, an UPDATE every frame, END, then a new track takes its place, so person events arrive at
M*K/track_seconds per second. Every `face_every`-th object is a FACE track whose START carries a
best face: a near-duplicate of an enrolled gallery face (recognised) or a random vector (a
stranger: an unknown-face cluster). Pacing is open-loop: a batch is due every publish interval
whatever the acks do; a stream that cannot keep up falls behind and that lag is reported.

Measured: acked track updates/s, events/s arriving on EventService.Subscribe, ack latency
(write of a batch → its ack), feed latency (capture time of the update → arrival on the feed),
and the control plane's CPU and RSS.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from google.protobuf import timestamp_pb2

from vigil.api.v1 import common_pb2, event_pb2, event_pb2_grpc, ingest_pb2_grpc, node_pb2, node_pb2_grpc
from vigil.api.v1 import ingest_pb2 as pb
from vigil.loadtest.common import ControlPlane, ProcessSampler, create_fixtures, percentiles, unit_vectors
from vigil.settings import VigilSettings

MODEL_VERSION = "loadtest-synthetic-128"


@dataclass
class ControlOptions:
    cameras: int = 4
    fps: float = 10.0
    objects: int = 5
    duration_s: float = 20.0
    warmup_s: float = 3.0
    publish_interval_s: float = 0.25
    window: int = 16
    track_seconds: float = 10.0
    face_every: int = 2  # every n-th object is a face track (0: none)
    known_ratio: float = 0.5  # of face tracks, the share that are enrolled people
    gallery: int = 1000
    embedding_dim: int = 128
    subscribers: int = 1


def _ts(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


class Tally:
    def __init__(self):
        self.sent_batches = 0
        self.acked_batches = 0
        self.acked_updates = 0
        self.rejected = 0
        self.retried = 0
        self.events = 0
        self.ack_latency: list[float] = []
        self.feed_latency: list[float] = []
        self.lag_s = 0.0
        self.errors: list[str] = []

    def snapshot(self) -> tuple[int, int, int]:
        return self.acked_updates, self.events, self.acked_batches


class SyntheticCamera:
    """Track state of one virtual camera: K object slots, each a track restarted every track_seconds."""

    def __init__(self, camera_id: str, node_id: str, options: ControlOptions, gallery: np.ndarray | None,
                 rng: np.random.Generator):
        self.camera_id, self.node_id, self.o = camera_id, node_id, options
        self.gallery, self.rng = gallery, rng
        self.epoch = uuid.uuid4().hex[:8]
        self.generation = [0] * options.objects
        self.born = [0.0] * options.objects
        self.frame = 0
        self.batch_no = 0
        # staggered lifetimes: tracks end evenly over time, not all at once
        self.offset = [options.track_seconds * i / max(options.objects, 1) for i in range(options.objects)]

    def _face(self, now: float) -> pb.BestFace:
        o = self.o
        if self.gallery is not None and len(self.gallery) and self.rng.random() < o.known_ratio:
            base = self.gallery[self.rng.integers(len(self.gallery))]
            vec = base + self.rng.standard_normal(base.shape[0]).astype(np.float32) * 0.02
            vec /= np.linalg.norm(vec)
        else:
            vec = unit_vectors(self.rng, 1, o.embedding_dim)[0]
        return pb.BestFace(embedding=vec.tolist(), model_version=MODEL_VERSION, quality=0.8, confidence=0.95,
                           box=common_pb2.BoundingBox(x=0.4, y=0.1, width=0.1, height=0.15),
                           landmarks=[common_pb2.Point(x=0.42 + 0.01 * i, y=0.15) for i in range(5)],
                           frame_number=self.frame, capture_time=_ts(now))

    def batch(self, start: float, now: float, frames: int, sequence: int) -> pb.PublishRequest:
        """The updates of `frames` frames captured up to `now`."""
        o = self.o
        updates = []
        for f in range(frames):
            t = now - (frames - 1 - f) / o.fps
            self.frame += 1
            for k in range(o.objects):
                age = t - start + self.offset[k]
                generation = int(age // o.track_seconds)
                is_face = o.face_every > 0 and k % o.face_every == o.face_every - 1
                klass = pb.OBJECT_CLASS_FACE if is_face else pb.OBJECT_CLASS_PERSON
                if generation > self.generation[k]:  # the old track ends, a new one starts
                    updates.append(pb.TrackUpdate(
                        track_id=f"{self.epoch}-{k}-{self.generation[k]}", kind=pb.TRACK_UPDATE_KIND_END,
                        object_class=klass, box=common_pb2.BoundingBox(x=0.9, y=0.2, width=0.05, height=0.3),
                        confidence=0.8, frame_number=self.frame, capture_time=_ts(t)))
                    self.generation[k] = generation
                    self.born[k] = -1.0
                first = self.born[k] <= 0
                x = min(0.8, (age % o.track_seconds) / o.track_seconds * 0.8)
                update = pb.TrackUpdate(
                    track_id=f"{self.epoch}-{k}-{generation}",
                    kind=pb.TRACK_UPDATE_KIND_START if first else pb.TRACK_UPDATE_KIND_UPDATE,
                    object_class=klass,
                    box=common_pb2.BoundingBox(x=x, y=0.2 + 0.5 * k / max(o.objects, 1) * 0.5, width=0.1,
                                               height=0.15 if is_face else 0.4),
                    confidence=0.9, frame_number=self.frame, capture_time=_ts(t))
                if first:
                    self.born[k] = t
                    if is_face:
                        update.best_face.CopyFrom(self._face(t))
                updates.append(update)
        self.batch_no += 1
        return pb.PublishRequest(batch=pb.TrackBatch(
            node_id=self.node_id, camera_id=self.camera_id, sequence=sequence,
            idempotency_key=f"{self.node_id}:{self.camera_id}:{self.epoch}:{self.batch_no}",
            frame_width=1280, frame_height=720, updates=updates))


class Sequences:
    def __init__(self):
        self.n = 0

    def next(self) -> int:
        self.n += 1
        return self.n


async def _publish_camera(stub, metadata, cam: SyntheticCamera, o: ControlOptions, seq: Sequences, tally: Tally,
                          t0: float, stop_at: float) -> None:
    call = stub.Publish(metadata=metadata)
    sent: dict[int, tuple[float, int]] = {}
    window = asyncio.Semaphore(o.window)
    frames_per_batch = max(1, round(o.fps * o.publish_interval_s))
    interval = frames_per_batch / o.fps

    async def read_acks() -> None:
        async for ack in call:
            started, count = sent.pop(ack.sequence, (None, 0))
            window.release()
            if started is None:
                continue
            if ack.status == pb.PUBLISH_STATUS_ACCEPTED:
                tally.acked_batches += 1
                tally.acked_updates += count
                tally.ack_latency.append(time.monotonic() - started)
            elif ack.status == pb.PUBLISH_STATUS_REJECTED:
                tally.rejected += 1
                if len(tally.errors) < 5:
                    tally.errors.append(ack.error)
            else:
                tally.retried += 1

    reader = asyncio.create_task(read_acks())
    try:
        n = 0
        while True:
            due = t0 + n * interval
            now = time.monotonic()
            if due >= stop_at:
                break
            if due > now:
                await asyncio.sleep(due - now)
            else:
                tally.lag_s = max(tally.lag_s, now - due)
            await window.acquire()
            request = cam.batch(t0 - time.monotonic() + time.time(), time.time(), frames_per_batch, seq.next())
            sent[request.batch.sequence] = (time.monotonic(), len(request.batch.updates))
            await call.write(request)
            tally.sent_batches += 1
            n += 1
        await call.done_writing()
        await asyncio.wait_for(reader, timeout=30)
    except (TimeoutError, grpc.aio.AioRpcError) as exc:
        tally.errors.append(f"{type(exc).__name__}: {getattr(exc, 'details', lambda: '')() or exc}")
    finally:
        reader.cancel()
        call.cancel()


async def _subscribe(stub, metadata, camera_ids: list[str], tally: Tally, ready: asyncio.Event, count: bool) -> None:
    call = stub.Subscribe(event_pb2.SubscribeRequest(camera_ids=camera_ids,
                                                     kinds=[event_pb2.FEED_ITEM_KIND_EVENT]), metadata=metadata)
    seen: set[str] = set()
    try:
        async for response in call:
            if response.WhichOneof("item") == "keepalive":
                ready.set()  # the first keepalive: from here on nothing recorded is missed
            if response.WhichOneof("item") != "event":
                continue
            event = response.event
            if not count or event.id in seen:
                continue
            seen.add(event.id)
            tally.events += 1
            tally.feed_latency.append(time.time() - event.event_time.ToNanoseconds() / 1e9)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.CANCELLED:
            tally.errors.append(f"feed: {exc.code().name}: {exc.details()}")
    finally:
        ready.set()


async def register_node(channel, node_key: str, admin_key: str, capacity: int, name: str) -> str:
    """Register a node (IngestService takes batches only from registered nodes) and drain it, so the
    control plane assigns it no camera streams."""
    node_id = str(uuid.uuid4())
    stub = node_pb2_grpc.NodeServiceStub(channel)
    await stub.RegisterNode(node_pb2.RegisterNodeRequest(node=node_pb2.Node(
        id=node_id, name=name, hostname="loadtest", backend=node_pb2.NODE_BACKEND_PORTABLE,
        capacity_streams=max(1, capacity), embedding_model_version=MODEL_VERSION)),
        metadata=(("authorization", f"Bearer {node_key}"),), timeout=10)
    try:
        await stub.DrainNode(
            node_pb2.DrainNodeRequest(id=node_id), metadata=(("authorization", f"Bearer {admin_key}"),), timeout=10
        )
    except grpc.aio.AioRpcError:
        pass  # a drain refused only means streams may be assigned to it: harmless for a synthetic node
    return node_id


async def run_control(settings: VigilSettings, o: ControlOptions, *, log_dir: Path,
                      progress: Callable[[dict], None] | None = None, target: str | None = None,
                      control_pid: int | None = None) -> dict:
    """Start a control plane child (unless `target` names one), create the fixtures, drive it."""
    fixtures = await create_fixtures(settings, o.cameras, model_version=MODEL_VERSION if o.face_every else None,
                                     embedding_dim=o.embedding_dim, gallery_size=o.gallery)
    control = None
    if target is None:
        control = ControlPlane(settings, log_dir / "loadtest-control.log")
        await control.start()
        target, control_pid = control.target, control.pid
    sampler = ProcessSampler(control_pid) if control_pid else None
    tally = Tally()
    try:
        options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        async with grpc.aio.insecure_channel(target, options=options) as channel:
            node_id = await register_node(channel, fixtures.node_key, fixtures.admin_key, o.cameras,
                                          f"loadtest-synthetic-{uuid.uuid4().hex[:6]}")
            ingest = ingest_pb2_grpc.IngestServiceStub(channel)
            events = event_pb2_grpc.EventServiceStub(channel)
            node_md = (("authorization", f"Bearer {fixtures.node_key}"),)
            admin_md = (("authorization", f"Bearer {fixtures.admin_key}"),)
            readies = [asyncio.Event() for _ in range(max(1, o.subscribers))]
            feeds = [asyncio.create_task(_subscribe(events, admin_md, fixtures.camera_ids, tally, r, i == 0))
                     for i, r in enumerate(readies)]
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
            rng = np.random.default_rng()  # fresh strangers each run: a rerun must not meet the last run's clusters
            cams = [SyntheticCamera(c, node_id, o, fixtures.gallery, rng) for c in fixtures.camera_ids]
            seq = Sequences()
            t0 = time.monotonic()
            stop_at = t0 + o.warmup_s + o.duration_s
            publishers = [asyncio.create_task(_publish_camera(ingest, node_md, cam, o, seq, tally, t0, stop_at))
                          for cam in cams]
            await asyncio.sleep(o.warmup_s)
            base = tally.snapshot()
            tally.ack_latency.clear()
            tally.feed_latency.clear()
            if sampler:
                sampler.restart()
            measured_from = time.monotonic()
            last, last_t = base, measured_from
            while time.monotonic() < stop_at:
                await asyncio.sleep(min(1.0, max(0.05, stop_at - time.monotonic())))
                now, snap = time.monotonic(), tally.snapshot()
                cpu, rss = sampler.sample() if sampler else (0.0, 0)
                if progress:
                    progress({"elapsed_s": now - measured_from, "duration_s": o.duration_s,
                              "updates_per_s": (snap[0] - last[0]) / max(now - last_t, 1e-6),
                              "events_per_s": (snap[1] - last[1]) / max(now - last_t, 1e-6),
                              "ack_p99_ms": percentiles(tally.ack_latency[-2000:])["p99"],
                              "lag_s": tally.lag_s, "cpu_percent": cpu, "rss_mb": rss / 2**20})
                last, last_t = snap, now
            measured = time.monotonic() - measured_from
            end = tally.snapshot()
            control_figures = sampler.summary() if sampler else {}
            await asyncio.wait(publishers, timeout=30)
            await asyncio.sleep(1.0)  # the feed's last messages
            for task in feeds:
                task.cancel()
            await asyncio.gather(*feeds, return_exceptions=True)
    finally:
        if control is not None:
            control.stop()
    offered = o.cameras * o.fps * o.objects
    return {
        "kind": "control",
        "options": vars(o),
        "offered_updates_per_s": round(offered, 1),
        "duration_s": round(measured, 2),
        "track_updates_per_s": round((end[0] - base[0]) / measured, 1),
        "events_per_s": round((end[1] - base[1]) / measured, 1),
        "batches_per_s": round((end[2] - base[2]) / measured, 1),
        "ack_latency_ms": percentiles(tally.ack_latency),
        "feed_latency_ms": percentiles(tally.feed_latency),
        "max_lag_s": round(tally.lag_s, 3),
        "rejected_batches": tally.rejected,
        "retried_batches": tally.retried,
        "errors": tally.errors[:10],
        "control_plane": control_figures,
    }
