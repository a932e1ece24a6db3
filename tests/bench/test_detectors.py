"""The detector comparison's yolov3-tiny: the darknet->ONNX converter reproduces darknet's network
(checked against OpenCV's own darknet reader, an independent implementation) and, with the anchors
the weights were trained on, finds the pedestrians counted by hand on a real vtest frame."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

from darknet_onnx import YOLOV3_TINY_MASKS, darknet_to_onnx, decode_heads, fetch_yolov3_tiny  # noqa: E402
from detectors import REFERENCE, match_reference, read_frames, yolov3_tiny  # noqa: E402

from vigil.samples import load_sample_videos  # noqa: E402

MEDIA = REPO / ".vigil" / "media"
FRAME = 240  # a reference frame: seven pedestrians, two of them side by side in the distance


@pytest.fixture(scope="module")
def darknet_files():
    return fetch_yolov3_tiny(MEDIA / "yolov3-tiny")


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return read_frames(load_sample_videos(MEDIA)["people_street"].path, {FRAME})[FRAME]


def _net_input(frame: np.ndarray) -> np.ndarray:
    canvas = np.zeros((416, 416, 3), np.uint8)
    canvas[:312] = cv2.resize(frame, (416, 312))  # 768x576 letterboxed at the top-left
    return canvas


def test_converted_network_matches_opencvs_darknet_reader(darknet_files, frame):
    converted = darknet_to_onnx(darknet_files.cfg.read_text(), darknet_files.weights.read_bytes())
    assert converted.layers == 24
    assert [h.output for h in converted.heads] == ["yolo_13", "yolo_26"]
    session = ort.InferenceSession(converted.model.SerializeToString(), providers=["CPUExecutionProvider"])
    canvas = _net_input(frame)
    outputs = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {"input": canvas.transpose(2, 0, 1)[None].astype(np.float32)}), strict=True))
    assert outputs["yolo_13"].shape == (1, 255, 13, 13) and outputs["yolo_26"].shape == (1, 255, 26, 26)

    net = cv2.dnn.readNetFromDarknet(str(darknet_files.cfg), str(darknet_files.weights))
    net.setInput(cv2.dnn.blobFromImage(canvas, 1 / 255.0, (416, 416), swapRB=True, crop=False))
    reference = net.forward(net.getUnconnectedOutLayersNames())  # per head [H*W*A, 85]: cx cy w h (0..1), obj, ...
    for head, rows in zip(converted.heads, reference, strict=True):
        scores, boxes = decode_heads({head.output: outputs[head.output][0]}, (head,), converted.input_size)
        grid = outputs[head.output].shape[-1]
        order = np.arange(3 * grid * grid).reshape(3, grid, grid).transpose(1, 2, 0).reshape(-1)  # to OpenCV's
        centre = (boxes[order, :2] + boxes[order, 2:]) / 2 / 416
        size = (boxes[order, 2:] - boxes[order, :2]) / 416
        np.testing.assert_allclose(centre, rows[:, :2], atol=1e-4)
        np.testing.assert_allclose(size, rows[:, 2:4], rtol=1e-3, atol=1e-5)
        persons = scores[order, 0]
        np.testing.assert_allclose(persons[rows[:, 5] > 0], rows[rows[:, 5] > 0, 5], atol=1e-4)


def test_yolov3_tiny_finds_the_pedestrians_counted_on_a_vtest_frame(frame):
    found = yolov3_tiny(MEDIA / "yolov3-tiny").detect(frame, 0.5)
    matched, false_positives = match_reference(found, REFERENCE[FRAME])
    assert matched >= 5, found  # of 7 (it finds 6; HOG 2, and 2 false positives)
    assert false_positives == 0, found
    assert sum(f.kind == "vehicle" for f in found) >= 1  # the parked van


def test_trained_anchors_size_person_boxes_to_the_person(darknet_files, frame):
    """The cfg's anchors for the second head shrink the boxes to about half; the trained ones do not."""
    def median_person_height(masks):
        converted = darknet_to_onnx(darknet_files.cfg.read_text(), darknet_files.weights.read_bytes(), masks)
        session = ort.InferenceSession(converted.model.SerializeToString(), providers=["CPUExecutionProvider"])
        values = session.run(None, {"input": _net_input(frame).transpose(2, 0, 1)[None].astype(np.float32)})
        names = [o.name for o in session.get_outputs()]
        scores, boxes = decode_heads({n: v[0] for n, v in zip(names, values, strict=True)}, converted.heads,
                                     converted.input_size)
        confident = boxes[scores[:, 0] >= 0.5]
        return float(np.median(confident[:, 3] - confident[:, 1])) * 768 / 416

    counted = float(np.median([p.height for p in REFERENCE[FRAME]]))
    assert 0.75 <= median_person_height(YOLOV3_TINY_MASKS) / counted <= 1.4
    assert median_person_height(None) / counted < 0.75
