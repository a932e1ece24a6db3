"""The streams of the DeepStream pipeline: one nvurisrcbin per stream on a muxer request pad,
added and removed at runtime, and the lookups from camera, pad index or GStreamer element to it.

Runtime add/remove follows DeepStream's runtime_source_add_delete procedure, with the pitfalls
reported against it handled:
- start() and stop() run on the GLib main loop thread (the backend calls them through
  GLib.idle_add), never in a streaming thread or the asyncio thread: releasing a muxer pad from a
  streaming thread deadlocks (deepstream-services-library #206/#359/#606);
- stop: source bin to NULL first (no more data on the pad), then EOS and FLUSH_STOP on the muxer
  sink pad so the muxer flushes that stream (the new muxer refuses a release before EOS: "release
  pad called before push events", Savant #30), then release the pad, then remove the bin;
- pad indices are never reused within a run: frames of a removed stream still in flight
  downstream cannot be taken for the new stream, and nvinfer/nvtracker never see a source id come
  back after its EOS (Savant #30: "Source info not found for source N").

A recording stream's encoded access units are tapped at the parser inside its nvurisrcbin
(encoded.py) into its clip buffer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from vigil.api.v1 import node_pb2
from vigil.pipeline.deepstream.clips import EncodedRecorder
from vigil.pipeline.deepstream.encoded import tap_parsers
from vigil.pipeline.deepstream.graph import SOURCE_PREFIX, GraphSettings, source_plan
from vigil.pipeline.deepstream.stages import StreamContext
from vigil.pipeline.outbox import StreamOutbox
from vigil.pipeline.recording import PacketRing
from vigil.pipeline.streams import StreamSpec


@dataclass
class Stream:
    spec: StreamSpec
    pad_index: int
    ctx: StreamContext  # what the probes read
    outbox: StreamOutbox
    recording: PacketRing | None = None  # encoded video for clips; None when the stream records nothing
    source: Any = None  # the nvurisrcbin
    finished: bool = False  # its file ended (stream-eos)


class Sources:
    """The streams by camera and by muxer pad, and their nvurisrcbins. Lookups are safe on any
    thread; start() and stop() touch GStreamer and run on the GLib main loop thread only."""

    def __init__(self, settings: GraphSettings):
        self.settings = settings
        self._by_camera: dict[UUID, Stream] = {}
        self._by_pad: dict[int, Stream] = {}
        self._next_pad = 0
        self._lock = threading.Lock()
        self._gst: Any = None  # GStreamer objects, untyped here
        self._pipeline: Any = None
        self._muxer: Any = None

    def attach(self, gst, pipeline, muxer) -> None:
        """The built pipeline, and the muxer whose request pads the sources link to."""
        self._gst, self._pipeline, self._muxer = gst, pipeline, muxer

    # --- lookups -----------------------------------------------------------------------------

    def get(self, camera_id: UUID) -> Stream | None:
        return self._by_camera.get(camera_id)

    def by_pad(self, pad_index: int) -> Stream | None:
        return self._by_pad.get(pad_index)

    def streams(self) -> list[Stream]:
        return list(self._by_camera.values())

    def camera_ids(self) -> set[UUID]:
        return set(self._by_camera)

    def owner_of(self, element) -> Stream | None:
        """The stream whose source bin holds this element (a bus message's sender)."""
        while element is not None:
            name = element.get_name() or ""
            if name.startswith(SOURCE_PREFIX):
                try:
                    return self._by_pad.get(int(name[len(SOURCE_PREFIX):]))
                except ValueError:
                    return None
            element = element.get_parent()
        return None

    # --- membership --------------------------------------------------------------------------

    def register(self, spec: StreamSpec, outbox: StreamOutbox, recording: PacketRing | None = None) -> Stream:
        """A new stream, on a pad index not used before in this run."""
        with self._lock:
            pad_index, self._next_pad = self._next_pad, self._next_pad + 1
            ctx = StreamContext(spec.camera_id, spec.settings, outbox.book, outbox.counters, outbox.lock)
            stream = Stream(spec, pad_index, ctx, outbox, recording)
            self._by_camera[spec.camera_id] = stream
            self._by_pad[pad_index] = stream
        return stream

    def unregister(self, stream: Stream) -> None:
        """From now on the stream's frames still in flight are dropped."""
        with self._lock:
            self._by_pad.pop(stream.pad_index, None)
            self._by_camera.pop(stream.spec.camera_id, None)

    # --- GStreamer (GLib main loop thread) ---------------------------------------------------

    def start(self, stream: Stream) -> None:
        """Make the stream's nvurisrcbin, link its video pad to the muxer once it appears, play it."""
        Gst = self._gst
        plan = source_plan(stream.spec, stream.pad_index, self.settings)
        source = Gst.ElementFactory.make("nvurisrcbin", plan.name)
        for key, value in plan.properties.items():
            source.set_property(key, value)
        muxer = self._muxer

        def on_pad_added(_bin, pad):
            caps = pad.get_current_caps() or pad.query_caps(None)
            if not caps or not caps.get_structure(0).get_name().startswith("video"):
                return
            sink = muxer.request_pad_simple(plan.mux_pad)
            if pad.link(sink) != Gst.PadLinkReturn.OK:
                stream.ctx.counters.set_state(node_pb2.STREAM_STATE_FAILED, "could not link the source to the muxer")

        source.connect("pad-added", on_pad_added)
        if stream.recording is not None:
            recorder = EncodedRecorder(stream.recording)
            tap_parsers(Gst, source, recorder.on_format, recorder.on_unit)
        self._pipeline.add(source)
        stream.source = source
        if source.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            stream.ctx.counters.set_state(node_pb2.STREAM_STATE_FAILED, "the source did not start")

    def stop(self, stream: Stream) -> None:
        """Take the stream's source out of the running pipeline (the order is in the docstring)."""
        Gst = self._gst
        source = stream.source
        if source is None:
            return
        source.set_state(Gst.State.NULL)
        source.get_state(Gst.CLOCK_TIME_NONE)
        pad = self._muxer.get_static_pad(f"sink_{stream.pad_index}")
        if pad is not None:  # None when the source never produced video
            pad.send_event(Gst.Event.new_eos())
            pad.send_event(Gst.Event.new_flush_stop(False))
            self._muxer.release_request_pad(pad)
        self._pipeline.remove(source)
        stream.source = None
