"""The DeepStream backend: the graph of graph.py in one GStreamer pipeline, driven from a GLib
main loop thread. sources.py adds and removes the streams' nvurisrcbins at runtime, probes.py
reads the metadata on the streaming threads; here: the pipeline's life, the bus, and the worker
that turns frame records into track updates in each stream's outbox.

A file without loop ends with a per-stream "stream-eos" bus message: its tracks end and it is
listed STOPPED until the control plane removes it, as on the portable backend.

Faces are embedded here, off the streaming threads: the probes hand over their aligned crops
(cut on the GPU), the worker sends them to the face embedder in Triton, the client the portable
backend uses. Clips are cut from each recording stream's buffer of encoded video (clips.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from vigil.api.v1 import node_pb2
from vigil.logs import get_logger
from vigil.pipeline.deepstream.graph import Caps, Graph, GraphSettings, build_graph
from vigil.pipeline.deepstream.meta import Meta
from vigil.pipeline.deepstream.probes import Probes
from vigil.pipeline.deepstream.sources import Sources, Stream
from vigil.pipeline.deepstream.stages import Embed, embed_faces, sightings
from vigil.pipeline.messages import SnapshotRef
from vigil.pipeline.outbox import Publish, StreamOutbox
from vigil.pipeline.recording import Clip, ClipUnavailable, PacketRing
from vigil.pipeline.streams import StreamCounters, StreamSpec

log = get_logger("vigil.pipeline.deepstream")

MAIN_LOOP_TIMEOUT_S = 30.0
CLIP_BUFFER_S = 30.0  # encoded video kept per recording stream, as on the portable backend


def select_muxer(new_muxer: bool) -> None:
    """DeepStream picks the nvstreammux implementation from USE_NEW_NVSTREAMMUX in the process
    environment (not an element property) when its plugin loads: this must run before GStreamer
    is initialised, so that the muxer made matches the properties graph.py gives it."""
    wanted = "yes" if new_muxer else "no"
    if os.environ.get("USE_NEW_NVSTREAMMUX", wanted).lower() != wanted:
        log.warning("USE_NEW_NVSTREAMMUX overridden by node.deepstream.new_muxer", new_muxer=new_muxer)
    os.environ["USE_NEW_NVSTREAMMUX"] = wanted


class DeepStreamBackend:
    name = "deepstream"
    node_backend = node_pb2.NODE_BACKEND_DEEPSTREAM

    def __init__(self, *, node_id: UUID, publish: Publish, graph_settings: GraphSettings, model_version: str,
                 upload: Callable[[str, bytes], SnapshotRef] | None, embed: Embed | None,
                 publish_interval_s: float = 0.25, clip_buffer_s: float = CLIP_BUFFER_S, meta: Meta | None = None):
        self.node_id = node_id
        self.publish = publish
        self.gs = graph_settings
        self.model_version = model_version
        self.upload = upload
        self.embed = embed  # None: faces are tracked, not embedded
        self.clip_buffer_s = clip_buffer_s
        self.publish_interval_s = publish_interval_s
        self.meta = meta or Meta.load()
        self.graph: Graph = build_graph(graph_settings)
        self.sources = Sources(graph_settings)
        self.probes = Probes(self.meta, graph_settings, self.sources.by_pad)
        # GStreamer and GLib (imported when the pipeline starts) and their objects: untyped here
        self._gst: Any = None
        self._glib: Any = None
        self._pipeline: Any = None
        self._loop: Any = None
        self._loop_thread: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self._encoder: Any = None
        self._task: asyncio.Task | None = None
        self._aio: Any = None  # the asyncio loop the bus hands stream ends to

    @classmethod
    def from_settings(cls, settings, endpoints, *, node_id: UUID, publish: Publish) -> DeepStreamBackend:
        from vigil.models.faces import FaceAnalyzer
        from vigil.storage.objectstore import ObjectStore

        gs = GraphSettings.from_settings(settings)
        objects = ObjectStore.from_endpoints(endpoints)
        faces = FaceAnalyzer(endpoints)

        def upload(key: str, data: bytes) -> SnapshotRef:
            stored = objects.put(key, data, content_type="image/jpeg")
            return SnapshotRef(key=key, sha256=stored.sha256, size_bytes=len(data))

        return cls(node_id=node_id, publish=publish, graph_settings=gs,
                   model_version=settings.node.embedding_model_version, upload=upload, embed=faces.embed,
                   publish_interval_s=settings.node.publish_interval_s)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        select_muxer(self.gs.new_muxer)  # before Gst.init: DeepStream reads it from the environment
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import GLib, Gst

        self._gst, self._glib = Gst, GLib
        Gst.init(None)
        self._aio = asyncio.get_running_loop()
        self._encoder = self.meta.encoder(self.gs.gpu_id)
        self._pipeline = self._build()
        self._loop = GLib.MainLoop()
        bus = self._pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_bus_message)
        self._loop_thread = threading.Thread(target=self._loop.run, name="deepstream-glib", daemon=True)
        self._loop_thread.start()
        await self._on_main_loop(lambda: self._pipeline.set_state(Gst.State.PLAYING))
        self._worker = threading.Thread(target=self._work, name="deepstream-records", daemon=True)
        self._worker.start()
        self._task = asyncio.create_task(self._flush_loop(), name="deepstream-publish")
        log.info("deepstream pipeline playing", elements=[e.name for e in self.graph.elements])

    async def stop(self) -> None:
        for camera_id in self.sources.camera_ids():
            await self.remove_stream(camera_id)
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pipeline is not None:
            await self._on_main_loop(lambda: self._pipeline.set_state(self._gst.State.NULL))
            self.meta.close_encoder(self._encoder)
            self._loop.quit()
        self.probes.records.put(None)

    def _build(self):
        """The GStreamer pipeline of self.graph, its probes attached."""
        Gst = self._gst
        pipeline = Gst.Pipeline.new("vigil")
        made = {}
        for spec in self.graph.elements:
            element = Gst.ElementFactory.make(spec.factory, spec.name)
            if element is None:
                raise RuntimeError(f"GStreamer cannot make {spec.factory!r}: is DeepStream installed?")
            for key, value in spec.properties.items():
                element.set_property(key, Gst.Caps.from_string(value.text) if isinstance(value, Caps) else value)
            pipeline.add(element)
            made[spec.name] = element
        for src, dst in self.graph.links:
            if not made[src].link(made[dst]):
                raise RuntimeError(f"cannot link {src} to {dst}")
        self.probes.attach(Gst, self._encoder)
        for probe in self.graph.probes:
            pad = made[probe.element].get_static_pad(probe.pad)
            kind = Gst.PadProbeType.EVENT_DOWNSTREAM if probe.kind == "event" else Gst.PadProbeType.BUFFER
            pad.add_probe(kind, self.probes.handler(probe.handler))
        self.sources.attach(Gst, pipeline, made["muxer"])
        return pipeline

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
        if self.sources.get(spec.camera_id) is not None:
            await self.update_stream(spec)
            return
        outbox = StreamOutbox(self.node_id, spec, StreamCounters(spec.camera_id), self.publish)
        recording = PacketRing(self.clip_buffer_s) if spec.settings.recording_enabled else None
        stream = self.sources.register(spec, outbox, recording)
        await self._on_main_loop(lambda: self.sources.start(stream))
        log.info("stream added", camera_id=str(spec.camera_id), pad=stream.pad_index,
                 source=spec.source_url.split("?")[0])

    async def update_stream(self, spec: StreamSpec) -> None:
        stream = self.sources.get(spec.camera_id)
        if stream is None:
            await self.add_stream(spec)
        elif _source_of(spec) != _source_of(stream.spec):
            await self.remove_stream(spec.camera_id)  # a new source: its tracks start afresh
            await self.add_stream(spec)
        else:
            stream.spec = spec
            with stream.ctx.lock:
                stream.ctx.settings = spec.settings
            stream.outbox.configure(spec)

    async def remove_stream(self, camera_id: UUID) -> None:
        stream = self.sources.get(camera_id)
        if stream is None:
            return
        await self._on_main_loop(lambda: self.sources.stop(stream))
        self.sources.unregister(stream)
        await stream.outbox.close()
        log.info("stream removed", camera_id=str(camera_id))

    async def _finish(self, stream: Stream) -> None:
        await stream.outbox.close()
        stream.ctx.counters.set_state(node_pb2.STREAM_STATE_STOPPED)
        log.info("stream ended", camera_id=str(stream.spec.camera_id))

    def cut_clip(self, camera_id: UUID, start: datetime, end: datetime) -> Clip:
        """An MP4 of the stream's encoded video from start to end (called on a worker thread)."""
        stream = self.sources.get(camera_id)
        if stream is None:
            raise ClipUnavailable(f"camera {camera_id} does not run on this node")
        if stream.recording is None:
            raise ClipUnavailable(f"recording is disabled for camera {camera_id}")
        return stream.recording.cut(start, end)

    # --- figures -----------------------------------------------------------------------------

    def stream_ids(self) -> set[UUID]:
        return self.sources.camera_ids()

    def stream_stats(self) -> list[node_pb2.StreamStats]:
        return [stream.outbox.report() for stream in self.sources.streams()]

    def queue_depths(self) -> dict[str, int]:
        return {"records": self.probes.records.qsize(),
                "publish": sum(len(s.outbox) for s in self.sources.streams())}

    def inference_seconds(self) -> float:
        return self.probes.inference.take_mean()

    # --- bus (GLib main loop thread) ---------------------------------------------------------

    def _on_bus_message(self, _bus, message):
        Gst = self._gst
        if message.type == Gst.MessageType.ELEMENT:
            structure = message.get_structure()
            if structure is not None and structure.has_name("stream-eos"):
                ok, pad_index = structure.get_uint("stream-id")
                stream = self.sources.by_pad(pad_index) if ok else None
                if stream is not None and not stream.finished:
                    stream.finished = True
                    asyncio.run_coroutine_threadsafe(self._finish(stream), self._aio)
        elif message.type in (Gst.MessageType.ERROR, Gst.MessageType.WARNING):
            error, debug = message.parse_error() if message.type == Gst.MessageType.ERROR else message.parse_warning()
            stream = self.sources.owner_of(message.src)
            if stream is not None:  # a camera's trouble; nvurisrcbin reconnects RTSP by itself
                stream.ctx.counters.set_state(node_pb2.STREAM_STATE_RECONNECTING, str(error))
            log.warning("gstreamer message", source=message.src.get_name() if message.src else "",
                        error=str(error), debug=debug)
        return True

    # --- records → track updates → batches ---------------------------------------------------

    def _work(self) -> None:
        while True:
            record = self.probes.records.get()
            if record is None:
                return
            stream = self.sources.by_pad(record.pad_index)
            if stream is None:
                continue
            if self.embed is not None:
                try:
                    record = embed_faces(record, self.embed)
                except Exception as exc:  # noqa: BLE001 - Triton down: the frame goes without embeddings
                    log.warning("face embedding failed", error=str(exc))
            try:
                try:
                    seen = sightings(record, stream.ctx, model_version=self.model_version, upload=self.upload)
                except Exception as exc:  # noqa: BLE001 - object storage down: send the frame without snapshots
                    log.warning("snapshot upload failed", error=str(exc))
                    seen = sightings(record, stream.ctx, model_version=self.model_version, upload=None)
                stream.outbox.observe(record.frame_number, record.capture_time, seen, record.frame_size)
            except Exception:
                log.exception("frame record dropped", pad=record.pad_index, frame=record.frame_number)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.publish_interval_s / 2)
            for stream in self.sources.streams():
                await stream.outbox.flush_if_due(self.publish_interval_s)


def _source_of(spec: StreamSpec) -> tuple:
    """What the stream's nvurisrcbin is made from: a change means a new source."""
    return (spec.source_url, spec.username, spec.password, spec.settings.max_inference_fps,
            spec.settings.recording_enabled)
