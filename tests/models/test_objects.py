"""The object detector: the TF.js translation, the decoding shared by both backends, and NanoDet's
detections on a real frame of the street video against reference detections checked by eye."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vigil.models import objects, tfjs
from vigil.models.errors import PreparationError
from vigil.models.object_detector import ObjectDetector
from vigil.models.objects import Letterbox, ObjectKind, decode_objects
from vigil.models.runtime import cpu_session
from vigil.samples import load_sample_videos

MEDIA_CACHE = Path(__file__).resolve().parents[2] / ".vigil" / "media"

# vtest.avi frame 300 (768x576): the six walkers and the two parked vehicles at the top right, as
# NanoDet boxed them when it was adopted; each box was checked by eye on the frame.
REFERENCE_FRAME = 300
REFERENCE_PERSONS = [(583, 159, 612, 233), (185, 159, 219, 235), (313, 214, 346, 294), (298, 157, 324, 230),
                     (241, 158, 265, 223), (617, 165, 644, 233)]
REFERENCE_VEHICLES = [(735, 52, 768, 95), (650, 44, 724, 101)]  # a car, a white van


def iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def street_frame() -> np.ndarray:
    capture = cv2.VideoCapture(str(load_sample_videos(MEDIA_CACHE)["vtest"].path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, REFERENCE_FRAME)
    ok, frame = capture.read()
    capture.release()
    assert ok, "vtest.avi has no frame 300"
    return frame


def detect_with_onnxruntime(model_path: Path, frames: list[np.ndarray], min_score: float):
    blob, boxes = objects.detector_blob(frames)
    scores, canvas_boxes = cpu_session(model_path, 2).run([objects.SCORES, objects.BOXES], {objects.INPUT: blob})
    return [decode_objects(scores[i], canvas_boxes[i], box, min_score) for i, box in enumerate(boxes)]


def assert_reference_detections(found) -> None:
    persons = [o for o in found if o.kind is ObjectKind.PERSON and o.score >= 0.5]
    vehicles = [o for o in found if o.kind is ObjectKind.VEHICLE]
    for reference in REFERENCE_PERSONS:
        assert max(iou(reference, p.xyxy) for p in persons) >= 0.8, (reference, persons)
    assert len(persons) == len(REFERENCE_PERSONS), persons  # nobody else is in the frame
    for reference in REFERENCE_VEHICLES:
        assert max(iou(reference, v.xyxy) for v in vehicles) >= 0.7, (reference, vehicles)
    assert {v.label for v in vehicles} <= set(objects.VEHICLE_LABELS.values())


def test_nanodet_finds_the_walkers_and_vehicles_of_a_street_frame(prepared_models, street_frame):
    (found,) = detect_with_onnxruntime(prepared_models[objects.MODEL_NAME].path, [street_frame], 0.4)
    assert_reference_detections(found)


def test_the_served_detector_batches_frames_of_any_size(served_models, endpoints, street_frame):
    """Through Triton, in one request: the frame, and the frame mirrored and shrunk to 640x480 (other
    letterbox) find the same objects, mirrored and scaled back to each frame's pixels."""
    small = cv2.resize(street_frame[:, ::-1], (640, 480), interpolation=cv2.INTER_AREA)
    detector = ObjectDetector(endpoints)
    try:
        detector.wait_until_ready(120)
        found, mirrored = detector.detect_many([street_frame, small], 0.4)
    finally:
        detector.close()
    assert_reference_detections(found)
    scale = 768 / 640
    back = [objects.DetectedObject((768 - o.xyxy[2] * scale, o.xyxy[1] * scale, 768 - o.xyxy[0] * scale,
                                    o.xyxy[3] * scale), o.score, o.kind, o.label) for o in mirrored]
    for reference in REFERENCE_PERSONS:
        assert max(iou(reference, p.xyxy) for p in back if p.kind is ObjectKind.PERSON) >= 0.7


# --- decoding (no model) -----------------------------------------------------------------------

def test_decoding_keeps_persons_and_vehicles_apart_and_maps_back_to_the_frame():
    box = Letterbox.fit(832, 416)  # scale 0.5: a 2:1 frame fills the canvas's top half
    scores = np.zeros((6, 80), np.float32)
    canvas = np.array([[10, 10, 30, 60], [11, 10, 31, 61], [12, 12, 40, 40], [12, 12, 40, 40], [13, 13, 41, 41],
                       [100, 100, 120, 130]], np.float32)
    scores[0, 0], scores[1, 0] = 0.9, 0.8  # two boxes on one person: NMS keeps the better
    scores[2, 2], scores[3, 7] = 0.7, 0.6  # a car and a truck on one vehicle: one vehicle, the car
    scores[3, 0] = 0.5  # an anchor counts as its best class (the truck), not also as a person
    scores[4, 0] = 0.55  # a person overlapping that vehicle: not suppressed by it
    scores[5, 16] = 0.99  # a dog: neither a person nor a vehicle
    found = decode_objects(scores, canvas, box, 0.5)
    assert [(o.kind, o.label) for o in found] == [(ObjectKind.PERSON, "person"), (ObjectKind.VEHICLE, "car"),
                                                  (ObjectKind.PERSON, "person")]
    assert found[0].xyxy == (20.0, 20.0, 60.0, 120.0)  # canvas pixels / 0.5
    assert decode_objects(scores, canvas, box, 0.95) == []


