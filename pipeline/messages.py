"""The IngestService metadata contract on the node side: plain values → protobuf messages.

Both backends build their TrackUpdates here, so the control plane cannot tell which one ran.
Boxes and landmarks are normalised to the frame; times are capture times on the wall clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from vigil.api.v1 import common_pb2
from vigil.api.v1 import ingest_pb2 as pb

Box = tuple[float, float, float, float]  # x, y, width, height, normalised to [0, 1]


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def clip_box(box: Box) -> Box:
    """A box inside the frame: detectors and Kalman predictions may overshoot the edges."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
    x1, y1 = min(max(x + w, 0.0), 1.0), min(max(y + h, 0.0), 1.0)
    return x0, y0, max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)


def box_message(box: Box) -> common_pb2.BoundingBox:
    x, y, w, h = clip_box(box)
    return common_pb2.BoundingBox(x=x, y=y, width=w, height=h)


def normalised_box(xyxy: Sequence[float], width: int, height: int) -> Box:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return clip_box((x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height))


@dataclass(frozen=True)
class SnapshotRef:
    """An uploaded JPEG, as the control plane registers it in media_files."""

    key: str
    sha256: str
    size_bytes: int

    def message(self) -> pb.Snapshot:
        return pb.Snapshot(key=self.key, sha256=self.sha256, size_bytes=self.size_bytes)


@dataclass(frozen=True)
class FaceSample:
    """A face of a track, embedded: what becomes BestFace when it beats the track's best."""

    embedding: np.ndarray  # (D,) float32, L2-normalised
    model_version: str
    quality: float
    confidence: float
    box: Box
    landmarks: np.ndarray  # (5, 2) normalised, image-left eye first (ArcFace order)
    frame_number: int
    capture_time: datetime
    snapshot: SnapshotRef | None = None

    def message(self) -> pb.BestFace:
        face = pb.BestFace(
            embedding=[float(v) for v in self.embedding], model_version=self.model_version,
            quality=float(np.clip(self.quality, 0.0, 1.0)), confidence=float(np.clip(self.confidence, 0.0, 1.0)),
            box=box_message(self.box),
            landmarks=[common_pb2.Point(x=float(np.clip(x, 0, 1)), y=float(np.clip(y, 0, 1)))
                       for x, y in np.asarray(self.landmarks).reshape(5, 2)],
            frame_number=self.frame_number, capture_time=timestamp(self.capture_time))
        if self.snapshot is not None:
            face.snapshot_key = self.snapshot.key
            face.snapshot_sha256 = self.snapshot.sha256
            face.snapshot_size_bytes = self.snapshot.size_bytes
        return face


MAX_UPDATES_PER_BATCH = 1000  # ingest.proto's limit


def batch_key(node_id: UUID, camera_id: UUID, epoch: str, number: int) -> str:
    """Idempotency key of a stream's n-th batch: unique across restarts through the epoch."""
    return f"{node_id}:{camera_id}:{epoch}:{number}"


def new_epoch() -> str:
    """Distinguishes a stream's runs: track ids and batch keys never collide after a restart."""
    return f"{int(datetime.now(UTC).timestamp() * 1000):x}"


def track_batches(node_id: UUID, camera_id: UUID, epoch: str, sent: int, frame_size: tuple[int, int],
                  updates: Sequence[pb.TrackUpdate]) -> list[pb.TrackBatch]:
    """A stream's pending updates as TrackBatches within the size limit, numbered after the
    `sent` batches of this epoch (node_id and sequence are the publisher's to set)."""
    width, height = frame_size
    return [pb.TrackBatch(camera_id=str(camera_id),
                          idempotency_key=batch_key(node_id, camera_id, epoch, sent + n + 1),
                          frame_width=width or 1, frame_height=height or 1,
                          updates=updates[start:start + MAX_UPDATES_PER_BATCH])
            for n, start in enumerate(range(0, len(updates), MAX_UPDATES_PER_BATCH))]
