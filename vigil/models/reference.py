"""Checks that a prepared model computes what OpenCV computes from the same file.

OpenCV's dnn module reads the folded ONNX independently of onnxruntime, and FaceDetectorYN /
FaceRecognizerSF are the reference pipelines these models were published with. A prepared model
passes when onnxruntime's raw outputs stay within a tolerance of OpenCV's on a real photo, and
(for the detector) our numpy decoding finds the same faces as FaceDetectorYN.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx

from vigil.models.catalog import DETECTOR_INPUT, DETECTOR_OUTPUTS, EMBEDDER_INPUT, EMBEDDER_OUTPUT
from vigil.models.detection import decode, detector_blob, letterbox
from vigil.models.errors import PreparationError
from vigil.models.runtime import available_cores, cpu_session

REFERENCE_CANVAS = (640, 640)
# Largest |onnxruntime - OpenCV| accepted on any raw output element. Measured on the
# face_recognition photos: detector 7e-6 (scores and offsets of order 1), embedder 4e-6
# (features of norm ~12): float32 rounding of two different convolution kernels.
RAW_OUTPUT_TOLERANCE = 1e-4
# Decoded faces (box, landmarks in 640x640 canvas pixels, score) against FaceDetectorYN.
DECODED_FACE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ReferenceCheck:
    max_abs_diff: float  # raw outputs, onnxruntime vs OpenCV dnn on the same file and input
    tolerance: float
    faces: int  # faces found in the reference photo

    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance


def _max_abs_diff(ours: list[np.ndarray], theirs: list[np.ndarray]) -> float:
    return max(float(np.abs(a.reshape(b.shape) - b).max()) for a, b in zip(ours, theirs))


def check_detector(model_path: Path, image_bgr: np.ndarray) -> ReferenceCheck:
    boxed = letterbox(image_bgr, REFERENCE_CANVAS)
    blob = detector_blob([boxed.canvas])
    names = list(DETECTOR_OUTPUTS)
    ours = cpu_session(model_path, available_cores()).run(names, {DETECTOR_INPUT: blob})
    net = cv2.dnn.readNetFromONNX(str(model_path))
    net.setInput(blob)
    raw_diff = _max_abs_diff(ours, list(net.forward(names)))

    detector = cv2.FaceDetectorYN.create(str(model_path), "", REFERENCE_CANVAS)
    _, reference = detector.detect(boxed.canvas)
    reference = np.zeros((0, 15), np.float32) if reference is None else reference
    decoded = decode({name: out[0] for name, out in zip(names, ours)}, REFERENCE_CANVAS)
    if len(reference) == 0:
        raise PreparationError("the reference photo shows no face to FaceDetectorYN: choose a photo of a face")
    if len(decoded) != len(reference):
        raise PreparationError(f"decoding found {len(decoded)} face(s), FaceDetectorYN {len(reference)}")
    decoded_diff = float(np.abs(decoded - reference).max())
    if decoded_diff > DECODED_FACE_TOLERANCE:
        raise PreparationError(
            f"decoded faces differ from FaceDetectorYN's by {decoded_diff:.2e} (tolerance {DECODED_FACE_TOLERANCE:.0e})"
        )
    return ReferenceCheck(max_abs_diff=raw_diff, tolerance=RAW_OUTPUT_TOLERANCE, faces=len(decoded))


def check_embedder(model_path: Path, image_bgr: np.ndarray, detector_path: Path) -> ReferenceCheck:
    height, width = image_bgr.shape[:2]
    detector = cv2.FaceDetectorYN.create(str(detector_path), "", (width, height))
    _, faces = detector.detect(image_bgr)
    if faces is None:
        raise PreparationError("the reference photo shows no face to FaceDetectorYN: choose a photo of a face")
    recognizer = cv2.FaceRecognizerSF.create(str(model_path), "")
    session = cpu_session(model_path, available_cores())
    diffs = []
    for face in faces:
        crop = recognizer.alignCrop(image_bgr, face)
        reference = recognizer.feature(crop)
        # FaceRecognizerSF's own preprocessing: RGB, 0..255, no mean (the graph normalises)
        blob = cv2.dnn.blobFromImage(crop, 1.0, crop.shape[1::-1], (0, 0, 0), swapRB=True, crop=False)
        ours = session.run([EMBEDDER_OUTPUT], {EMBEDDER_INPUT: blob})
        diffs.append(_max_abs_diff(ours, [reference]))
    return ReferenceCheck(max_abs_diff=max(diffs), tolerance=RAW_OUTPUT_TOLERANCE, faces=len(faces))


# The wrapped object detector against the numpy decoding of its own raw outputs: in pixels of the
# 416x416 canvas (boxes) and probability (scores). Measured 5e-5 on the reference photo (float32
# rounding of two summation orders).
OBJECT_DECODING_TOLERANCE = 1e-3


def check_object_detector(model_path: Path, image_bgr: np.ndarray) -> ReferenceCheck:
    """The in-graph decoding (`scores`, `boxes`) against nanodet.decode_reference of the graph's raw
    per-stride outputs on the same photo; the photo must show a person (it shows a face)."""
    from vigil.models import nanodet, objects

    model = onnx.load(model_path)
    raw_names = [name for pair in nanodet.STRIDE_OUTPUTS.values() for name in pair]
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in raw_names)
    session = cpu_session(model.SerializeToString(), available_cores())
    blob, (box,) = objects.detector_blob([image_bgr])
    outputs = dict(zip([objects.SCORES, objects.BOXES, *raw_names],
                       session.run([objects.SCORES, objects.BOXES, *raw_names], {objects.INPUT: blob})))
    scores, boxes = nanodet.decode_reference({name: outputs[name][0] for name in raw_names})
    diff = max(float(np.abs(outputs[objects.SCORES][0] - scores).max()),
               float(np.abs(outputs[objects.BOXES][0] - boxes).max()))
    persons = [o for o in objects.decode_objects(outputs[objects.SCORES][0], outputs[objects.BOXES][0], box, 0.5)
               if o.kind is objects.ObjectKind.PERSON]
    if not persons:
        raise PreparationError("the object detector finds no person in the reference photo (a photo of a face)")
    return ReferenceCheck(max_abs_diff=diff, tolerance=OBJECT_DECODING_TOLERANCE, faces=len(persons))