def test_letterbox_places_the_frame_top_left_like_nvinfer():
    frame = np.full((100, 200, 3), 255, np.uint8)
    box = Letterbox.fit(200, 100)
    canvas = box.canvas(frame)
    assert box.scale == pytest.approx(2.08)
    assert canvas[:208].min() == 255 and canvas[208:].max() == 0  # black padding below
    assert box.to_frame(np.array([[0, 0, 416, 416]])).tolist() == [[0, 0, 200, 100]]  # clipped to the frame


# --- the TF.js translation (a small graph written here, computed again in numpy) --------------

def _tfjs_model(directory: Path, nodes: list[dict], weights: dict[str, np.ndarray], fp16: set[str]) -> Path:
    manifest, blob = [], b""
    for name, value in weights.items():
        spec = {"name": name, "shape": list(value.shape), "dtype": "float32" if value.dtype.kind == "f" else "int32"}
        if name in fp16:
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blob += value.astype(np.float16).tobytes()
        else:
            blob += value.astype(np.float32 if value.dtype.kind == "f" else np.int32).tobytes()
        manifest.append(spec)
    (directory / "weights.bin").write_bytes(blob)
    consts = [{"name": name, "op": "Const"} for name in weights]
    topology = {"node": [{"name": "x", "op": "Placeholder", "attr": {
        "shape": {"shape": {"dim": [{"size": "1"}, {"size": "2"}, {"size": "5"}, {"size": "5"}]}},
        "dtype": {"type": "DT_FLOAT"}}}] + consts + nodes}
    signature = {"inputs": {"x:0": {}}, "outputs": {"out:0": {"tensorShape": {"dim": [{"size": "1"}, {"size": "-1"}]}}}}
    path = directory / "model.json"
    path.write_text(json.dumps({"modelTopology": topology, "signature": signature,
                                "weightsManifest": [{"paths": ["weights.bin"], "weights": manifest}]}))
    return path


def _b64(text: str) -> dict:
    import base64

    return {"s": base64.b64encode(text.encode()).decode()}


def test_translated_graph_computes_what_tensorflow_would(tmp_path):
    """NCHW input → NHWC → pad → 3x3 conv (fp16 weights) + bias → leaky relu → NCHW → reshape to
    [batch, -1] with a shape the exporter computed by SparseToDense + AddV2 (folded here)."""
    rng = np.random.default_rng(7)
    kernel = rng.normal(size=(3, 3, 2, 4)).astype(np.float16).astype(np.float32)  # HWIO, fp16-exact
    bias = rng.normal(size=4).astype(np.float32)
    weights = {
        "to_nhwc": np.array([0, 2, 3, 1], np.int32), "to_nchw": np.array([0, 3, 1, 2], np.int32),
        "pads": np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32), "kernel": kernel, "bias": bias,
        "where": np.zeros((0, 1), np.int32), "shape_len": np.array([2], np.int32), "gather": np.zeros(0, np.int32),
        "zero": np.array(0, np.int32), "base_shape": np.array([1, -1], np.int32),
    }
    attr_conv = {"padding": _b64("VALID"), "data_format": _b64("NHWC"),
                 "strides": {"list": {"i": ["1", "1", "1", "1"]}}, "dilations": {"list": {"i": ["1", "1", "1", "1"]}}}
    nodes = [
        {"name": "nhwc", "op": "Transpose", "input": ["x", "to_nhwc"]},
        {"name": "padded", "op": "Pad", "input": ["nhwc", "pads"]},
        {"name": "conv", "op": "Conv2D", "input": ["padded", "kernel"], "attr": attr_conv},
        {"name": "biased", "op": "Add", "input": ["conv", "bias"]},
        {"name": "act", "op": "LeakyRelu", "input": ["biased"], "attr": {"alpha": {"f": 0.1}}},
        {"name": "nchw", "op": "Transpose", "input": ["act", "to_nchw"]},
        {"name": "zeros", "op": "SparseToDense", "input": ["where", "shape_len", "gather", "zero"]},
        {"name": "shape", "op": "AddV2", "input": ["base_shape", "zeros"]},
        {"name": "out", "op": "Reshape", "input": ["nchw", "shape"]},
    ]
    converted = tfjs.convert(_tfjs_model(tmp_path, nodes, weights, fp16={"kernel"}))
    x = rng.normal(size=(3, 2, 5, 5)).astype(np.float32)  # a batch of 3 through a graph exported for 1
    (ours,) = cpu_session(converted.model.SerializeToString(), 1).run(None, {"x": x})

    padded = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros((3, 5, 5, 4), np.float32)
    for dy in range(3):
        for dx in range(3):
            conv += padded[:, dy:dy + 5, dx:dx + 5, :] @ kernel[dy, dx]
    act = conv + bias
    expected = np.where(act > 0, act, 0.1 * act).transpose(0, 3, 1, 2).reshape(3, -1)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_an_operator_without_a_translation_is_refused_by_name(tmp_path):
    nodes = [{"name": "out", "op": "Erf", "input": ["x"]}]
    with pytest.raises(PreparationError, match="out: TF operator Erf is not translated"):
        tfjs.convert(_tfjs_model(tmp_path, nodes, {}, fp16=set()))
