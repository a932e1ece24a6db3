"""The RTSP test server: real GStreamer RTSP, read by PyAV (FFmpeg's RTSP client)."""

from __future__ import annotations

import av
import numpy as np
import pytest

from vigil.samples import RtspServerError, RtspTestServer, encode_h264
from vigil.samples.rtsp import describe

pytestmark = pytest.mark.stack  # the RTSP server of its own

CLIP_FRAMES = 30  # a 2 s clip at 15 fps: looping shows within seconds


@pytest.fixture(scope="module")
def short_clip(people_walk, tmp_path_factory):
    """The first 2 s of people_walk as its own H.264 file."""
    path = tmp_path_factory.mktemp("rtsp") / "short.mp4"
    frames = []
    with av.open(str(people_walk.path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="bgr24"))
            if len(frames) == CLIP_FRAMES:
                break
    encode_h264(frames, path, people_walk.width, people_walk.height, int(people_walk.fps))
    with av.open(str(path)) as container:  # what the server sends: this file's own pictures
        return path, [f.to_ndarray(format="gray") for f in container.decode(video=0)]


def read(url: str, count: int) -> list[av.VideoFrame]:
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=10) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame)
            if len(frames) == count:
                return frames
    raise AssertionError(f"{url} ended after {len(frames)} frames")


def test_streams_files_unchanged_and_loops(short_clip, sample_videos):
    path, reference = short_clip
    with RtspTestServer({"clip": path, "street": sample_videos["people_street"].path}) as server:
        assert server.url("clip") == f"rtsp://127.0.0.1:{server.port}/clip"
        assert "H264" in describe(server.url("street"))
        frames = read(server.url("clip"), CLIP_FRAMES + 15)
        for index, frame in enumerate(frames):  # frame k is the file's frame k mod its length
            assert np.array_equal(frame.to_ndarray(format="gray"), reference[index % CLIP_FRAMES]), index
        times = [f.time for f in frames if f.time is not None]
        assert all(b > a for a, b in zip(times, times[1:]))  # time keeps growing across the loop
        street = read(server.url("street"), 5)
        assert (street[0].width, street[0].height) == (768, 576)


def test_stop_and_start_simulate_an_outage(short_clip):
    path, _ = short_clip
    with RtspTestServer({"clip": path}) as server:
        url = server.url("clip")
        container = av.open(url, options={"rtsp_transport": "tcp"}, timeout=5)
        next(container.decode(video=0))
        server.stop()
        assert not server.running
        with pytest.raises((av.error.FFmpegError, StopIteration)):
            for _ in range(10 * CLIP_FRAMES):  # frames already buffered drain, then the stream breaks
                next(container.decode(video=0))
        container.close()
        with pytest.raises(RtspServerError):
            describe(url, timeout_s=2)
        server.start()
        assert server.url("clip") == url  # same port and path after the outage
        assert len(read(url, 5)) == 5


def test_missing_system_python_says_what_to_do(short_clip):
    path, _ = short_clip
    server = RtspTestServer({"clip": path}, python="/nonexistent/python3")
    with pytest.raises(RtspServerError, match="install-system-deps"):
        server.start()
    server.close()


def test_a_file_that_is_not_h264_is_refused(sample_videos):
    with pytest.raises(RtspServerError, match="cannot stream"):
        RtspTestServer({"vtest": sample_videos["vtest"].path}).start()
