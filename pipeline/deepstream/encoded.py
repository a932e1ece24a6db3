"""The encoded video of a stream, tapped before its decoder: what clips are cut from.

nvurisrcbin (like uridecodebin and parsebin) plugs a parser (h264parse, h265parse) between the
depayloader or demuxer and nvv4l2decoder, which takes byte-stream access units. The tap watches the
source bin for that parser (GstBin's deep-element-added reaches nested bins too) and probes its
src pad: every buffer is one encoded access unit, the caps event says what they are. No element
is added to the source and nothing is copied unless the stream records.

Standard library and the GStreamer module handed in only (no vigil, no pyds), so that the tests
run it in Debian's Python, the one with GStreamer's introspection here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PARSERS = {"h264parse": "h264", "h265parse": "hevc"}  # GStreamer parser → FFmpeg codec name


@dataclass(frozen=True)
class EncodedFormat:
    codec: str  # FFmpeg's name: "h264", "hevc"
    stream_format: str  # "byte-stream" (Annex B), or a length-prefixed one ("avc", "hvc1", ...)
    alignment: str  # "au": one buffer per frame; "nal": one per NAL unit
    width: int
    height: int

    @property
    def recordable(self) -> bool:
        """Annex B access units: what the clip muxer takes as it is."""
        return self.stream_format == "byte-stream" and self.alignment == "au"


@dataclass(frozen=True)
class EncodedUnit:
    data: bytes
    pts_ns: int | None
    dts_ns: int | None
    duration_ns: int | None
    keyframe: bool


def encoded_format(caps) -> EncodedFormat | None:
    """The format of a parser's output caps (None for anything but H.264/H.265)."""
    if caps is None or not caps.get_size():
        return None
    structure = caps.get_structure(0)
    codec = {"video/x-h264": "h264", "video/x-h265": "hevc"}.get(structure.get_name())
    if codec is None:
        return None
    stream_format, alignment = structure.get_string("stream-format"), structure.get_string("alignment")
    (has_width, width), (has_height, height) = structure.get_int("width"), structure.get_int("height")
    return EncodedFormat(codec, stream_format or "byte-stream", alignment or "au",
                         width if has_width else 0, height if has_height else 0)


def tap_parsers(gst, source_bin, on_format: Callable[[EncodedFormat], None],
                on_unit: Callable[[EncodedUnit], None]) -> int:
    """Call on_format with the parser's caps and on_unit with every access unit it outputs, for
    the parsers that appear inside `source_bin` from now on (on its streaming threads). Returns
    the signal handler id."""

    def time(value: int) -> int | None:
        return None if value == gst.CLOCK_TIME_NONE else int(value)

    def probe(_pad, info):
        if info.type & gst.PadProbeType.BUFFER:
            buffer = info.get_buffer()
            ok, mapped = buffer.map(gst.MapFlags.READ)
            if ok:
                try:
                    data = bytes(mapped.data)
                finally:
                    buffer.unmap(mapped)
                on_unit(EncodedUnit(data, time(buffer.pts), time(buffer.dts), time(buffer.duration),
                                    not buffer.has_flags(gst.BufferFlags.DELTA_UNIT)))
        else:
            event = info.get_event()
            if event is not None and event.type == gst.EventType.CAPS:
                found = encoded_format(event.parse_caps())
                if found is not None:
                    on_format(found)
        return gst.PadProbeReturn.OK

    def on_added(_bin, _parent, element):
        factory = element.get_factory()
        if factory is not None and factory.get_name() in PARSERS:
            element.get_static_pad("src").add_probe(
                gst.PadProbeType.BUFFER | gst.PadProbeType.EVENT_DOWNSTREAM, probe)

    return source_bin.connect("deep-element-added", on_added)
