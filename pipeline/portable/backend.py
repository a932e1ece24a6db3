"""The portable backend: PyAV decode threads per stream, one batching loop across streams, the
stages of analysis.py on a worker thread, and TrackBatches handed to the publisher.

Streams come and go at runtime: adding one starts its decoder; removing one stops its decoder,
sends END for its open tracks and publishes them, all between two batches, so the other
streams never wait for it. A replayed file that ends (without loop) does the same and stays
listed as STOPPED until the control plane removes the assignment.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from vigil.api.v1 import node_pb2
from vigil.logs import get_logger
from vigil.models.errors import InferenceError
from vigil.models.faces import FaceAnalyzer
from vigil.pipeline.outbox import Publish, StreamOutbox
from vigil.pipeline.portable.analysis import FrameAnalysis, ObjectSource, StreamAnalysis
from vigil.pipeline.portable.source import Frame, VideoSource
from vigil.pipeline.recording import Clip, ClipUnavailable, PacketRing
from vigil.pipeline.snapshots import SnapshotWriter
from vigil.pipeline.streams import InferenceTimes, StreamCounters, StreamSpec

log = get_logger("vigil.pipeline.portable")

IDLE_POLL_S = 0.01  # how soon a new frame is picked up when every queue was empty


@dataclass
class _Stream:
    spec: StreamSpec
    counters: StreamCounters
    source: VideoSource
    analysis: StreamAnalysis
    outbox: StreamOutbox
    last_processed: datetime | None = None
    closing: bool = False  # removed: finish between batches
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class PortableBackend:
    name = "portable"
    node_backend = node_pb2.NODE_BACKEND_PORTABLE

    def __init__(self, *, node_id: UUID, analyzer: FaceAnalyzer, objects: ObjectSource, publish: Publish,
                 model_version: str, snapshots: SnapshotWriter | None = None, batch_size: int = 8,
                 publish_interval_s: float = 0.25, object_every: int = 1, queue_size: int = 4,
                 clip_buffer_s: float = 30.0):
        self.node_id = node_id
        self.analysis = FrameAnalysis(analyzer, snapshots, model_version, objects)
        self.publish = publish
        self.batch_size = batch_size
        self.publish_interval_s = publish_interval_s
        self.object_every = max(1, object_every)
        self.queue_size = queue_size
        self.clip_buffer_s = clip_buffer_s
        self._streams: dict[UUID, _Stream] = {}
        self._task: asyncio.Task | None = None
        self._rotation = 0
        self._inference = InferenceTimes()
        self._running = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        self._task = asyncio.create_task(self._run(), name="portable-pipeline")

    async def stop(self) -> None:
        for camera_id in list(self._streams):
            await self.remove_stream(camera_id)
        self._running = False  # a flag, not cancel(): the loop may be inside a worker-thread call
        if self._task:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def add_stream(self, spec: StreamSpec) -> None:
        if spec.camera_id in self._streams:
            await self.update_stream(spec)
            return
        counters = StreamCounters(spec.camera_id)
        recording = PacketRing(self.clip_buffer_s) if spec.settings.recording_enabled else None
        source = VideoSource(spec, counters, queue_size=self.queue_size, recording=recording)
        outbox = StreamOutbox(self.node_id, spec, counters, self.publish)
        analysis = StreamAnalysis.start(spec, outbox.book, self.object_every)
        stream = _Stream(spec, counters, source, analysis, outbox)
        self._streams[spec.camera_id] = stream
        source.start()
        log.info("stream added", camera_id=str(spec.camera_id), source=_safe_url(spec.source_url))

    async def update_stream(self, spec: StreamSpec) -> None:
        stream = self._streams.get(spec.camera_id)
        if stream is None:
            await self.add_stream(spec)
        elif (spec.source_url, spec.username, spec.password) != (stream.spec.source_url, stream.spec.username,
                                                                   stream.spec.password):
            await self.remove_stream(spec.camera_id)  # a new source: its tracks start afresh
            await self.add_stream(spec)
        else:
            stream.spec = stream.analysis.spec = spec
            stream.outbox.configure(spec)

    async def remove_stream(self, camera_id: UUID) -> None:
        stream = self._streams.get(camera_id)
        if stream is None:
            return
        stream.closing = True
        stream.source.stop()
        if self._task is None or self._task.done():
            await self._close(stream)
        else:
            await stream.closed.wait()
        self._streams.pop(camera_id, None)
        log.info("stream removed", camera_id=str(camera_id))

    def cut_clip(self, camera_id: UUID, start: datetime, end: datetime) -> Clip:
        """An MP4 of the stream's encoded video from start to end (called on a worker thread)."""
        stream = self._streams.get(camera_id)
        if stream is None:
            raise ClipUnavailable(f"camera {camera_id} does not run on this node")
        if stream.source.recording is None:
            raise ClipUnavailable(f"recording is disabled for camera {camera_id}")
        return stream.source.recording.cut(start, end)

    # --- figures -----------------------------------------------------------------------------

    def stream_ids(self) -> set[UUID]:
        return set(self._streams)

    def stream_stats(self) -> list[node_pb2.StreamStats]:
        return [stream.outbox.report() for stream in self._streams.values()]

    def queue_depths(self) -> dict[str, int]:
        return {"decode": sum(s.source.pending() for s in self._streams.values()),
                "publish": sum(len(s.outbox) for s in self._streams.values())}

    def inference_seconds(self) -> float:
        return self._inference.take_mean()

    # --- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while self._running:
            batch = self._collect()
            if batch:
                started = time.perf_counter()
                try:
                    analysed = await asyncio.to_thread(self.analysis.run, batch)
                    failures = 0
                except InferenceError as exc:  # Triton restarting or overloaded: drop these frames, go on
                    failures += 1
                    for stream, _ in batch:
                        stream.counters.frames_dropped()
                        stream.counters.last_error = str(exc)[:1000]
                    log.warning("inference failed; frames dropped", error=str(exc), frames=len(batch))
                    await asyncio.sleep(min(0.5 * failures, 5.0))
                    analysed = []
                self._inference.add(time.perf_counter() - started)
                for result in analysed:
                    stream = self._streams_by_analysis(result.stream)
                    if stream is None:
                        continue
                    stream.counters.frame_processed(result.seconds)
                    stream.outbox.observe(result.frame.number, result.frame.capture_time, result.sightings,
                                          (result.frame.width, result.frame.height))
            for stream in list(self._streams.values()):
                if stream.closing or (stream.source.finished.is_set() and not stream.source.pending()
                                      and not stream.closed.is_set()):
                    await self._close(stream)
            for stream in list(self._streams.values()):
                await stream.outbox.flush_if_due(self.publish_interval_s)
            if not batch:
                await asyncio.sleep(IDLE_POLL_S)

    def _streams_by_analysis(self, analysis: StreamAnalysis) -> _Stream | None:
        stream = self._streams.get(analysis.spec.camera_id)
        return stream if stream is not None and stream.analysis is analysis else None

    def _collect(self) -> list[tuple[StreamAnalysis, Frame]]:
        """Up to batch_size frames, one per stream per round, starting at a rotating stream so
        that no stream is always last; frames over a stream's max_inference_fps are skipped."""
        streams = [s for s in self._streams.values() if not s.closing]
        if not streams:
            return []
        self._rotation = (self._rotation + 1) % len(streams)
        streams = streams[self._rotation:] + streams[:self._rotation]
        batch: list[tuple[StreamAnalysis, Frame]] = []
        progress = True
        while len(batch) < self.batch_size and progress:
            progress = False
            for stream in streams:
                if len(batch) >= self.batch_size:
                    break
                for frame in stream.source.take(1):
                    progress = True
                    if self._due(stream, frame):
                        batch.append((stream.analysis, frame))
        return batch

    @staticmethod
    def _due(stream: _Stream, frame: Frame) -> bool:
        limit = stream.spec.settings.max_inference_fps
        if limit and stream.last_processed is not None and \
                (frame.capture_time - stream.last_processed).total_seconds() < 1.0 / limit:
            return False
        stream.last_processed = frame.capture_time
        return True

    async def _close(self, stream: _Stream) -> None:
        await stream.outbox.close()
        if not stream.closing and stream.counters.state != node_pb2.STREAM_STATE_FAILED:  # FAILED keeps its reason
            stream.counters.set_state(node_pb2.STREAM_STATE_STOPPED)
            log.info("stream ended", camera_id=str(stream.spec.camera_id), frames=stream.counters.decoded)
        stream.closed.set()


def _safe_url(url: str) -> str:
    return url.split("?")[0]
