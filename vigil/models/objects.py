"""Persons and vehicles from the object detector's two tensors, for every backend.

The prepared detector (`object_detector`, NanoDet-g 416; vigil/models/nanodet.py) takes a frame
letterboxed onto a 416x416 canvas (scaled to fit, top-left, black padding: nvinfer's
maintain-aspect-ratio=1 with symmetric-padding=0) and answers, per anchor, 80 COCO class
probabilities (`scores`) and a box in canvas pixels (`boxes`, x1 y1 x2 y2). The portable backend
(through Triton) and the DeepStream probe (nvinfer's raw tensor meta) both decode here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np

MODEL_NAME = "object_detector"  # in the Triton repository
INPUT_SIZE = 416
INPUT = "input"
SCORES = "scores"
BOXES = "boxes"
ANCHORS = sum((INPUT_SIZE // stride) ** 2 for stride in (8, 16, 32))  # 3549

COCO_LABELS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)
PERSON_CLASS = 0
VEHICLE_LABELS = {1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
NMS_IOU = 0.45
MAX_OBJECTS = 300  # per frame, after NMS


class ObjectKind(str, Enum):
    PERSON = "person"
    VEHICLE = "vehicle"


@dataclass(frozen=True)
class DetectedObject:
    xyxy: tuple[float, float, float, float]  # pixels of the original frame
    score: float
    kind: ObjectKind
    label: str  # the COCO class: "person", "car", "bus", ...


@dataclass(frozen=True)
class Letterbox:
    """Where a frame sits on the detector's square canvas: scaled by `scale`, at the top-left."""

    scale: float
    width: int  # the frame's size
    height: int
    size: int = INPUT_SIZE

    @classmethod
    def fit(cls, width: int, height: int, size: int = INPUT_SIZE) -> Letterbox:
        return cls(min(size / width, size / height), width, height, size)

    def canvas(self, image_bgr: np.ndarray) -> np.ndarray:
        """The frame resized onto the black size x size canvas (uint8 BGR)."""
        scaled_w, scaled_h = round(self.width * self.scale), round(self.height * self.scale)
        canvas = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        canvas[:scaled_h, :scaled_w] = cv2.resize(image_bgr, (scaled_w, scaled_h), interpolation=cv2.INTER_LINEAR)
        return canvas

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Canvas-pixel boxes (n, 4 xyxy) in frame pixels, clipped to the frame."""
        frame = np.asarray(boxes, dtype=np.float32) / self.scale
        return np.clip(frame, 0, [self.width, self.height, self.width, self.height])


def detector_blob(images_bgr: list[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
    """The (n, 3, 416, 416) float32 input for a batch of frames of any sizes, and their letterboxes."""
    boxes = [Letterbox.fit(image.shape[1], image.shape[0]) for image in images_bgr]
    canvases = np.stack([box.canvas(image) for box, image in zip(boxes, images_bgr)])
    return np.ascontiguousarray(canvases.transpose(0, 3, 1, 2), dtype=np.float32), boxes


def _kind_of(classes: np.ndarray) -> np.ndarray:
    """Per anchor: 0 person, 1 vehicle, -1 anything else."""
    kinds = np.full(classes.shape, -1, dtype=np.int8)
    kinds[classes == PERSON_CLASS] = 0
    kinds[np.isin(classes, list(VEHICLE_LABELS))] = 1
    return kinds


def decode_objects(scores: np.ndarray, boxes: np.ndarray, letterbox: Letterbox, min_score: float,
                   nms_iou: float = NMS_IOU) -> list[DetectedObject]:
    """Persons and vehicles of one frame from its (anchors, 80) scores and (anchors, 4) canvas boxes,
    best first. Each anchor counts as its best class among persons and vehicles; NMS runs per kind
    (a car's box never suppresses the person beside it, a bus and a truck on one vehicle do)."""
    scores = np.asarray(scores, dtype=np.float32)
    wanted = [PERSON_CLASS, *VEHICLE_LABELS]
    classes = np.asarray(wanted)[np.argmax(scores[:, wanted], axis=1)]
    best = scores[np.arange(len(scores)), classes]
    keep = best >= min_score
    classes, best, canvas_boxes = classes[keep], best[keep], np.asarray(boxes, dtype=np.float32)[keep]
    if not len(best):
        return []
    frame_boxes = letterbox.to_frame(canvas_boxes)
    kinds = _kind_of(classes)
    found = []
    for kind_index, kind in enumerate((ObjectKind.PERSON, ObjectKind.VEHICLE)):
        rows = np.flatnonzero(kinds == kind_index)
        if not len(rows):
            continue
        xywh = [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in frame_boxes[rows]]
        kept = np.asarray(cv2.dnn.NMSBoxes(xywh, best[rows].tolist(), min_score, nms_iou)).reshape(-1)
        found += [DetectedObject(tuple(float(v) for v in frame_boxes[i]), float(best[i]), kind,
                                 COCO_LABELS[classes[i]]) for i in rows[kept]]
    found.sort(key=lambda o: -o.score)
    return found[:MAX_OBJECTS]
