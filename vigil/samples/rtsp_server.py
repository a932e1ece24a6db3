#!/usr/bin/python3
"""A real RTSP server for tests: streams H.264 MP4 files, looping, without re-encoding.

Run with Debian's /usr/bin/python3 (GStreamer's RTSP server through Debian's python3-gi; the
venv's Python cannot import gi). Needs only the standard library and gi: never import vigil here.

    /usr/bin/python3 rtsp_server.py --port 8554 walk=/path/people_walk.mp4 street=/path/street.mp4
    -> rtsp://127.0.0.1:8554/walk, rtsp://127.0.0.1:8554/street

Each file's H.264 access units are read once into memory (qtdemux ! h264parse ! appsink) and fed
to every client's pipeline through appsrc with timestamps that keep growing across loops, so a
stream never ends and never jumps back in time. Every client gets its own stream starting at the
file's first frame (a keyframe): frame k received is frame k of the file, modulo its length.

Prints "READY port=<port>" on stdout once it listens. Exit status 3: GStreamer pieces missing
(run scripts/install-system-deps); 2: a file could not be read.
"""

from __future__ import annotations

import argparse
import signal
import sys

MISSING_DEPS_EXIT = 3
BAD_FILE_EXIT = 2


def _import_gst():
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as exc:
        print(f"missing system packages for the RTSP test server ({exc}); run scripts/install-system-deps",
              file=sys.stderr)
        sys.exit(MISSING_DEPS_EXIT)
    Gst.init(None)
    missing = [name for name in ("qtdemux", "h264parse", "rtph264pay", "appsrc", "appsink")
               if Gst.ElementFactory.find(name) is None]
    if missing:
        print(f"missing GStreamer elements {', '.join(missing)} (gstreamer1.0-plugins-base/-good/-bad); "
              "run scripts/install-system-deps", file=sys.stderr)
        sys.exit(MISSING_DEPS_EXIT)
    return GLib, Gst, GstRtspServer


class Clip:
    """A file's H.264 access units in decode order, with caps and timing."""

    def __init__(self, Gst, path: str):
        self.Gst = Gst
        self.units: list[tuple[bytes, int, int, int, bool]] = []  # data, pts, dts, duration, delta
        self.caps = None
        self._read(path)
        last_pts = max(u[1] for u in self.units)
        frame = self.units[-1][3] or (last_pts // max(1, len(self.units) - 1))
        self.duration = last_pts + frame  # one loop's length: timestamps of loop n add n * this

    def _read(self, path: str) -> None:
        Gst = self.Gst
        pipeline = Gst.parse_launch(
            "filesrc name=src ! qtdemux ! h264parse ! video/x-h264,stream-format=avc,alignment=au "
            "! appsink name=sink sync=false")
        pipeline.get_by_name("src").set_property("location", path)
        sink = pipeline.get_by_name("sink")
        pipeline.set_state(Gst.State.PLAYING)
        bus = pipeline.get_bus()
        try:
            while True:
                # poll: on a demuxer error appsink never sees EOS, and pull-sample would wait forever
                sample = sink.emit("try-pull-sample", Gst.SECOND // 5)
                if sample is None:
                    message = bus.pop_filtered(Gst.MessageType.ERROR)
                    if message is not None:
                        error, _ = message.parse_error()
                        raise ValueError(f"{error.message} (an MP4 with an H.264 track is needed)")
                    if sink.get_property("eos"):
                        break
                    continue
                buf = sample.get_buffer()
                self.caps = self.caps or sample.get_caps()
                self.units.append((
                    buf.extract_dup(0, buf.get_size()), buf.pts, buf.dts if buf.dts != Gst.CLOCK_TIME_NONE else buf.pts,
                    buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else 0,
                    bool(buf.get_flags() & Gst.BufferFlags.DELTA_UNIT),
                ))
        finally:
            pipeline.set_state(Gst.State.NULL)
        if not self.units:
            raise ValueError("no H.264 video found (an MP4 with an H.264 track is needed)")


class Feeder:
    """One client's stream: pushes the clip's units on demand, looping with growing timestamps."""

    def __init__(self, Gst, clip: Clip, appsrc):
        self.Gst, self.clip, self.appsrc = Gst, clip, appsrc
        self.index = 0
        self.offset = 0

    def need_data(self, appsrc, _length) -> None:
        Gst, clip = self.Gst, self.clip
        data, pts, dts, duration, delta = clip.units[self.index]
        buf = Gst.Buffer.new_wrapped(data)
        buf.pts, buf.dts = pts + self.offset, dts + self.offset
        if duration:
            buf.duration = duration
        if delta:
            buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
        appsrc.emit("push-buffer", buf)
        self.index += 1
        if self.index == len(clip.units):
            self.index, self.offset = 0, self.offset + clip.duration


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554, help="0: any free port (printed)")
    parser.add_argument("files", nargs="+", metavar="NAME=PATH", help="mount /NAME streams the MP4 at PATH")
    args = parser.parse_args(argv)
    mounts = {}
    for item in args.files:
        name, sep, path = item.partition("=")
        if not sep or not name or "/" in name:
            parser.error(f"expected NAME=PATH with a NAME without '/', got {item!r}")
        mounts[name] = path

    GLib, Gst, GstRtspServer = _import_gst()
    clips = {}
    for name, path in mounts.items():
        try:
            clips[name] = Clip(Gst, path)
        except (ValueError, GLib.Error) as exc:
            print(f"cannot stream {path}: {exc}", file=sys.stderr)
            return BAD_FILE_EXIT

    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    for name, clip in clips.items():
        factory = GstRtspServer.RTSPMediaFactory()
        # config-interval=-1: SPS/PPS before every keyframe, so any keyframe can start decoding
        factory.set_launch("( appsrc name=src format=time stream-type=stream "
                           "! rtph264pay name=pay0 pt=96 config-interval=-1 )")
        factory.set_shared(False)  # each client starts at frame 0 of the file

        def configure(_factory, media, clip=clip):
            appsrc = media.get_element().get_by_name("src")
            appsrc.set_property("caps", clip.caps)
            feeder = Feeder(Gst, clip, appsrc)
            appsrc.connect("need-data", feeder.need_data)
            media._vigil_feeder = feeder  # lives as long as the media

        factory.connect("media-configure", configure)
        server.get_mount_points().add_factory(f"/{name}", factory)

    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port} (port in use?)", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY port={server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
