"""YuNet's conventions on both sides of the network: letterboxing a frame onto the model's
canvas, and decoding its per-anchor outputs into faces exactly as OpenCV's FaceDetectorYN does
(same score, box and landmark formulas, same integer-box NMS).

Still images (enrolment, search by image) are not real-time, so they are also cut into windows:
the whole image on one canvas, then overlapping canvas-sized tiles of the image at finer scales,
down to the scale at which the smallest face wanted spans MIN_CANVAS_FACE canvas pixels. The
faces of all windows are merged into one list (see merge_windows)."""

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

# Stills: faces of MIN_STILL_FACE image pixels (box height) and up must be found. YuNet finds
# faces whose box is 40 canvas px tall or more at score >= 0.9 (measured on the face_recognition
# photos and scikit-image's astronaut, scaled onto a brick texture: 3 of 4 found at 24-36 px,
# 4 of 4 from 40 px); MIN_CANVAS_FACE keeps a margin above that.
MIN_STILL_FACE = 40
MIN_CANVAS_FACE = 48
# The score a still's face must reach. Lower than FaceDetectorYN's 0.9: on insightface's t1.jpg
# (six people, two looking down) scaled to faces of 38-60 px, 0.9 finds 4 of 6 and 0.8 all 6, with
# no false face at 0.7 on it or on the face_recognition photos.
STILL_SCORE_THRESHOLD = 0.8
LEVEL_STEP = 2.0  # scale ratio between successive tile levels: each finds faces of 48-96 canvas px
# Tiles of one level overlap by more than the largest face that level alone must find
# (LEVEL_STEP * MIN_CANVAS_FACE canvas px), so each such face lies whole inside some tile.
TILE_OVERLAP = 128
EDGE_MARGIN = 2  # canvas px: a face this close to a tile's inner edge is cut by it (whole in another window)
CONTAINED = 0.6  # share of a face box inside a larger face box that makes it a part of that face


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


@dataclass(frozen=True)
class Window:
    """A part of a still image and the scale at which it is drawn onto the canvas."""

    x: int  # top-left, image pixels
    y: int
    width: int  # image pixels covered
    height: int
    scale: float  # canvas pixels per image pixel


def _starts(length: int, window: int, stride: int) -> list[int]:
    """Window origins covering [0, length): evenly strided, the last one flush with the end."""
    if length <= window:
        return [0]
    count = -(-(length - window) // stride) + 1
    return sorted({round(i * (length - window) / (count - 1)) for i in range(count)})


def still_windows(image_size: tuple[int, int], canvas_size: tuple[int, int],
                  min_face: float = MIN_STILL_FACE) -> list[Window]:
    """The whole image letterboxed onto the canvas, then tile levels at LEVEL_STEP times the
    previous scale until a face of `min_face` image pixels spans MIN_CANVAS_FACE canvas pixels."""
    check_canvas_size(canvas_size)
    width, height = image_size
    canvas_w, canvas_h = canvas_size
    scale = min(canvas_w / width, canvas_h / height)
    windows = [Window(0, 0, width, height, scale)]
    finest = MIN_CANVAS_FACE / min_face
    while scale < finest:
        scale = min(scale * LEVEL_STEP, finest)
        tile_w, tile_h = min(width, int(canvas_w / scale)), min(height, int(canvas_h / scale))
        stride_w = max(1, int((canvas_w - TILE_OVERLAP) / scale))
        stride_h = max(1, int((canvas_h - TILE_OVERLAP) / scale))
        windows += [Window(x, y, tile_w, tile_h, scale)
                    for y in _starts(height, tile_h, stride_h) for x in _starts(width, tile_w, stride_w)]
    return windows


def window_canvas(image_bgr: np.ndarray, window: Window, canvas_size: tuple[int, int]) -> np.ndarray:
    """The window's pixels scaled onto the canvas's top-left corner, the rest black."""
    part = image_bgr[window.y:window.y + window.height, window.x:window.x + window.width]
    width, height = canvas_size
    new_w = max(1, min(width, round(window.width * window.scale)))
    new_h = max(1, min(height, round(window.height * window.scale)))
    interpolation = cv2.INTER_AREA if window.scale < 1 else cv2.INTER_LINEAR
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(part, (new_w, new_h), interpolation=interpolation)
    return canvas


def in_window(rows: np.ndarray, window: Window, image_size: tuple[int, int]) -> np.ndarray:
    """Canvas rows of a window mapped to image pixels, without the faces its inner edges cut
    (an edge that is also the image's own edge cuts nothing: faces there are as whole as the photo)."""
    if rows.size == 0:
        return rows.reshape(0, 15)
    margin = EDGE_MARGIN / window.scale
    out = rows.astype(np.float64).copy()
    out[:, :SCORE] /= window.scale
    out[:, [0, *range(4, 14, 2)]] += window.x  # box corner and landmarks move; width and height do not
    out[:, [1, *range(5, 14, 2)]] += window.y
    width, height = image_size
    x0, y0 = out[:, 0], out[:, 1]
    x1, y1 = x0 + out[:, 2], y0 + out[:, 3]
    cut = np.zeros(len(out), dtype=bool)
    if window.x > 0:
        cut |= x0 <= window.x + margin
    if window.y > 0:
        cut |= y0 <= window.y + margin
    if window.x + window.width < width:
        cut |= x1 >= window.x + window.width - margin
    if window.y + window.height < height:
        cut |= y1 >= window.y + window.height - margin
    return out[~cut]


def merge_windows(rows: np.ndarray, nms_threshold: float = NMS_THRESHOLD) -> np.ndarray:
    """Rows in image pixels from several windows to one row per face, best score first: of
    overlapping boxes (IoU above nms_threshold) the best-scored stays, and a box mostly inside a
    larger kept one is a part of that face (a fine tile's view of a large face) and goes."""
    order = np.argsort(-rows[:, SCORE], kind="stable")
    kept: list[np.ndarray] = []
    for row in rows[order]:
        if not any(_iou(row, k) > nms_threshold or _contained(row, k) for k in kept):
            kept = [k for k in kept if not _contained(k, row)]
            kept.append(row)
    return np.array(kept, dtype=np.float64).reshape(-1, 15)


def _intersection(a: np.ndarray, b: np.ndarray) -> float:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0.0, iw) * max(0.0, ih)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = _intersection(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _contained(small: np.ndarray, large: np.ndarray) -> bool:
    """`small` is the smaller box and lies mostly inside `large`."""
    area = small[2] * small[3]
    return 0 < area < large[2] * large[3] and _intersection(small, large) / area >= CONTAINED


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
    """Canvas rows back to the caller's image: undo the letterbox scale, clip boxes to the image
    (rows already in image pixels, as merge_windows returns them, take scale 1)."""
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
