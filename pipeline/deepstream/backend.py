"""The DeepStream backend: the graph of graph.py in one GStreamer pipeline, driven from a GLib
main loop thread; streams come and go at runtime as nvurisrcbin sources on muxer request pads.

Runtime add/remove follows DeepStream's runtime_source_add_delete procedure, with the pitfalls
reported against it handled:
- every state change and pad request/release runs on the GLib main loop thread (GLib.idle_add),
  never in a streaming thread or the asyncio thread: releasing a muxer pad from a streaming
  thread deadlocks (deepstream-services-library #206/#359/#606);
- removal: source bin to NULL first (no more data on the pad), then EOS and FLUSH_STOP on the
  muxer sink pad so the muxer flushes that stream (the new muxer refuses a release before EOS:
  "release pad called before push events", Savant #30), then release the pad, then remove the bin;
- pad indices are never reused within a run: frames of a removed stream still in flight
  downstream cannot be taken for the new stream, and nvinfer/nvtracker never see a source id come
  back after its EOS (Savant #30: "Source info not found for source N");
- the EOS the muxer sends downstream when its last pad goes is dropped (Savant #97): a node with
  no streams keeps its pipeline for the next assignment;
- a file without loop ends with a per-stream "stream-eos" bus message: its tracks end and it is
  listed STOPPED until the control plane removes it, as on the portable backend.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import queue
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from uuid import UUID

from vigil.api.v1 import ingest_pb2 as pb
from vigil.api.v1 import node_pb2
from vigil.logs import get_logger
from vigil.pipeline.deepstream.graph import Graph, GraphSettings, build_graph, source_plan
from vigil.pipeline.deepstream.meta import Meta
from vigil.pipeline.deepstream.stages import FrameRecord, Stages, StreamContext, capture_time, sightings
from vigil.pipeline.messages import MAX_UPDATES_PER_BATCH, SnapshotRef, new_epoch, track_batches
from vigil.pipeline.streams import StreamCounters, StreamSpec
from vigil.pipeline.tracks import TrackBook

log = get_logger("vigil.pipeline.deepstream")

RECORD_QUEUE = 256  # frames waiting for upload/track bookkeeping; beyond it frames are dropped
MAIN_LOOP_TIMEOUT_S = 30.0
Publish = Callable[[pb.TrackBatch], Awaitable[None]]


@dataclass
class _Stream:
    spec: StreamSpec
    pad_index: int
    ctx: StreamContext
    epoch: str
    batches: int = 0
    pending: list[pb.TrackUpdate] = field(default_factory=list)
    captures: list[datetime] = field(default_factory=list)
    last_flush: float = field(default_factory=time.monotonic)
    frame_size: tuple[int, int] = (0, 0)
    source: object | None = None  # the nvurisrcbin
    finished: bool = False


def render_embedder_config(template: Path, triton_url: str, out_dir: Path) -> Path:
    """The gRPC nvinferserver config pointed at this node's Triton (the file names a default)."""
    text = re.sub(r'url:\s*"[^"]*"', f'url: "{triton_url}"', template.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / template.name
    target.write_text(text)
    return target


def graph_settings_from(settings, env=os.environ) -> GraphSettings:
    node = settings.node
    base = GraphSettings()
    person_onnx = Path(settings.triton.model_repository) / "person_detector" / "1" / "model.onnx"
    engine = Path(env.get("VIGIL_ENGINE_DIR", "/var/lib/vigil/engines")) / "person_detector.plan"
    return GraphSettings(
        configs_dir=base.configs_dir, batch_size=node.batch_size,
        person_detector=person_onnx.is_file() or engine.is_file(),
        person_interval=max(0, node.person_detect_every - 1),
        triton_mode=env.get("VIGIL_DS_TRITON_MODE", "grpc"),
        triton_url=settings.triton.url or base.triton_url,
        gpu_id=int(env.get("VIGIL_DS_GPU_ID", "0")),
        new_muxer=env.get("USE_NEW_NVSTREAMMUX", "").lower() == "yes")


class DeepStreamBackend:
    name = "deepstream"
    node_backend = node_pb2.NODE_BACKEND_DEEPSTREAM

    def __init__(self, *, node_id: UUID, publish: Publish, graph_settings: GraphSettings, model_version: str,
                 upload: Callable[[str, bytes], SnapshotRef] | None, publish_interval_s: float = 0.25,
                 meta: Meta | None = None):
        self.node_id = node_id
        self.publish = publish
        self.gs = graph_settings
        self.model_version = model_version
        self.upload = upload
        self.publish_interval_s = publish_interval_s
        self.meta = meta or Meta.load()
        self.graph: Graph = build_graph(graph_settings)
        self._streams: dict[UUID, _Stream] = {}
        self._by_pad: dict[int, _Stream] = {}
        self._next_pad = 0
        self._records: queue.Queue[FrameRecord | None] = queue.Queue(RECORD_QUEUE)
        self._lock = threading.Lock()
        self._batch_started: dict[tuple[int, int], float] = {}
        self._inference = [0.0, 0]
        self.stages = Stages(self.meta, graph_settings, self._context)
        self._gst = self._glib = None
        self._pipeline = self._loop = self._loop_thread = self._worker = self._encoder = None
        self._task: asyncio.Task | None = None
        self._aio: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, settings, endpoints, *, node_id: UUID, publish: Publish) -> DeepStreamBackend:
        from vigil.storage.objectstore import ObjectStore

        gs = graph_settings_from(settings)
        if gs.triton_mode == "grpc":  # the shipped config names a default Triton address
            rendered = render_embedder_config(gs.config("sgie-embedder:grpc"), gs.triton_url,
                                              Path(settings.resolved_state_dir()) / "deepstream")
            gs = dataclasses.replace(gs, embedder_config=rendered)
        objects = ObjectStore.from_endpoints(endpoints)

        def upload(key: str, data: bytes) -> SnapshotRef:
            stored = objects.put(key, data, content_type="image/jpeg")
            return SnapshotRef(key=key, sha256=stored.sha256, size_bytes=len(data))

        return cls(node_id=node_id, publish=publish, graph_settings=gs,
                   model_version=settings.node.embedding_model_version, upload=upload,
                   publish_interval_s=settings.node.publish_interval_s)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import GLib, Gst

        self._gst, self._glib = Gst, GLib
        Gst.init(None)
        self._aio = asyncio.get_running_loop()
        self._pipeline = self._build()
        self._loop = GLib.MainLoop()
        bus = self._pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_bus_message)
        self._encoder = self.meta.encoder(self.gs.gpu_id)
        self._loop_thread = threading.Thread(target=self._loop.run, name="deepstream-glib", daemon=True)
        self._loop_thread.start()
        await self._on_main_loop(lambda: self._pipeline.set_state(Gst.State.PLAYING))
        self._worker = threading.Thread(target=self._work, name="deepstream-records", daemon=True)
        self._worker.start()
        self._task = asyncio.create_task(self._flush_loop(), name="deepstream-publish")
        log.info("deepstream pipeline playing", elements=[e.name for e in self.graph.elements])

    async def stop(self) -> None:
        for camera_id in list(self._streams):
            await self.remove_stream(camera_id)
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pipeline is not None:
            await self._on_main_loop(lambda: self._pipeline.set_state(self._gst.State.NULL))
            self.meta.close_encoder(self._encoder)
            self._loop.quit()
        self._records.put(None)

    def _build(self):
        Gst = self._gst
        pipeline = Gst.Pipeline.new("vigil")
        made = {}
        for spec in self.graph.elements:
            element = Gst.ElementFactory.make(spec.factory, spec.name)
            if element is None:
                raise RuntimeError(f"GStreamer cannot make {spec.factory!r}: is DeepStream installed?")
            for key, value in spec.properties.items():
                element.set_property(key, value)
            pipeline.add(element)
            made[spec.name] = element
        for src, dst in self.graph.links:
            if not made[src].link(made[dst]):
                raise RuntimeError(f"cannot link {src} to {dst}")
        for probe in self.graph.probes:
            pad = made[probe.element].get_static_pad(probe.pad)
            kind = Gst.PadProbeType.EVENT_DOWNSTREAM if probe.kind == "event" else Gst.PadProbeType.BUFFER
            pad.add_probe(kind, getattr(self, "_probe_" + probe.handler))
        self._made = made
        return pipeline

    # --- the GLib main loop ------------------------------------------------------------------

    async def _on_main_loop(self, fn):
        """Run fn on the GLib main loop thread and wait for its result."""
        done: concurrent.futures.Future = concurrent.futures.Future()

        def call():
            try:
                done.set_result(fn())
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                done.set_exception(exc)
            return False  # one shot

        self._glib.idle_add(call)
        return await asyncio.wait_for(asyncio.wrap_future(done), MAIN_LOOP_TIMEOUT_S)

    # --- streams -----------------------------------------------------------------------------

    async def add_stream(self, spec: StreamSpec) -> None:
        if spec.camera_id in self._streams:
            await self.update_stream(spec)
            return
        pad_index, self._next_pad = self._next_pad, self._next_pad + 1
        counters = StreamCounters(spec.camera_id)
        book = TrackBook(new_epoch(), update_interval=spec.settings.track_update_interval)
        stream = _Stream(spec, pad_index, StreamContext(spec.camera_id, spec.settings, book, counters), book.epoch)
        with self._lock:
            self._streams[spec.camera_id] = stream
            self._by_pad[pad_index] = stream
        stream.source = await self._on_main_loop(lambda: self._add_source(stream))
        log.info("stream added", camera_id=str(spec.camera_id), pad=pad_index, source=spec.source_url.split("?")[0])

    def _add_source(self, stream: _Stream):
        Gst = self._gst
        plan = source_plan(stream.spec, stream.pad_index, self.gs)
        source = Gst.ElementFactory.make("nvurisrcbin", plan.name)
        for key, value in plan.properties.items():
            source.set_property(key, value)
        muxer = self._made["muxer"]

        def on_pad_added(_bin, pad):
            caps = pad.get_current_caps() or pad.query_caps(None)
            if not caps or not caps.get_structure(0).get_name().startswith("video"):
                return
            sink = muxer.request_pad_simple(plan.mux_pad)
            if pad.link(sink) != Gst.PadLinkReturn.OK:
                stream.ctx.counters.set_state(node_pb2.STREAM_STATE_FAILED, "could not link the source to the muxer")

        source.connect("pad-added", on_pad_added)
        self._pipeline.add(source)
        if source.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            stream.ctx.counters.set_state(node_pb2.STREAM_STATE_FAILED, "the source did not start")
        return source

    def _remove_source(self, stream: _Stream) -> None:
        Gst = self._gst
        source = stream.source
        if source is None:
            return
        source.set_state(Gst.State.NULL)
        source.get_state(Gst.CLOCK_TIME_NONE)
        muxer = self._made["muxer"]
        pad = muxer.get_static_pad(f"sink_{stream.pad_index}")
        if pad is not None:  # None when the source never produced video
            pad.send_event(Gst.Event.new_eos())
            pad.send_event(Gst.Event.new_flush_stop(False))
            muxer.release_request_pad(pad)
        self._pipeline.remove(source)
        stream.source = None

    async def update_stream(self, spec: StreamSpec) -> None:
        stream = self._streams.get(spec.camera_id)
        if stream is None:
            await self.add_stream(spec)
        elif (spec.source_url, spec.username, spec.password, spec.settings.max_inference_fps) != (
                stream.spec.source_url, stream.spec.username, stream.spec.password,
                stream.spec.settings.max_inference_fps):
            await self.remove_stream(spec.camera_id)  # a new source: its tracks start afresh
            await self.add_stream(spec)
        else:
            stream.spec = spec
            with stream.ctx.lock:
                stream.ctx.settings = spec.settings
                stream.ctx.book.update_interval = spec.settings.track_update_interval

    async def remove_stream(self, camera_id: UUID) -> None:
        stream = self._streams.get(camera_id)
        if stream is None:
            return
        await self._on_main_loop(lambda: self._remove_source(stream))
        with self._lock:
            self._by_pad.pop(stream.pad_index, None)  # frames still in flight are dropped
            self._streams.pop(camera_id, None)
        await self._close(stream)
        log.info("stream removed", camera_id=str(camera_id))

    async def _close(self, stream: _Stream) -> None:
        with stream.ctx.lock:
            stream.pending += stream.ctx.book.close_all()
        await self._flush_stream(stream)

    # --- figures -----------------------------------------------------------------------------

    def stream_ids(self) -> set[UUID]:
        return set(self._streams)

    def stream_stats(self) -> list[node_pb2.StreamStats]:
        stats = []
        for stream in list(self._streams.values()):
            stream.ctx.counters.active_tracks = len(stream.ctx.book)
            stats.append(stream.ctx.counters.report())
        return stats

    def queue_depths(self) -> dict[str, int]:
        return {"records": self._records.qsize(),
                "publish": sum(len(s.pending) for s in list(self._streams.values()))}

    def inference_seconds(self) -> float:
        seconds, batches = self._inference
        self._inference = [0.0, 0]
        return seconds / batches if batches else 0.0

    # --- probes (streaming threads) ----------------------------------------------------------

    def _context(self, pad_index: int) -> StreamContext | None:
        stream = self._by_pad.get(pad_index)
        return stream.ctx if stream is not None else None

    def _batch(self, info):
        buffer = info.get_buffer()
        return buffer, (self.meta.batch(buffer) if buffer is not None else None)

    def _probe_on_muxer_event(self, _pad, info):
        event = info.get_event()
        if event is not None and event.type == self._gst.EventType.EOS:
            return self._gst.PadProbeReturn.DROP
        return self._gst.PadProbeReturn.OK

    def _probe_on_batch_formed(self, _pad, info):
        _, batch = self._batch(info)
        if batch is not None:
            now = time.monotonic()
            for frame in self.meta.frames(batch):
                ctx = self._context(int(frame.pad_index))
                if ctx is not None:
                    ctx.counters.frame_decoded(capture_time(int(frame.ntp_timestamp)))
                    self._batch_started[(int(frame.pad_index), int(frame.frame_num))] = now
        return self._gst.PadProbeReturn.OK

    def _guarded(self, name, fn):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a bad frame must not stop the pipeline
            log.exception("probe failed", probe=name, error=str(exc))
        return self._gst.PadProbeReturn.OK

    def _probe_on_faces(self, _pad, info):
        _, batch = self._batch(info)
        return self._guarded("faces", lambda: batch is not None and self.stages.on_faces(batch))

    def _probe_on_persons(self, _pad, info):
        _, batch = self._batch(info)
        return self._guarded("persons", lambda: batch is not None and self.stages.on_persons(batch))

    def _probe_on_tracked(self, _pad, info):
        _, batch = self._batch(info)
        return self._guarded("tracked", lambda: batch is not None and self.stages.on_tracked(batch))

    def _probe_on_embedded(self, _pad, info):
        buffer, batch = self._batch(info)
        return self._guarded("embedded",
                             lambda: batch is not None and self.stages.on_embedded(batch, buffer, self._encoder))

    def _probe_on_collect(self, _pad, info):
        _, batch = self._batch(info)

        def collect():
            if batch is None:
                return
            now = time.monotonic()
            records = self.stages.on_collect(batch)
            spent = [now - self._batch_started.pop((r.pad_index, r.frame_number), now) for r in records]
            if records:
                self._inference[0] += max(spent)
                self._inference[1] += 1
            for record, seconds in zip(records, spent):
                stream = self._by_pad.get(record.pad_index)
                if stream is None:
                    continue
                stream.ctx.counters.frame_processed(seconds)
                try:
                    self._records.put_nowait(record)
                except queue.Full:
                    stream.ctx.counters.frames_dropped()
        return self._guarded("collect", collect)

    # --- bus ---------------------------------------------------------------------------------

    def _on_bus_message(self, _bus, message):
        Gst = self._gst
        if message.type == Gst.MessageType.ELEMENT:
            structure = message.get_structure()
            if structure is not None and structure.has_name("stream-eos"):
                ok, pad_index = structure.get_uint("stream-id")
                stream = self._by_pad.get(pad_index) if ok else None
                if stream is not None and not stream.finished:
                    stream.finished = True
                    asyncio.run_coroutine_threadsafe(self._finish(stream), self._aio)
        elif message.type in (Gst.MessageType.ERROR, Gst.MessageType.WARNING):
            error, debug = message.parse_error() if message.type == Gst.MessageType.ERROR else message.parse_warning()
            stream = self._stream_of(message.src)
            if stream is not None:  # a camera's trouble; nvurisrcbin reconnects RTSP by itself
                stream.ctx.counters.set_state(node_pb2.STREAM_STATE_RECONNECTING, str(error))
            log.warning("gstreamer message", source=message.src.get_name() if message.src else "",
                        error=str(error), debug=debug)
        return True

    def _stream_of(self, element):
        while element is not None:
            name = element.get_name() or ""
            if name.startswith("source-"):
                try:
                    return self._by_pad.get(int(name.split("-", 1)[1]))
                except ValueError:
                    return None
            element = element.get_parent()
        return None

    async def _finish(self, stream: _Stream) -> None:
        await self._close(stream)
        stream.ctx.counters.set_state(node_pb2.STREAM_STATE_STOPPED)
        log.info("stream ended", camera_id=str(stream.spec.camera_id))

    # --- records → track updates → batches ---------------------------------------------------

    def _work(self) -> None:
        while True:
            record = self._records.get()
            if record is None:
                return
            stream = self._by_pad.get(record.pad_index)
            if stream is None:
                continue
            try:
                seen = sightings(record, stream.ctx, model_version=self.model_version, upload=self.upload)
            except Exception as exc:  # noqa: BLE001 - object storage down: send the frame without snapshots
                log.warning("snapshot upload failed", error=str(exc))
                seen = sightings(record, stream.ctx, model_version=self.model_version, upload=None)
            with stream.ctx.lock:
                updates = stream.ctx.book.observe(record.frame_number, record.capture_time, seen)
                stream.pending += updates
                stream.captures.append(record.capture_time)
                stream.frame_size = record.frame_size

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.publish_interval_s / 2)
            now = time.monotonic()
            for stream in list(self._streams.values()):
                if stream.pending and (now - stream.last_flush >= self.publish_interval_s
                                       or len(stream.pending) >= MAX_UPDATES_PER_BATCH // 2):
                    await self._flush_stream(stream)
                elif not stream.pending:
                    with stream.ctx.lock:
                        stream.captures.clear()

    async def _flush_stream(self, stream: _Stream) -> None:
        with stream.ctx.lock:
            updates, stream.pending = stream.pending, []
            captures, stream.captures = stream.captures, []
        stream.last_flush = time.monotonic()
        batches = track_batches(self.node_id, stream.spec.camera_id, stream.epoch, stream.batches,
                                stream.frame_size, updates)
        stream.batches += len(batches)
        for batch in batches:
            await self.publish(batch)
        for moment in captures:
            stream.ctx.counters.published(moment)
