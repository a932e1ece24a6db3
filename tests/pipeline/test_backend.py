"""The portable backend on its own (no control plane): what it publishes for the sample video
when it cannot look at every frame, as on a loaded node."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from vigil.api.v1 import ingest_pb2 as pb
from vigil.models.faces import FaceAnalyzer
from vigil.models.object_detector import ObjectDetector
from vigil.pipeline.node import FACE_DETECTOR_FLOOR
from vigil.pipeline.portable.backend import PortableBackend
from vigil.pipeline.portable.hog import HogPersonDetector
from vigil.pipeline.streams import ProcessingSettings, StreamSpec
from vigil.samples import load_sample_videos

MEDIA_CACHE = Path(__file__).resolve().parents[2] / ".vigil" / "media"


@pytest.fixture(scope="module")
def walk():
    return load_sample_videos(MEDIA_CACHE)["people_walk"]


async def test_tracks_hold_when_only_every_fourth_frame_is_processed(endpoints, served_models, walk):
    published: list[pb.TrackBatch] = []

    async def publish(batch: pb.TrackBatch) -> None:
        published.append(batch)

    analyzer = FaceAnalyzer(endpoints, score_threshold=FACE_DETECTOR_FLOOR, canvas_size=(640, 384))
    backend = PortableBackend(node_id=uuid.uuid4(), analyzer=analyzer, objects=ObjectDetector(endpoints),
                              publish=publish, model_version="m")
    camera = uuid.uuid4()
    await backend.start()
    try:
        # native rate (15 fps) with inference capped at 3.75 fps: faces jump ~50 px between looks
        await backend.add_stream(StreamSpec(camera, None, f"file://{walk.path}", int(walk.fps),
                                            ProcessingSettings(max_inference_fps=walk.fps / 4)))
        async with asyncio.timeout(walk.duration_s + 30):
            while backend._streams[camera].counters.state != 5:  # STOPPED: the file ended
                await asyncio.sleep(0.2)
        processed = backend._streams[camera].counters.processed
    finally:
        await backend.stop()
        analyzer.close()
    assert processed <= walk.frames / 3
    updates = [u for b in published for u in b.updates if u.object_class == pb.OBJECT_CLASS_FACE]
    starts = [u for u in updates if u.kind == pb.TRACK_UPDATE_KIND_START]
    ends = [u for u in updates if u.kind == pb.TRACK_UPDATE_KIND_END]
    assert len(starts) == len(walk.appearances) == len(ends), [(u.track_id, u.frame_number) for u in starts]
    assert all(b.idempotency_key.count(":") == 3 and b.camera_id == str(camera) for b in published)
    assert {b.frame_width for b in published} == {walk.width}
    with_faces = {u.track_id for u in updates if u.HasField("best_face")}
    assert with_faces == {u.track_id for u in starts}  # every face track got an embedded best face


async def test_a_stream_that_cannot_run_reports_failed_with_its_reason():
    async def publish(batch: pb.TrackBatch) -> None:
        raise AssertionError("nothing to publish")

    backend = PortableBackend(node_id=uuid.uuid4(), analyzer=None, objects=HogPersonDetector(), publish=publish,
                              model_version="m")
    camera = uuid.uuid4()
    await backend.start()
    try:
        await backend.add_stream(StreamSpec(camera, None, "file:///nonexistent/cam.mp4", 15))
        async with asyncio.timeout(15):
            while not (stats := backend.stream_stats()) or stats[0].state != 4:  # FAILED
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # a few loop turns later it is still FAILED, not STOPPED
        (stats,) = backend.stream_stats()
        assert stats.state == 4 and "/nonexistent/cam.mp4" in stats.last_error
        await backend.remove_stream(camera)
        assert backend.stream_ids() == set()
    finally:
        await backend.stop()
