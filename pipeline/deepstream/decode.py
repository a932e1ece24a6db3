"""Raw detector tensors (nvinfer with output-tensor-meta) → detections in muxer-frame pixels,
and the face geometry the pipeline derives from YuNet's landmarks. Pure numpy: no pyds here.

nvinfer scales the muxer frame into the network input keeping the aspect ratio with the padding
at the right and bottom (maintain-aspect-ratio=1, symmetric-padding=0), which is how
vigil.models.detection and vigil.models.objects letterbox too, so one scale factor maps network
pixels back. Both detectors are decoded by the portable backend's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from vigil.models import detection, objects
from vigil.models.catalog import DETECTOR_OUTPUTS
from vigil.models.quality import frontal_score, size_score


@dataclass(frozen=True)
class Detection:
    """An object in muxer-frame pixels."""

    xyxy: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None  # (5, 2) for faces: right eye, left eye, nose, mouth corners

    @property
    def width(self) -> float:
        return self.xyxy[2] - self.xyxy[0]

    @property
    def height(self) -> float:
        return self.xyxy[3] - self.xyxy[1]


def letterbox_scale(network_size: tuple[int, int], frame_size: tuple[int, int]) -> float:
    """Network pixels per frame pixel under nvinfer's aspect-keeping scaling."""
    (nw, nh), (fw, fh) = network_size, frame_size
    return min(nw / fw, nh / fh)


def _clip(xyxy, frame_size: tuple[int, int]) -> tuple[float, float, float, float]:
    fw, fh = frame_size
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return (min(max(x1, 0.0), fw), min(max(y1, 0.0), fh), min(max(x2, 0.0), fw), min(max(y2, 0.0), fh))


def decode_faces(tensors: Mapping[str, np.ndarray], network_size: tuple[int, int], frame_size: tuple[int, int],
                 score_threshold: float) -> list[Detection]:
    """YuNet's 12 output layers of one frame (batch dimension already removed) → faces.
    The decoding is vigil.models.detection's, the one the portable backend uses."""
    missing = [name for name in DETECTOR_OUTPUTS if name not in tensors]
    if missing:
        raise ValueError(f"face detector output lacks layers {missing}")
    rows = detection.decode({name: np.asarray(tensors[name], dtype=np.float32).reshape(-1, tensors[name].shape[-1])
                             for name in DETECTOR_OUTPUTS}, network_size, score_threshold=score_threshold)
    scale = letterbox_scale(network_size, frame_size)
    faces = []
    for row in rows:
        x, y, w, h = (float(v) / scale for v in row[detection.BOX])
        box = _clip((x, y, x + w, y + h), frame_size)
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            continue
        faces.append(Detection(box, float(row[detection.SCORE]),
                               np.asarray(row[detection.LANDMARKS], dtype=np.float32).reshape(5, 2) / scale))
    return faces


def decode_objects(tensors: Mapping[str, np.ndarray], network_size: int, frame_size: tuple[int, int],
                   score_threshold: float) -> list[objects.DetectedObject]:
    """The object detector's `scores` (anchors, 80) and `boxes` (anchors, 4) of one frame →
    persons and vehicles in frame pixels, through vigil.models.objects (NMS per kind)."""
    missing = [name for name in (objects.SCORES, objects.BOXES) if name not in tensors]
    if missing:
        raise ValueError(f"object detector output lacks layers {missing}")
    scores = np.asarray(tensors[objects.SCORES], dtype=np.float32).reshape(-1, len(objects.COCO_LABELS))
    boxes = np.asarray(tensors[objects.BOXES], dtype=np.float32).reshape(-1, 4)
    return objects.decode_objects(scores, boxes, objects.Letterbox.fit(*frame_size, size=network_size),
                                  score_threshold)


def landmark_quality(det: Detection) -> float:
    """Face quality from geometry alone: size and frontality, as vigil.models.quality scores them.
    DeepStream keeps frames in GPU memory, so the sharpness term of the portable gate (which
    needs the pixels on the CPU) is left out: the geometric mean of the two others."""
    if det.landmarks is None:
        return 0.0
    size = size_score(min(det.width, det.height))
    return float(np.sqrt(size * frontal_score(det.landmarks)))


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def holder(face_xyxy, persons: Mapping[int, tuple[float, float, float, float]]) -> int | None:
    """The person (tracker id) whose box holds the face's centre; the smallest such box wins."""
    cx, cy = (face_xyxy[0] + face_xyxy[2]) / 2, (face_xyxy[1] + face_xyxy[3]) / 2
    best, best_area = None, float("inf")
    for tracker_id, (x1, y1, x2, y2) in persons.items():
        if x1 <= cx <= x2 and y1 <= cy <= y2:
            area = (x2 - x1) * (y2 - y1)
            if area < best_area:
                best, best_area = tracker_id, area
    return best
