"""Face quality for choosing which face of a track to embed and enrol: big, sharp and frontal.

Each part is a score in [0, 1]; the overall score is their geometric mean, so a face that fails
one part badly (tiny, blurred or in profile) cannot be rescued by the other two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from vigil.models.alignment import align_face
from vigil.models.catalog import EMBEDDER_INPUT_SIZE
from vigil.models.detection import DetectedFace

MIN_FACE_PIXELS = 16  # below this YuNet's landmarks, and so the alignment, are unreliable
# Variance of the Laplacian of the aligned 112x112 grey crop that scores 1 - 1/e (~0.63).
# Sharp faces of the face_recognition photos measure 700-1900; blurred with sigma 3, 60-500.
SHARPNESS_SCALE = 400.0
# Nose position between the eye line (0) and the mouth line (1) on frontal faces: 0.55-0.58
# measured on the face_recognition photos with YuNet's landmarks.
FRONTAL_NOSE_RATIO = 0.55


@dataclass(frozen=True)
class FaceQuality:
    score: float  # geometric mean of the three parts
    size: float  # 0 at MIN_FACE_PIXELS on the shorter box side, 1 at the embedder's 112 and above
    sharpness: float  # 1 - exp(-laplacian_variance / SHARPNESS_SCALE)
    frontal: float  # 1 for a symmetric frontal face, falling with yaw and pitch
    face_pixels: float  # shorter side of the box in image pixels
    laplacian_variance: float


def size_score(face_pixels: float) -> float:
    return float(np.clip((face_pixels - MIN_FACE_PIXELS) / (EMBEDDER_INPUT_SIZE - MIN_FACE_PIXELS), 0.0, 1.0))


def laplacian_variance(crop_bgr: np.ndarray) -> float:
    """On the aligned crop, so faces of every size are measured at the same scale."""
    grey = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def frontal_score(landmarks: np.ndarray) -> float:
    """From the 5 landmarks: turning the head (yaw) moves the nose towards one eye and one mouth
    corner; nodding (pitch) moves it towards the eye or the mouth line. In-plane rotation
    (roll) does not count: alignment removes it."""
    right_eye, left_eye, nose, right_mouth, left_mouth = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)

    def asymmetry(right: np.ndarray, left: np.ndarray) -> float:
        to_right, to_left = np.linalg.norm(nose - right), np.linalg.norm(nose - left)
        return float(abs(to_right - to_left) / max(to_right + to_left, 1e-6))

    yaw = (asymmetry(right_eye, left_eye) + asymmetry(right_mouth, left_mouth)) / 2
    eye_center, mouth_center = (right_eye + left_eye) / 2, (right_mouth + left_mouth) / 2
    axis = mouth_center - eye_center
    nose_ratio = float(np.dot(nose - eye_center, axis) / max(np.dot(axis, axis), 1e-6))
    pitch = abs(nose_ratio - FRONTAL_NOSE_RATIO)
    # A frontal face scores ~0.9; a half-profile (nose halfway to one eye, yaw ~0.35) ~0.5.
    return float(np.clip(1.0 - 1.5 * yaw - 2.0 * pitch, 0.0, 1.0))


def face_quality(image_bgr: np.ndarray, face: DetectedFace) -> FaceQuality:
    face_pixels = min(face.box[2], face.box[3])
    variance = laplacian_variance(align_face(image_bgr, face.landmarks))
    size = size_score(face_pixels)
    sharpness = 1.0 - math.exp(-variance / SHARPNESS_SCALE)
    frontal = frontal_score(face.landmarks)
    return FaceQuality(
        score=float((size * sharpness * frontal) ** (1 / 3)),
        size=size,
        sharpness=sharpness,
        frontal=frontal,
        face_pixels=float(face_pixels),
        laplacian_variance=variance,
    )
