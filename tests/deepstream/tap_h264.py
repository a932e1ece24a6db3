#!/usr/bin/python3
"""Runs pipeline/deepstream/encoded.py's tap on real GStreamer, in Debian's Python (the one with
GStreamer's introspection here): a bin that, like nvurisrcbin, plugs its parser at runtime
(filesrc ! qtdemux ! h264parse ! byte-stream access units ! fakesink), tapped through
deep-element-added. Writes what the tap saw as JSON lines (format, then units, data in base64).

    /usr/bin/python3 tap_h264.py VIDEO.mp4 OUT.jsonl
"""

import base64
import importlib.util
import json
import sys
from dataclasses import asdict
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

ENCODED = Path(__file__).resolve().parents[2] / "pipeline/deepstream/encoded.py"


def load_encoded():
    spec = importlib.util.spec_from_file_location("encoded", ENCODED)
    module = importlib.util.module_from_spec(spec)
    sys.modules["encoded"] = module  # dataclasses resolve their module
    spec.loader.exec_module(module)
    return module


def main(video: str, out_path: str) -> int:
    Gst.init(None)
    encoded = load_encoded()
    lines = []
    pipeline = Gst.Pipeline.new("tap")
    source = Gst.Bin.new("source-0")  # stands in for nvurisrcbin
    pipeline.add(source)
    encoded.tap_parsers(Gst, source, lambda f: lines.append({"format": asdict(f)}),
                        lambda u: lines.append({"unit": {**asdict(u), "data": base64.b64encode(u.data).decode()}}))
    filesrc, demux, parse, caps, sink = (Gst.ElementFactory.make(f) for f in
                                         ("filesrc", "qtdemux", "h264parse", "capsfilter", "fakesink"))
    filesrc.set_property("location", video)
    caps.set_property("caps", Gst.Caps.from_string("video/x-h264, stream-format=byte-stream, alignment=au"))
    for element in (filesrc, demux, parse, caps, sink):
        source.add(element)
    filesrc.link(demux)
    parse.link(caps)
    caps.link(sink)
    demux.connect("pad-added", lambda _d, pad: pad.link(parse.get_static_pad("sink")))
    pipeline.set_state(Gst.State.PLAYING)
    message = pipeline.get_bus().timed_pop_filtered(30 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if message is None or message.type != Gst.MessageType.EOS:
        print(message.parse_error() if message else "timed out", file=sys.stderr)
        return 1
    Path(out_path).write_text("\n".join(json.dumps(line) for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
