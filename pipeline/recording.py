"""A short ring buffer of ENCODED video per stream, and clips cut from it without re-encoding.

The decoder thread demuxes packets, records each (with its capture time) here, then decodes it.
The buffer always starts at a keyframe and holds at least `seconds` of video; a clip is the
packets from the keyframe at or before its start to its end, muxed into MP4 by stream copy.

Each opened container (a file's loop, a live reconnect) is a segment with its own codec
parameters, kept on an output stream of an unwritten in-memory container so they outlive the
input. A clip never spans two segments: it ends where its segment ends.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

import av


class Segment:
    """Codec parameters of one opened container, detached from the input."""

    def __init__(self, stream: av.video.stream.VideoStream):
        self._holder = av.open(io.BytesIO(), "w", format="mp4")  # never written: it only owns the template
        self.template = self._holder.add_stream_from_template(stream)
        self.time_base: Fraction = stream.time_base


@dataclass(frozen=True)
class _Entry:
    segment: Segment
    capture_time: datetime
    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool


@dataclass(frozen=True)
class Clip:
    data: bytes  # the MP4
    start_time: datetime  # capture time of its first frame
    end_time: datetime  # capture time just after its last frame
    frames: int

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class ClipUnavailable(Exception):
    """The buffer does not cover the requested interval (any more, or yet)."""


class PacketRing:
    def __init__(self, seconds: float):
        self.seconds = timedelta(seconds=seconds)
        self._entries: deque[_Entry] = deque()
        self._lock = threading.Lock()
        self._segment: Segment | None = None

    def start_segment(self, stream) -> None:
        self._segment = Segment(stream)

    def add(self, packet: av.Packet, capture_time: datetime) -> None:
        """Called by the decoder thread for every demuxed video packet, before decoding it."""
        if self._segment is None or packet.size == 0:
            return
        with self._lock:
            if not self._entries and not packet.is_keyframe:
                return  # a clip must start at a keyframe: wait for one
            self._entries.append(_Entry(self._segment, capture_time, bytes(packet), packet.pts, packet.dts,
                                        packet.duration or 0, packet.is_keyframe))
            self._trim(capture_time)

    def _trim(self, newest: datetime) -> None:
        # drop whole keyframe groups while what remains still covers `seconds`
        while True:
            nxt = next((i for i, e in enumerate(self._entries) if i > 0 and e.keyframe), None)
            if nxt is None or newest - self._entries[nxt].capture_time < self.seconds:
                return
            for _ in range(nxt):
                self._entries.popleft()

    def span(self) -> tuple[datetime, datetime] | None:
        with self._lock:
            if not self._entries:
                return None
            return self._entries[0].capture_time, self._entries[-1].capture_time

    def cut(self, start: datetime, end: datetime) -> Clip:
        """The packets from the keyframe at or before `start` up to `end`, as MP4 (stream copy)."""
        with self._lock:
            entries = list(self._entries)
        if not entries or entries[-1].capture_time < start or entries[0].capture_time >= end:
            span = f"{entries[0].capture_time.isoformat()} .. {entries[-1].capture_time.isoformat()}" if entries \
                else "nothing"
            raise ClipUnavailable(f"the recording buffer holds {span}, not {start.isoformat()} .. {end.isoformat()}")
        first = 0
        for i, e in enumerate(entries):
            if e.capture_time > start:
                break
            if e.keyframe:
                first = i
        segment = entries[first].segment
        chosen = []
        for e in entries[first:]:
            if e.capture_time >= end or e.segment is not segment:
                break
            chosen.append(e)
        return _mux(segment, chosen)


def _mux(segment: Segment, entries: list[_Entry]) -> Clip:
    buffer = io.BytesIO()
    base = min((e.dts if e.dts is not None else e.pts or 0) for e in entries)
    with av.open(buffer, "w", format="mp4") as output:
        stream = output.add_stream_from_template(segment.template)
        for e in entries:
            packet = av.Packet(e.data)
            packet.pts = None if e.pts is None else e.pts - base
            packet.dts = None if e.dts is None else e.dts - base
            packet.duration = e.duration
            packet.time_base = segment.time_base
            packet.is_keyframe = e.keyframe
            packet.stream = stream
            output.mux(packet)
    last = entries[-1]
    frame_time = timedelta(seconds=float(last.duration * segment.time_base)) if last.duration else timedelta(0)
    return Clip(buffer.getvalue(), entries[0].capture_time, last.capture_time + frame_time, len(entries))
