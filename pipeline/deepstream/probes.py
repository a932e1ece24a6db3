"""The pad probes of the DeepStream graph (graph.py's Probe list names the methods here), on
GStreamer streaming threads: each reads its buffer's batch metadata and hands it to stages.py. The
last one, on the RGBA frames behind the tracker, crops the faces to embed from the GPU surface,
queues snapshots and turns each frame into a FrameRecord for the backend's worker, which embeds
its crops and makes track updates of it. A probe never raises: a bad frame is logged and the
pipeline goes on.

The EOS the muxer sends downstream when its last pad goes is dropped (Savant #97): a node with no
streams keeps its pipeline for the next assignment.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

from vigil.logs import get_logger
from vigil.pipeline.deepstream.graph import GraphSettings
from vigil.pipeline.deepstream.meta import Meta
from vigil.pipeline.deepstream.sources import Stream
from vigil.pipeline.deepstream.stages import FrameRecord, Stages, StreamContext, capture_time
from vigil.pipeline.streams import InferenceTimes

log = get_logger("vigil.pipeline.deepstream")

RECORD_QUEUE = 256  # frames waiting for upload/track bookkeeping; beyond it frames are dropped


class Probes:
    def __init__(self, meta: Meta, settings: GraphSettings, streams: Callable[[int], Stream | None]):
        self.meta = meta
        self.streams = streams  # by muxer pad index
        self.stages = Stages(meta, settings, self._context)
        self.records: queue.Queue[FrameRecord | None] = queue.Queue(RECORD_QUEUE)
        self.inference = InferenceTimes()  # muxer to the last probe, per batch
        self._batch_started: dict[tuple[int, int], float] = {}  # (pad, frame number) → when batched
        self._gst: Any = None  # GStreamer, once the backend starts
        self._encoder = None

    def attach(self, gst, encoder) -> None:
        """GStreamer (imported once the backend starts) and the object encoder for snapshots."""
        self._gst, self._encoder = gst, encoder

    def handler(self, name: str) -> Callable:
        """The callback a graph.Probe names."""
        return getattr(self, name)

    def _context(self, pad_index: int) -> StreamContext | None:
        stream = self.streams(pad_index)
        return stream.ctx if stream is not None else None

    def _batch(self, info):
        buffer = info.get_buffer()
        return buffer, (self.meta.batch(buffer) if buffer is not None else None)

    def _guarded(self, name: str, fn) -> object:
        try:
            fn()
        except Exception as exc:
            log.exception("probe failed", probe=name, error=str(exc))
        return self._gst.PadProbeReturn.OK

    # --- the probes --------------------------------------------------------------------------

    def on_muxer_event(self, _pad, info):
        event = info.get_event()
        if event is not None and event.type == self._gst.EventType.EOS:
            return self._gst.PadProbeReturn.DROP
        return self._gst.PadProbeReturn.OK

    def on_batch_formed(self, _pad, info):
        _, batch = self._batch(info)
        if batch is not None:
            now = time.monotonic()
            for frame in self.meta.frames(batch):
                ctx = self._context(int(frame.pad_index))
                if ctx is not None:
                    ctx.counters.frame_decoded(capture_time(int(frame.ntp_timestamp)))
                    self._batch_started[(int(frame.pad_index), int(frame.frame_num))] = now
        return self._gst.PadProbeReturn.OK

    def on_faces(self, _pad, info):
        _, batch = self._batch(info)
        return self._guarded("faces", lambda: batch is not None and self.stages.on_faces(batch))

    def on_objects(self, _pad, info):
        _, batch = self._batch(info)
        return self._guarded("objects", lambda: batch is not None and self.stages.on_objects(batch))

    def on_tracked(self, _pad, info):
        buffer, batch = self._batch(info)

        def collect():
            if batch is None:
                return
            self.stages.on_tracked(batch, lambda frame: self.meta.surface(buffer, frame))
            self.stages.on_snapshots(batch, buffer, self._encoder)
            now = time.monotonic()
            records = self.stages.on_collect(batch)
            spent = [now - self._batch_started.pop((r.pad_index, r.frame_number), now) for r in records]
            if records:
                self.inference.add(max(spent))
            for record, seconds in zip(records, spent):
                stream = self.streams(record.pad_index)
                if stream is None:
                    continue
                stream.ctx.counters.frame_processed(seconds)
                try:
                    self.records.put_nowait(record)
                except queue.Full:
                    stream.ctx.counters.frames_dropped()
        return self._guarded("tracked", collect)
