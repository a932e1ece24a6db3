"""JPEG snapshots of faces and persons, uploaded by the node to the media bucket.

Keys: <camera_id>/<yyyy>/<mm>/<dd>/<track_id>-<frame_number>-<kind>.jpg (UTC date of capture).
The object is written (with its SHA-256 as metadata) before the message naming it is published,
so the control plane never registers media whose object does not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import cv2
import numpy as np

from vigil.pipeline.messages import SnapshotRef
from vigil.storage.objectstore import ObjectStore

JPEG_QUALITY = 90
CROP_MARGIN = 0.25  # context around the object, as a fraction of its box


def snapshot_key(camera_id: UUID, capture_time: datetime, track_id: str, frame_number: int, kind: str) -> str:
    day = capture_time.astimezone(UTC)
    return f"{camera_id}/{day:%Y/%m/%d}/{track_id}-{frame_number}-{kind}.jpg"


def crop(image_bgr: np.ndarray, xyxy: tuple[float, float, float, float], margin: float = CROP_MARGIN) -> np.ndarray:
    height, width = image_bgr.shape[:2]
    x1, y1, x2, y2 = xyxy
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(int(x1 - dx), 0), max(int(y1 - dy), 0)
    right, bottom = min(int(x2 + dx) + 1, width), min(int(y2 + dy) + 1, height)
    return image_bgr[top:bottom, left:right]


class SnapshotWriter:
    def __init__(self, objects: ObjectStore):
        self.objects = objects

    def write(self, image_bgr: np.ndarray, key: str) -> SnapshotRef:
        ok, encoded = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError(f"could not encode a JPEG of shape {image_bgr.shape}")
        data = encoded.tobytes()
        stored = self.objects.put(key, data, content_type="image/jpeg")
        return SnapshotRef(key=key, sha256=stored.sha256, size_bytes=len(data))
