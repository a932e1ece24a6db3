"""Turning what callers hand us (encoded bytes, a file, an array) into a BGR uint8 frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vigil.models.errors import InvalidImageError

ImageInput = np.ndarray | bytes | bytearray | memoryview | str | Path


def to_bgr(image: ImageInput) -> np.ndarray:
    """A (H, W, 3) uint8 BGR array, or InvalidImageError saying what is wrong with the input."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        try:
            image = path.read_bytes()
        except OSError as exc:
            raise InvalidImageError(f"cannot read image file {path}: {exc.strerror or exc}") from exc
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _decode(bytes(image))
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"expected encoded image bytes, a path or a numpy array, got {type(image).__name__}")
    return _as_bgr_array(image)


def _decode(data: bytes) -> np.ndarray:
    if not data:
        raise InvalidImageError("image data is empty")
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise InvalidImageError(
            f"{len(data)} bytes do not decode as an image (JPEG, PNG, WebP, BMP, TIFF; starts {data[:8]!r})"
        )
    return decoded


def _as_bgr_array(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise InvalidImageError(f"image array must be uint8, got {array.dtype}")
    if array.size == 0:
        raise InvalidImageError(f"image array is empty (shape {array.shape})")
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.ndim == 3 and array.shape[2] == 3:
        return array
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2BGR)
    raise InvalidImageError(f"image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
