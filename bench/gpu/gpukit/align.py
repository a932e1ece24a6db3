"""Face alignment crops for the embedder, for many faces at once on one array module (numpy or
CuPy): the least-squares similarity transform from 5 landmarks to the ArcFace 112x112 template
(what vigil/models/alignment.py gets from cv2.estimateAffinePartial2D with every point an
inlier), then a bilinear warp written as a gather, which CuPy runs on the GPU. The CPU baseline
is cv2.warpAffine per face. Where the carry holds Vigil's own array-module generic alignment
(`project_warp`), the kit times that instead; this module is the fallback for Vigil builds whose
alignment is cv2-only, and the reference fit that crops are compared against."""

from __future__ import annotations

import numpy as np

CROP = 112
# right eye, left eye, nose tip, right mouth corner, left mouth corner (YuNet's order)
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                     [70.7299, 92.2041]], dtype=np.float32)


def similarity_matrices(xp, landmarks):
    """[N, 2, 3] float32 matrices mapping frame pixels onto the template; landmarks [N, 5, 2].
    Linear least squares over (a, b, tx, ty) with x' = a x - b y + tx, y' = b x + a y + ty."""
    pts = xp.asarray(landmarks, dtype=xp.float64).reshape(-1, 5, 2)
    n = pts.shape[0]
    x, y = pts[..., 0], pts[..., 1]
    ones, zeros = xp.ones_like(x), xp.zeros_like(x)
    rows_x = xp.stack([x, -y, ones, zeros], axis=-1)  # [N, 5, 4]
    rows_y = xp.stack([y, x, zeros, ones], axis=-1)
    design = xp.concatenate([rows_x, rows_y], axis=1)  # [N, 10, 4]
    template = xp.asarray(TEMPLATE, dtype=xp.float64)
    target = xp.concatenate([xp.broadcast_to(template[:, 0], (n, 5)), xp.broadcast_to(template[:, 1], (n, 5))], axis=1)
    normal = xp.einsum("nki,nkj->nij", design, design)
    rhs = xp.einsum("nki,nk->ni", design, target)
    a, b, tx, ty = xp.moveaxis(xp.linalg.solve(normal, rhs[..., None])[..., 0], -1, 0)
    matrices = xp.stack([xp.stack([a, -b, tx], axis=-1), xp.stack([b, a, ty], axis=-1)], axis=1)
    return matrices.astype(xp.float32)


def warp_crops(xp, image, matrices, size: int = CROP):
    """[N, size, size, 3] uint8 crops of image [H, W, 3] (uint8) under matrices [N, 2, 3], bilinear,
    black outside the image, like cv2.warpAffine(..., INTER_LINEAR, BORDER_CONSTANT)."""
    h, w = image.shape[:2]
    m = xp.asarray(matrices, dtype=xp.float32)
    linear = m[:, :, :2]  # inverse of [A | t] is [A^-1 | -A^-1 t]
    det = linear[:, 0, 0] * linear[:, 1, 1] - linear[:, 0, 1] * linear[:, 1, 0]
    inv = xp.stack([xp.stack([linear[:, 1, 1], -linear[:, 0, 1]], -1),
                    xp.stack([-linear[:, 1, 0], linear[:, 0, 0]], -1)], 1) / det[:, None, None]
    shift = -xp.einsum("nij,nj->ni", inv, m[:, :, 2])
    grid = xp.arange(size, dtype=xp.float32)
    gy, gx = xp.meshgrid(grid, grid, indexing="ij")
    dst = xp.stack([gx.ravel(), gy.ravel()], axis=0)  # [2, P]
    src = xp.einsum("nij,jp->nip", inv, dst) + shift[:, :, None]  # [N, 2, P]
    sx, sy = src[:, 0], src[:, 1]
    x0, y0 = xp.floor(sx), xp.floor(sy)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = x0.astype(xp.int32), y0.astype(xp.int32)
    pixels = image.astype(xp.float32)

    def tap(yy, xx):
        inside = ((xx >= 0) & (xx < w) & (yy >= 0) & (yy < h))[..., None]
        return xp.where(inside, pixels[xp.clip(yy, 0, h - 1), xp.clip(xx, 0, w - 1)], 0.0)

    top = tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx
    bottom = tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx
    out = top * (1 - fy) + bottom * fy
    return xp.clip(xp.rint(out), 0, 255).astype(xp.uint8).reshape(-1, size, size, 3)


def embedder_blob(xp, crops):
    """BGR crops [N, 112, 112, 3] uint8 -> the embedder's input [N, 3, 112, 112] float32, RGB 0..255."""
    return xp.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2)).astype(xp.float32)


def warp_crops_cv2(image, matrices, size: int = CROP):
    import cv2

    return np.stack([cv2.warpAffine(image, np.asarray(m, dtype=np.float64), (size, size), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT) for m in matrices])


def project_warp():
    """vigil.models.alignment.warp_faces(image, landmarks) as the carry holds it
    (gpukit/vigil_alignment.py, written by build_carry.py), or None where it was not carried."""
    try:
        from gpukit import vigil_alignment
    except ImportError:
        return None
    return getattr(vigil_alignment, "warp_faces", None)


def synthetic_faces(count: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """Landmarks [count, 5, 2] of plausible faces (template scaled to 60-160 px, turned up to 25°)
    spread over a width x height frame."""
    rng = np.random.default_rng(seed)
    centred = TEMPLATE - TEMPLATE.mean(axis=0)
    faces = []
    for _ in range(count):
        scale, angle = rng.uniform(0.6, 1.6), np.deg2rad(rng.uniform(-25, 25))
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * scale
        centre = rng.uniform([100, 100], [width - 100, height - 100])
        faces.append(centred @ rot.T + centre + rng.normal(0, 1.0, (5, 2)))
    return np.asarray(faces, dtype=np.float32)
