"""Raw detector tensors (nvinfer with output-tensor-meta) → detections in muxer-frame pixels,
and the face geometry the pipeline derives from YuNet's landmarks. Pure numpy: no pyds here.

nvinfer scales the muxer frame into the network input keeping the aspect ratio with the padding
at the right and bottom (maintain-aspect-ratio=1, symmetric-padding=0), which is how
vigil.models.detection letterboxes too, so one scale factor maps network pixels back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from vigil.models import detection
from vigil.models.alignment import ARCFACE_TEMPLATE
from vigil.models.catalog import DETECTOR_OUTPUTS, EMBEDDER_INPUT_SIZE
from vigil.models.quality import frontal_score, size_score

PERSON_CLASS_INDEX = 0  # COCO "person" in the YOLOv8 export of triton_models/person_detector
PERSON_NMS = 0.45


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


def decode_persons(output0: np.ndarray, network_size: tuple[int, int], frame_size: tuple[int, int],
                   score_threshold: float, nms_threshold: float = PERSON_NMS) -> list[Detection]:
    """A YOLOv8 `output0` of one frame, (4 + classes, anchors): cx, cy, w, h in network pixels,
    then class scores → persons (class 0) after NMS."""
    out = np.asarray(output0, dtype=np.float32)
    if out.ndim != 2 or out.shape[0] < 5:
        raise ValueError(f"person detector output has shape {out.shape}, expected (4 + classes, anchors)")
    scores = out[4 + PERSON_CLASS_INDEX]
    keep = np.flatnonzero(scores >= score_threshold)
    if keep.size == 0:
        return []
    cx, cy, w, h = out[0, keep], out[1, keep], out[2, keep], out[3, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    picked = cv2.dnn.NMSBoxes(boxes.tolist(), scores[keep].tolist(), score_threshold, nms_threshold)
    scale = letterbox_scale(network_size, frame_size)
    persons = []
    for i in np.asarray(picked, dtype=int).reshape(-1):
        x, y, bw, bh = (float(v) / scale for v in boxes[i])
        persons.append(Detection(_clip((x, y, x + bw, y + bh), frame_size), float(scores[keep][i])))
    return persons


def landmark_quality(det: Detection) -> float:
    """Face quality from geometry alone: size and frontality, as vigil.models.quality scores them.
    DeepStream keeps frames in GPU memory, so the sharpness term of the portable gate (which
    needs the pixels on the CPU) is left out: the geometric mean of the two others."""
    if det.landmarks is None:
        return 0.0
    size = size_score(min(det.width, det.height))
    return float(np.sqrt(size * frontal_score(det.landmarks)))


def aligned_crop_box(landmarks: np.ndarray, frame_size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """The square region of the frame that, scaled to 112x112, puts the landmarks closest to the
    ArcFace template under scale and translation only (least squares). nvinferserver crops an
    object's box and scales it; giving it this box makes its crop the 5-point alignment minus the
    in-plane rotation. None when the region leaves the frame by more than half its size."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    template = ARCFACE_TEMPLATE.astype(np.float64)
    pc, tc = points - points.mean(axis=0), template - template.mean(axis=0)
    denom = float((pc ** 2).sum())
    if denom <= 1e-9:
        return None
    scale = float((pc * tc).sum()) / denom  # template pixels per frame pixel
    if scale <= 0:
        return None
    tx, ty = template.mean(axis=0) - scale * points.mean(axis=0)
    side = EMBEDDER_INPUT_SIZE / scale
    x0, y0 = -tx / scale, -ty / scale
    fw, fh = frame_size
    inside_w = min(x0 + side, fw) - max(x0, 0.0)
    inside_h = min(y0 + side, fh) - max(y0, 0.0)
    if inside_w < side / 2 or inside_h < side / 2:
        return None
    return (max(x0, 0.0), max(y0, 0.0), min(x0 + side, fw), min(y0 + side, fh))


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
