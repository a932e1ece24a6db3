"""Turning a decoded 1080p frame into the detectors' inputs: colour conversion and the letterbox
resizes onto the face detector's 640x384 canvas and the object detector's 416x416 one (what
nvstreammux/nvinfer do on a DeepStream node, and OpenCV on a portable one)."""

from __future__ import annotations

import numpy as np

from gpukit.models import FACE_DETECTOR, OBJECT_DETECTOR

WIDTH, HEIGHT = 1920, 1080
CANVASES = [(spec.chw[2], spec.chw[1]) for spec in (FACE_DETECTOR, OBJECT_DETECTOR)]  # (width, height)


def fitted(width: int, height: int, canvas: tuple[int, int]) -> tuple[int, int]:
    scale = min(canvas[0] / width, canvas[1] / height)
    return round(width * scale), round(height * scale)


def cpu_preprocess(frame_bgr: np.ndarray) -> list[np.ndarray]:
    """BGR frame (already converted by the decoder) -> one [3, H, W] float32 blob per canvas."""
    import cv2

    blobs = []
    for canvas in CANVASES:
        w, h = fitted(frame_bgr.shape[1], frame_bgr.shape[0], canvas)
        blob = np.zeros((3, canvas[1], canvas[0]), np.float32)
        blob[:, :h, :w] = cv2.resize(frame_bgr, (w, h), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
        blobs.append(blob)
    return blobs


def gpu_preprocess(nv12):
    """NV12 frames [B, H*3/2, W] uint8 on CUDA -> one [B, 3, H, W] fp16 blob per canvas (BT.601
    limited range, bilinear resize, black padding right and bottom)."""
    import torch
    from torch.nn.functional import interpolate

    height = nv12.shape[1] * 2 // 3
    y = nv12[:, :height].float() - 16.0
    uv = nv12[:, height:].reshape(nv12.shape[0], height // 2, -1, 2).float() - 128.0
    u = uv[..., 0].repeat_interleave(2, 1).repeat_interleave(2, 2)
    v = uv[..., 1].repeat_interleave(2, 1).repeat_interleave(2, 2)
    b = 1.164 * y + 2.017 * u
    g = 1.164 * y - 0.392 * u - 0.813 * v
    r = 1.164 * y + 1.596 * v
    bgr = torch.stack([b, g, r], 1).clamp_(0, 255).half()
    blobs = []
    for canvas in CANVASES:
        w, h = fitted(bgr.shape[3], bgr.shape[2], canvas)
        blob = torch.zeros((bgr.shape[0], 3, canvas[1], canvas[0]), dtype=torch.float16, device=bgr.device)
        blob[:, :, :h, :w] = interpolate(bgr, size=(h, w), mode="bilinear", align_corners=False)
        blobs.append(blob)
    return blobs
