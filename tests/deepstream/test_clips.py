"""Clips on the DeepStream backend: the encoded-video tap (pipeline/deepstream/encoded.py) runs on
real GStreamer over a bin that plugs its h264parse at runtime as nvurisrcbin does (in Debian's
Python: tests/deepstream/tap_h264.py), and what it saw feeds a stream's clip buffer through the
recorder (clips.py); the backend's cut_clip then returns MP4s that decode to the source's frames."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest

from tests.deepstream import fakes
from vigil.pipeline.deepstream.backend import DeepStreamBackend
from vigil.pipeline.deepstream.clips import EncodedRecorder, nal_type, nal_units
from vigil.pipeline.deepstream.encoded import EncodedFormat, EncodedUnit
from vigil.pipeline.deepstream.graph import GraphSettings
from vigil.pipeline.deepstream.meta import Meta
from vigil.pipeline.outbox import StreamOutbox
from vigil.pipeline.recording import ClipUnavailable, PacketRing
from vigil.pipeline.streams import ProcessingSettings, StreamCounters, StreamSpec

HARNESS = Path(__file__).with_name("tap_h264.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: the one with GStreamer's introspection here
MISSING_DEPS_EXIT = 3
FRAMES, GOP, FPS = 60, 10, 25
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def encode_video(path: Path) -> list[np.ndarray]:
    """An H.264 MP4 with B-frames and a keyframe every GOP frames, each frame different."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"g": str(GOP), "keyint_min": str(GOP), "bf": "2", "sc_threshold": "0"}
        for i in range(FRAMES):
            image = np.zeros((240, 320, 3), np.uint8)
            image[..., 0] = i * 4
            image[(i * 3) % 220:(i * 3) % 220 + 20, 50:100] = 255
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    with av.open(str(path)) as source:
        return [f.to_ndarray(format="rgb24") for f in source.decode(video=0)]


@pytest.fixture(scope="module")
def tapped(tmp_path_factory):
    """The source's frames, and the format and access units the tap saw on real GStreamer."""
    folder = tmp_path_factory.mktemp("tap")
    video, out = folder / "video.mp4", folder / "units.jsonl"
    frames = encode_video(video)
    done = subprocess.run([SYSTEM_PYTHON, str(HARNESS), str(video), str(out)], capture_output=True, text=True,
                          timeout=120)
    if done.returncode == MISSING_DEPS_EXIT:
        pytest.fail(f"GStreamer pieces missing: run scripts/install-system-deps ({done.stderr.strip()})")
    assert done.returncode == 0, done.stderr
    formats, units = [], []
    for line in out.read_text().splitlines():
        item = json.loads(line)
        if "format" in item:
            formats.append(EncodedFormat(**item["format"]))
        else:
            unit = item["unit"]
            units.append(EncodedUnit(**{**unit, "data": base64.b64decode(unit["data"])}))
    return frames, formats, units


