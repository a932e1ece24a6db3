"""The DeepStream backend's stream bookkeeping, without GStreamer: streams registered with
sources.py, frame records from the probes' queue through the worker into each stream's outbox,
with their face crops embedded, published as TrackBatches; what it answers for clips. The
GStreamer calls themselves need DeepStream and are not run here (pipeline/deepstream/README.md);
the clip tap runs on real GStreamer in test_clips.py."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.deepstream import fakes
from vigil.api.v1 import ingest_pb2 as pb
from vigil.pipeline.deepstream.backend import DeepStreamBackend
from vigil.pipeline.deepstream.graph import GraphSettings
from vigil.pipeline.deepstream.meta import Meta
from vigil.pipeline.deepstream.stages import FrameRecord, ObjectRecord
from vigil.pipeline.outbox import StreamOutbox
from vigil.pipeline.recording import ClipUnavailable
from vigil.pipeline.streams import StreamCounters, StreamSpec

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def backend(published: list[pb.TrackBatch], embed=None) -> DeepStreamBackend:
    async def publish(batch: pb.TrackBatch) -> None:
        published.append(batch)

    return DeepStreamBackend(node_id=uuid.uuid4(), publish=publish, graph_settings=GraphSettings(configs_dir=CONFIGS),
                             model_version="m", upload=None, embed=embed, meta=Meta(fakes.FakePyds()))


def register(ds: DeepStreamBackend, camera_id: uuid.UUID):
    spec = StreamSpec(camera_id, None, "file:///a.mp4", 25)
    return ds.sources.register(spec, StreamOutbox(ds.node_id, spec, StreamCounters(camera_id), ds.publish))


def test_records_of_a_stream_become_its_track_batches():
    published: list[pb.TrackBatch] = []
    sent: list[np.ndarray] = []

    def embed(crops):  # the Triton face embedder's stand-in
        sent.extend(crops)
        return np.ones((len(crops), 128), np.float32)

    ds = backend(published, embed)
    camera, other = uuid.uuid4(), uuid.uuid4()
    stream, second = register(ds, camera), register(ds, other)
    assert (stream.pad_index, second.pad_index) == (0, 1) and ds.stream_ids() == {camera, other}
    now = datetime.now(UTC)
    person = ObjectRecord(pb.OBJECT_CLASS_PERSON, 42, (100.0, 100.0, 300.0, 500.0), 0.8)
    crop = np.full((112, 112, 3), 9, np.uint8)
    landmarks = np.array([[150, 150], [180, 150], [165, 165], [152, 180], [178, 180]], np.float32)
    face = ObjectRecord(pb.OBJECT_CLASS_FACE, 7, (140.0, 130.0, 190.0, 200.0), 0.9, crop=crop, landmarks=landmarks,
                        quality=0.8)
    ds.probes.records.put(FrameRecord(0, 1, now, (1920, 1080), [person, face]))
    ds.probes.records.put(FrameRecord(9, 1, now, (1920, 1080), [person]))  # a pad no stream holds: dropped
    ds.probes.records.put(None)
    worker = threading.Thread(target=ds._work)
    worker.start()
    worker.join(5)
    assert ds.queue_depths() == {"records": 0, "publish": 2}  # two track starts
    asyncio.run(stream.outbox.flush_if_due(0.0))
    [batch] = published
    assert batch.camera_id == str(camera) and (batch.frame_width, batch.frame_height) == (1920, 1080)
    update, face_update = sorted(batch.updates, key=lambda u: u.object_class != pb.OBJECT_CLASS_PERSON)
    assert update.kind == pb.TRACK_UPDATE_KIND_START and update.track_id == f"{stream.outbox.epoch}-p42"
    assert update.box.x == pytest.approx(100 / 1920) and update.box.height == pytest.approx(400 / 1080)
    # the face's crop went to the embedder; its embedding is the track's best face
    assert len(sent) == 1 and sent[0] is crop
    assert len(face_update.best_face.embedding) == 128 and face_update.parent_track_id == update.track_id
    assert [s.active_tracks for s in ds.stream_stats()] == [2, 0]


def test_pad_indices_are_not_reused_and_removed_streams_are_not_found():
    ds = backend([])
    first = register(ds, uuid.uuid4())
    ds.sources.unregister(first)
    again = register(ds, first.spec.camera_id)
    assert again.pad_index == 1 and ds.sources.by_pad(0) is None and ds.sources.by_pad(1) is again

    def element(name, parent=None):
        return SimpleNamespace(get_name=lambda: name, get_parent=lambda: parent)

    decoder = element("nvv4l2decoder0", element("src_elem", element("source-1", element("vigil"))))
    assert ds.sources.owner_of(decoder) is again
    assert ds.sources.owner_of(element("source-0")) is None and ds.sources.owner_of(element("tracker")) is None


def test_clips_of_streams_that_do_not_record():
    ds = backend([])
    now = datetime.now(UTC)
    with pytest.raises(ClipUnavailable, match="does not run on this node"):
        ds.cut_clip(uuid.uuid4(), now, now)
    stream = register(ds, uuid.uuid4())
    assert stream.recording is None
    with pytest.raises(ClipUnavailable, match="recording is disabled"):
        ds.cut_clip(stream.spec.camera_id, now, now)
