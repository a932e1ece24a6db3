"""Clips on the DeepStream backend: each recording stream's tapped access units (encoded.py) go
into the same PacketRing as the portable backend's demuxed packets (pipeline/recording.py), and
clips are cut from it by stream copy.

A segment (one set of codec parameters) starts at the first keyframe after the parser's caps
change or its timestamps go back (a looping file, a reconnect); its parameters are read from that
keyframe's in-band parameter sets (SPS/PPS, and VPS for H.265) by FFmpeg's raw-stream demuxer.
Streams often send them with the first keyframe only, so the recorder keeps the latest ones and
puts them in front of every keyframe that lacks them: each clip then starts self-contained.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from fractions import Fraction

import av
from av.error import FFmpegError

from vigil.logs import get_logger
from vigil.pipeline.deepstream.encoded import EncodedFormat, EncodedUnit
from vigil.pipeline.recording import PacketRing

log = get_logger("vigil.pipeline.deepstream")

NS = Fraction(1, 1_000_000_000)
PARAMETER_SETS = {"h264": (7, 8), "hevc": (32, 33, 34)}  # NAL unit types: (VPS,) SPS, PPS


def nal_units(data: bytes) -> list[tuple[int, bytes]]:
    """The NAL units of an Annex B access unit: (offset of the first header byte, unit with its start code)."""
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        begin = i - 1 if i > 0 and data[i - 1] == 0 else i
        starts.append((begin, i + 3))
        i = data.find(b"\x00\x00\x01", i + 3)
    return [(header, data[begin:(starts[k + 1][0] if k + 1 < len(starts) else len(data))])
            for k, (begin, header) in enumerate(starts)]


def nal_type(codec: str, header: int) -> int:
    return header & 0x1F if codec == "h264" else (header >> 1) & 0x3F


class EncodedRecorder:
    """Feeds one stream's PacketRing from its parser's output (called on a streaming thread)."""

    def __init__(self, ring: PacketRing, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.ring = ring
        self.clock = clock
        self._format: EncodedFormat | None = None
        self._time_base: Fraction | None = None  # of the open segment; None: wait for a keyframe
        self._last_ns: int | None = None
        self._parameter_sets: dict[int, bytes] = {}  # NAL type → the latest such unit

    def on_format(self, found: EncodedFormat) -> None:
        if found == self._format:
            return
        if not found.recordable:
            log.warning("stream not recordable: clips need byte-stream access units", codec=found.codec,
                        stream_format=found.stream_format, alignment=found.alignment)
        self._format, self._time_base = found, None

    def on_unit(self, unit: EncodedUnit) -> None:
        found = self._format
        if found is None or found.stream_format != "byte-stream" or not unit.data:
            return
        data = self._with_parameter_sets(found.codec, unit.data) if unit.keyframe else unit.data
        if not found.recordable:
            return
        stamp = unit.dts_ns if unit.dts_ns is not None else unit.pts_ns
        if stamp is not None and self._last_ns is not None and stamp < self._last_ns:
            self._time_base = None  # time went back: a new segment from the next keyframe
        self._last_ns = stamp if stamp is not None else self._last_ns
        if self._time_base is None:
            if not unit.keyframe:
                return
            self._time_base = self._start_segment(found.codec, data)
        time_base = self._time_base
        if time_base is None:
            return

        def ticks(ns: int | None) -> int | None:
            return None if ns is None else round(ns * NS / time_base)

        packet = av.Packet(data)
        packet.pts, packet.dts = ticks(unit.pts_ns), ticks(unit.dts_ns)
        packet.duration = ticks(unit.duration_ns) or 0
        packet.time_base = time_base
        packet.is_keyframe = unit.keyframe
        self.ring.add(packet, self.clock())

    def _with_parameter_sets(self, codec: str, data: bytes) -> bytes:
        """The keyframe with the latest parameter sets in front, when it carries none itself."""
        wanted = PARAMETER_SETS[codec]
        found = {}
        for header, unit in nal_units(data):
            kind = nal_type(codec, data[header]) if header < len(data) else -1
            if kind in wanted:
                found[kind] = unit
        if found:
            self._parameter_sets.update(found)
            return data
        return b"".join(self._parameter_sets[k] for k in wanted if k in self._parameter_sets) + data

    def _start_segment(self, codec: str, keyframe: bytes) -> Fraction | None:
        try:
            with av.open(io.BytesIO(keyframe), "r", format=codec) as parsed:
                stream = parsed.streams.video[0]
                if not stream.width or not stream.time_base:  # no SPS seen yet: no frame size, nothing to mux
                    return None
                self.ring.start_segment(stream)
                return Fraction(stream.time_base)
        except (FFmpegError, IndexError) as exc:
            log.warning("keyframe without usable parameters: waiting for the next", error=str(exc))
            return None