def decoded(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as clip:
        return [f.to_ndarray(format="rgb24") for f in clip.decode(video=0)]


def recording_stream():
    async def publish(_batch):
        pass

    ds = DeepStreamBackend(node_id=uuid.uuid4(), publish=publish, graph_settings=GraphSettings(), model_version="m",
                           upload=None, embed=None, meta=Meta(fakes.FakePyds()))
    spec = StreamSpec(uuid.uuid4(), None, "rtsp://cam/live", FPS, ProcessingSettings(recording_enabled=True))
    outbox = StreamOutbox(ds.node_id, spec, StreamCounters(spec.camera_id), ds.publish)
    stream = ds.sources.register(spec, outbox, PacketRing(ds.clip_buffer_s))
    return ds, stream


class FrameClock:
    """Capture times one frame apart, as units arrive from a live 25 fps camera."""

    def __init__(self):
        self.count = 0

    def __call__(self) -> datetime:
        self.count += 1
        return T0 + timedelta(seconds=self.count / FPS)


def test_the_tap_sees_byte_stream_access_units(tapped):
    frames, formats, units = tapped
    assert formats == [EncodedFormat("h264", "byte-stream", "au", 320, 240)] and formats[0].recordable
    assert len(units) == len(frames) == FRAMES
    assert [i for i, u in enumerate(units) if u.keyframe] == list(range(0, FRAMES, GOP))
    assert all(u.data.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01")) for u in units)  # Annex B
    assert units[0].pts_ns is not None and units[0].dts_ns is not None


def test_clips_cut_from_the_tapped_stream_decode_to_its_frames(tapped):
    frames, formats, units = tapped
    ds, stream = recording_stream()
    recorder = EncodedRecorder(stream.recording, FrameClock())
    recorder.on_format(formats[0])
    for unit in units:
        recorder.on_unit(unit)
    whole = ds.cut_clip(stream.spec.camera_id, T0, T0 + timedelta(seconds=10))
    assert whole.frames == FRAMES and whole.start_time == T0 + timedelta(seconds=1 / FPS)
    got = decoded(whole.data)
    assert len(got) == FRAMES and all(np.array_equal(a, b) for a, b in zip(got, frames))  # stream copy
    # a clip from mid-GOP starts at the keyframe before it and ends before its end
    part = ds.cut_clip(stream.spec.camera_id, T0 + timedelta(seconds=25 / FPS), T0 + timedelta(seconds=41 / FPS))
    assert part.frames == 20 and part.start_time == T0 + timedelta(seconds=21 / FPS)  # frames 20..39
    got = decoded(part.data)
    assert all(np.array_equal(a, b) for a, b in zip(got, frames[20:40])) and len(got) == 20
    with pytest.raises(ClipUnavailable):
        ds.cut_clip(stream.spec.camera_id, T0 + timedelta(hours=1), T0 + timedelta(hours=2))


def test_a_looping_file_starts_a_new_segment(tapped):
    """file-loop seeks back: timestamps restart, so the second pass is a segment of its own and no
    clip spans the jump."""
    frames, formats, units = tapped
    ds, stream = recording_stream()
    recorder = EncodedRecorder(stream.recording, FrameClock())
    recorder.on_format(formats[0])
    for unit in units + units[:GOP * 2]:
        recorder.on_unit(unit)
    across = ds.cut_clip(stream.spec.camera_id, T0 + timedelta(seconds=51 / FPS), T0 + timedelta(seconds=10))
    assert across.frames == FRAMES - 50  # from the keyframe of frame 50 to the end of the first pass
    second = ds.cut_clip(stream.spec.camera_id, T0 + timedelta(seconds=(FRAMES + 1) / FPS), T0 + timedelta(seconds=10))
    got = decoded(second.data)
    assert len(got) == GOP * 2 and all(np.array_equal(a, b) for a, b in zip(got, frames))


def test_streams_the_muxer_cannot_take_as_they_are_record_nothing(tapped):
    frames, _, units = tapped
    ring = PacketRing(30)
    recorder = EncodedRecorder(ring, FrameClock())
    for unmuxable in (EncodedFormat("h264", "avc", "au", 320, 240),  # length-prefixed
                      EncodedFormat("h264", "byte-stream", "nal", 320, 240)):  # a buffer per NAL unit
        recorder.on_format(unmuxable)
        for unit in units:
            recorder.on_unit(unit)
        assert ring.span() is None
    fresh = EncodedRecorder(PacketRing(30), FrameClock())  # never saw the SPS/PPS: records nothing
    fresh.on_format(EncodedFormat("h264", "byte-stream", "au", 320, 240))
    for unit in units[GOP:]:
        fresh.on_unit(unit)
    assert fresh.ring.span() is None
    recorder.on_format(EncodedFormat("h264", "byte-stream", "au", 320, 240))
    # from mid-GOP: recording starts at the next keyframe, which carries no SPS/PPS (only the
    # first one does): the recorder puts the ones it saw last in front of it
    def nal_types(data):
        return {nal_type("h264", data[header]) for header, _ in nal_units(data)}

    assert {7, 8} <= nal_types(units[0].data) and not {7, 8} & nal_types(units[GOP].data)
    for unit in units[5:]:
        recorder.on_unit(unit)
    got = decoded(ring.cut(T0, T0 + timedelta(seconds=10)).data)
    assert len(got) == FRAMES - GOP and np.array_equal(got[0], frames[GOP])
