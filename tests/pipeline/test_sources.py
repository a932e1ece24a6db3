"""Decoding on the portable backend: recorded files (native rate, as fast as possible, looped)
and live RTSP from a real GStreamer server, including the server going away and coming back."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import av
import pytest

from vigil.api.v1 import node_pb2
from vigil.pipeline.portable.source import SourceOptions, VideoSource
from vigil.pipeline.streams import StreamCounters, StreamSpec
from vigil.samples import RtspTestServer, encode_h264

MEDIA_CACHE = Path(__file__).resolve().parents[2] / ".vigil" / "media"
CLIP_FRAMES = 30  # 2 s at 15 fps: a native-rate replay loops within seconds (people_walk plays for 20 s)


@pytest.fixture(scope="module")
def short_walk(videos, tmp_path_factory) -> Path:
    """The first CLIP_FRAMES pictures of people_walk as an H.264 file of their own, at its rate."""
    walk = videos["people_walk"]
    path = tmp_path_factory.mktemp("sources") / "short_walk.mp4"
    with av.open(str(walk.path)) as container:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(CLIP_FRAMES), container.decode(video=0))]
    encode_h264(frames, path, walk.width, walk.height, int(walk.fps))
    return path


def source(url: str, fps: int = 15, **options) -> VideoSource:
    spec = StreamSpec(uuid.uuid4(), None, url, fps)
    return VideoSource(spec, StreamCounters(spec.camera_id), backoff=(0.2, 1.0), **options)


def drain(src: VideoSource, until, timeout_s: float) -> list:
    frames, deadline = [], time.monotonic() + timeout_s
    while not until(frames) and time.monotonic() < deadline:
        frames += src.take(8)
        time.sleep(0.005)
    return frames


def test_url_options():
    spec = StreamSpec(uuid.uuid4(), None, "file:///v/a%20b.mp4?loop=true&rate=max", 25)
    assert SourceOptions.of(spec) == SourceOptions("/v/a b.mp4", True, True, False)
    live = StreamSpec(uuid.uuid4(), None, "rtsp://cam.local/h264", 25, username="op", password="p@ss:w")
    assert SourceOptions.of(live).location == "rtsp://op:p%40ss%3Aw@cam.local/h264"
    assert "p@ss" not in repr(live)  # credentials never reach logs through the spec


def test_a_file_as_fast_as_possible_loses_no_frame(videos):
    walk = videos["people_walk"]
    src = source(f"file://{walk.path}?rate=max", queue_size=2)
    src.start()
    frames = drain(src, lambda f: src.finished.is_set() and not src.pending(), 60)
    assert [f.number for f in frames] == list(range(walk.frames))
    assert src.counters.dropped == 0 and (frames[0].width, frames[0].height) == (walk.width, walk.height)


def test_a_file_at_native_rate_keeps_its_clock_and_loops(videos, short_walk):
    fps = videos["people_walk"].fps
    src = source(f"file://{short_walk}?loop=true")
    src.start()
    try:
        frames = drain(src, lambda f: len(f) >= CLIP_FRAMES + 5, CLIP_FRAMES / fps + 15)
    finally:
        src.stop()
    assert len(frames) >= CLIP_FRAMES + 5
    # capture times follow the video's own rate: 15 fps → 1/15 s apart
    span = (frames[CLIP_FRAMES - 1].capture_time - frames[0].capture_time).total_seconds()
    assert span == pytest.approx((CLIP_FRAMES - 1) / fps, abs=0.05)
    assert frames[CLIP_FRAMES].number == CLIP_FRAMES  # the loop keeps counting


def test_a_missing_file_fails_with_a_reason():
    src = source("file:///nonexistent/video.mp4")
    src.start()
    src.join(10)
    assert src.counters.state == node_pb2.STREAM_STATE_FAILED
    assert "/nonexistent/video.mp4" in src.counters.last_error


@pytest.mark.stack  # an RTSP server of its own
def test_rtsp_reconnects_after_the_server_comes_back(videos):
    street = videos["people_street"]
    with RtspTestServer({"street": street.path}) as server:
        src = source(server.url("street"), fps=int(street.fps))
        src.start()
        try:
            assert len(drain(src, lambda f: len(f) >= 10, 30)) >= 10
            assert src.counters.state == node_pb2.STREAM_STATE_RUNNING
            server.stop()
            deadline = time.monotonic() + 30
            while src.counters.state != node_pb2.STREAM_STATE_RECONNECTING and time.monotonic() < deadline:
                src.take(8)
                time.sleep(0.1)
            assert src.counters.state == node_pb2.STREAM_STATE_RECONNECTING and src.counters.last_error
            server.start()
            assert len(drain(src, lambda f: len(f) >= 10, 45)) >= 10
            assert src.counters.state == node_pb2.STREAM_STATE_RUNNING and src.counters.reconnects >= 1
        finally:
            src.stop()
            src.join(15)
    assert src.finished.is_set()
