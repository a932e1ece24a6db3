"""Face alignment: warp a face so its 5 landmarks land on the template the embedder was
trained with (the ArcFace 112x112 template, which SFace and OpenCV's alignCrop use too).

One implementation for both backends: `warp_faces` works on numpy arrays (the portable
backend's frames) and on CuPy arrays (the DeepStream backend's frames, still in GPU memory), picking
the array module from its input. The transforms are fitted on the CPU (5 points per face); only
the sampling runs where the pixels are: cv2.warpAffine for numpy (about 20x faster than array
code on the CPU), `sample_bilinear` for CuPy, which reproduces warpAffine's fixed-point sampling
to the bit (the tests prove it on numpy arrays).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from vigil.models.catalog import EMBEDDER_INPUT_SIZE

# right eye, left eye, nose tip, right mouth corner, left mouth corner (YuNet's order), in a 112x112 crop
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)

# cv2.warpAffine's fixed point for 8-bit INTER_LINEAR, reproduced so that the crops are OpenCV's:
# source positions in 1/1024 pixel (AB_BITS), resolved to 1/32 (INTER_BITS), integer weights
# summing to 1024 per output pixel, rounded half up.
AB_SCALE = 1024
SUBPIXEL_BITS = 5
SUBPIXEL_STEPS = 1 << SUBPIXEL_BITS
WEIGHT_BITS = 2 * SUBPIXEL_BITS


def array_module(array: Any):
    """numpy, or cupy for a CuPy array (CuPy is imported only when such an array is passed)."""
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy.get_array_module(array)
    return np


def similarity_transform(landmarks: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of the similarity (rotation, uniform scale, translation) that maps the 5
    landmarks onto the template with the least squared error: OpenCV's alignCrop (Umeyama), and
    cv2.estimateAffinePartial2D with every point an inlier. Raises ValueError on landmarks that
    fit no such transform (all at one point)."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    template = ARCFACE_TEMPLATE.astype(np.float64)
    pc, tc = points - points.mean(axis=0), template - template.mean(axis=0)
    denom = float((pc ** 2).sum())
    if denom <= 1e-9:
        raise ValueError(f"landmarks {points.tolist()} are degenerate: no similarity transform fits them")
    # [u, v] = [[a, -b], [b, a]] [x, y] + t, least squares in closed form
    a = float((pc * tc).sum()) / denom
    b = float((pc[:, 0] * tc[:, 1] - pc[:, 1] * tc[:, 0]).sum()) / denom
    rotation = np.array([[a, -b], [b, a]])
    translation = template.mean(axis=0) - rotation @ points.mean(axis=0)
    return np.hstack([rotation, translation[:, None]])


def _inverse(matrix: np.ndarray) -> np.ndarray:
    """Crop pixel → frame pixel, for the 2x3 frame → crop similarity [[a, -b, tx], [b, a, ty]]."""
    (a, minus_b, tx), (b, _, ty) = matrix
    norm = a * a + b * b
    rotation = np.array([[a, b], [minus_b, a]]) / norm
    return np.hstack([rotation, (-rotation @ np.array([tx, ty]))[:, None]])


def warp_faces(image: Any, landmarks_batch: Sequence[np.ndarray] | np.ndarray,
               size: int = EMBEDDER_INPUT_SIZE) -> Any:
    """The aligned (n, size, size, C) uint8 crops of n faces in one image (H, W, C): bilinear
    sampling, black outside the image, as cv2.warpAffine(INTER_LINEAR, BORDER_CONSTANT) does it.

    `image` is a numpy array or a CuPy array (it may be pitched, e.g. a DeepStream RGBA surface
    from pyds.get_nvds_buf_surface_gpu); the crops are made by the same array module and keep the
    image's channels in its order. `landmarks_batch` holds each face's 5 (x, y) points in image
    pixels, on the CPU. The GPU kit (bench/gpu/) times this on CuPy arrays."""
    matrices = [similarity_transform(points) for points in landmarks_batch]
    if array_module(image) is np:
        channels = image.shape[2] if image.ndim == 3 else 1
        crops = [cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                 for m in matrices]
        return np.stack(crops).reshape(-1, size, size, channels) if crops else \
            np.zeros((0, size, size, channels), np.uint8)
    return sample_bilinear(image, matrices, size)


def sample_bilinear(image: Any, matrices: Sequence[np.ndarray], size: int = EMBEDDER_INPUT_SIZE) -> Any:
    """warpAffine(INTER_LINEAR, BORDER_CONSTANT) of one image under n 2x3 frame → crop similarity
    matrices, in array code that runs on numpy or CuPy: (n, size, size, C) uint8."""
    xp = array_module(image)
    height, width = int(image.shape[0]), int(image.shape[1])
    inverses = np.stack([_inverse(m) for m in matrices]) if len(matrices) else np.zeros((0, 2, 3))
    channels = image.shape[2] if image.ndim == 3 else 1
    if not len(inverses):
        return xp.zeros((0, size, size, channels), dtype=xp.uint8)
    m = xp.asarray(inverses, dtype=xp.float64)[:, :, :, None, None]  # (n, 2, 3, 1, 1)
    ys, xs = xp.meshgrid(xp.arange(size, dtype=xp.float64), xp.arange(size, dtype=xp.float64), indexing="ij")

    def fixed(along_x, along_y, offset):
        """Source positions in 1/32 pixel, as warpAffine computes them (per row + per column)."""
        row = xp.rint((along_y * ys + offset) * AB_SCALE) + AB_SCALE // SUBPIXEL_STEPS // 2
        column = xp.rint(along_x * xs * AB_SCALE)
        return ((row + column).astype(xp.int64)) >> (10 - SUBPIXEL_BITS)

    src_x = fixed(m[:, 0, 0], m[:, 0, 1], m[:, 0, 2])  # (n, size, size)
    src_y = fixed(m[:, 1, 0], m[:, 1, 1], m[:, 1, 2])
    x0, y0 = (src_x >> SUBPIXEL_BITS).astype(xp.int32), (src_y >> SUBPIXEL_BITS).astype(xp.int32)
    fx, fy = (src_x & (SUBPIXEL_STEPS - 1)).astype(xp.int32), (src_y & (SUBPIXEL_STEPS - 1)).astype(xp.int32)
    pixels = image if image.ndim == 3 else image[..., None]
    flat = pixels.reshape(-1, pixels.shape[2]) if xp is np and pixels.flags.c_contiguous else None

    def tap(x, y, weight):
        """The pixels at (x, y) times their integer weights, zero outside the image (BORDER_CONSTANT)."""
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        x, y = xp.clip(x, 0, width - 1), xp.clip(y, 0, height - 1)
        # numpy: a flat take is ~3x faster than 2-D fancy indexing; CuPy gathers in one kernel either way
        values = pixels[y, x] if flat is None else np.take(flat, y * width + x, axis=0)
        return values * (weight * inside)[..., None]

    rx, ry = SUBPIXEL_STEPS - fx, SUBPIXEL_STEPS - fy
    total = tap(x0, y0, rx * ry) + tap(x0 + 1, y0, fx * ry) + tap(x0, y0 + 1, rx * fy) + tap(x0 + 1, y0 + 1, fx * fy)
    return ((total + (1 << (WEIGHT_BITS - 1))) >> WEIGHT_BITS).astype(xp.uint8)


def align_face(image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The (112, 112, 3) crop under the similarity transform (rotation, uniform scale,
    translation) that best maps the landmarks onto the template."""
    return warp_faces(image_bgr, [np.asarray(landmarks, dtype=np.float32).reshape(5, 2)])[0]
