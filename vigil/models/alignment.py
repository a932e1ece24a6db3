"""Face alignment: warp a face so its 5 landmarks land on the template the embedder was
trained with (the ArcFace 112x112 template, which SFace and OpenCV's alignCrop use too)."""

from __future__ import annotations

import cv2
import numpy as np

from vigil.models.catalog import EMBEDDER_INPUT_SIZE

# right eye, left eye, nose tip, right mouth corner, left mouth corner (YuNet's order), in a 112x112 crop
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)

ALL_POINTS_INLIERS = 1e6  # pixels: far beyond any residual in a 112-pixel template


def align_face(image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The (112, 112, 3) crop under the similarity transform (rotation, uniform scale,
    translation) that best maps the landmarks onto the template."""
    points = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    # Least squares over all five points, as OpenCV's alignCrop (Umeyama): a RANSAC threshold no
    # residual can reach makes every point an inlier, and the final refinement then fits them all.
    # Robust settings (LMEDS, RANSAC's 3 px) drop a landmark on some faces and tilt the crop.
    # Against alignCrop on the face_recognition photos: mean pixel difference < 0.002.
    matrix, _ = cv2.estimateAffinePartial2D(
        points, ARCFACE_TEMPLATE, method=cv2.RANSAC, ransacReprojThreshold=ALL_POINTS_INLIERS
    )
    if matrix is None:
        raise ValueError(f"landmarks {points.tolist()} are degenerate: no similarity transform fits them")
    size = (EMBEDDER_INPUT_SIZE, EMBEDDER_INPUT_SIZE)
    return cv2.warpAffine(image_bgr, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
