"""YuNet's conventions on both sides of the network: letterboxing a frame onto the model's
canvas, and decoding its per-anchor outputs into faces exactly as OpenCV's FaceDetectorYN does
(same score, box and landmark formulas, same integer-box NMS)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from vigil.models.catalog import DETECTOR_STRIDES

CANVAS_DIVISOR = 32  # the coarsest stride: the canvas must tile into whole cells of every level
# FaceDetectorYN's defaults
SCORE_THRESHOLD = 0.9
NMS_THRESHOLD = 0.3
TOP_K = 5000

# Columns of a decoded row, as FaceDetectorYN returns them.
BOX = slice(0, 4)  # x, y, w, h of the top-left corner and size
LANDMARKS = slice(4, 14)  # right eye, left eye, nose tip, right and left mouth corner (x, y each)
SCORE = 14


@dataclass(frozen=True)
class DetectedFace:
    """A face in the caller's image: pixels, and the same normalised to [0, 1] by width/height."""

    box: tuple[float, float, float, float]  # x, y, width, height in pixels, clipped to the image
    box_normalized: tuple[float, float, float, float]
    landmarks: np.ndarray  # (5, 2) pixels: right eye, left eye, nose tip, right/left mouth corner
    landmarks_normalized: np.ndarray  # (5, 2)
    score: float


@dataclass(frozen=True)
class Letterboxed:
    canvas: np.ndarray  # (H, W, 3) uint8 BGR, the frame scaled into the top-left corner
    scale: float  # canvas pixels per frame pixel


def check_canvas_size(canvas_size: tuple[int, int]) -> None:
    width, height = canvas_size
    if width < CANVAS_DIVISOR or height < CANVAS_DIVISOR or width % CANVAS_DIVISOR or height % CANVAS_DIVISOR:
        raise ValueError(f"canvas size {canvas_size} must be positive multiples of {CANVAS_DIVISOR}")


def letterbox(image_bgr: np.ndarray, canvas_size: tuple[int, int]) -> Letterboxed:
    """Scale the frame, keeping its aspect ratio, to fit a (width, height) canvas and pad the
    rest with black at the right and bottom (where FaceDetectorYN pads too)."""
    check_canvas_size(canvas_size)
    width, height = canvas_size
    h, w = image_bgr.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    # INTER_AREA averages when shrinking (no aliasing on large frames); bilinear when enlarging.
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=interpolation)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = resized
    return Letterboxed(canvas=canvas, scale=scale)


def detector_blob(canvases: list[np.ndarray]) -> np.ndarray:
    """NCHW float32 BGR 0..255, as FaceDetectorYN feeds the network."""
    return cv2.dnn.blobFromImages(canvases)


def decode(
    outputs: Mapping[str, np.ndarray],
    canvas_size: tuple[int, int],
    score_threshold: float = SCORE_THRESHOLD,
    nms_threshold: float = NMS_THRESHOLD,
    top_k: int = TOP_K,
) -> np.ndarray:
    """One image's outputs (name -> (anchors, k)) to rows of 15 floats in canvas pixels:
    x, y, w, h, 5 landmarks (x, y), score; sorted by score after NMS."""
    width, height = canvas_size
    rows = []
    for stride in DETECTOR_STRIDES:
        grid_w, grid_h = width // stride, height // stride
        if outputs[f"cls_{stride}"].size != grid_w * grid_h:
            raise ValueError(
                f"stride {stride}: {outputs[f'cls_{stride}'].size} anchors, a {width}x{height} canvas has "
                f"{grid_w * grid_h}; the outputs belong to another input size"
            )
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0, 1)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0, 1)
        score = np.sqrt(cls * obj)
        keep = np.flatnonzero(score >= score_threshold)
        if keep.size == 0:
            continue
        bbox = outputs[f"bbox_{stride}"].reshape(-1, 4)[keep]
        kps = outputs[f"kps_{stride}"].reshape(-1, 5, 2)[keep]
        cell = np.stack([keep % grid_w, keep // grid_w], axis=1).astype(np.float32)
        center = (cell + bbox[:, :2]) * stride
        size = np.exp(bbox[:, 2:]) * stride
        landmarks = (kps + cell[:, None, :]) * stride
        rows.append(np.hstack([center - size / 2, size, landmarks.reshape(-1, 10), score[keep, None]]))
    if not rows:
        return np.zeros((0, 15), dtype=np.float32)
    faces = np.vstack(rows).astype(np.float32)
    if len(faces) == 1:
        return faces
    # FaceDetectorYN runs NMS on integer boxes (truncated), so do we: same faces survive.
    int_boxes = np.trunc(faces[:, BOX]).astype(np.int32).tolist()
    kept = cv2.dnn.NMSBoxes(int_boxes, faces[:, SCORE].tolist(), score_threshold, nms_threshold, top_k=top_k)
    return faces[np.asarray(kept, dtype=np.int64).reshape(-1)]


def to_detected_faces(rows: np.ndarray, scale: float, image_size: tuple[int, int]) -> list[DetectedFace]:
    """Canvas rows back to the caller's image: undo the letterbox scale, clip boxes to the image."""
    width, height = image_size
    size = np.array([width, height], dtype=np.float64)
    faces = []
    for row in rows.astype(np.float64):
        x0, y0 = np.clip(row[0:2] / scale, 0, size)
        x1, y1 = np.clip((row[0:2] + row[2:4]) / scale, 0, size)
        landmarks = row[LANDMARKS].reshape(5, 2) / scale
        box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
        faces.append(DetectedFace(
            box=box,
            box_normalized=(box[0] / width, box[1] / height, box[2] / width, box[3] / height),
            landmarks=landmarks.astype(np.float32),
            landmarks_normalized=(landmarks / size).astype(np.float32),
            score=float(row[SCORE]),
        ))
    return faces
