"""Multi-object tracking on the portable backend: ByteTrack (supervision's implementation).

supervision 0.30 marks its ByteTrack deprecated in favour of the `trackers` package, which
needs numpy 2; Vigil stays on numpy 1 while PyTriton 0.7 requires it, so this wrapper keeps the
rest of the pipeline independent of where the tracker lives.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import supervision as sv


@dataclass(frozen=True)
class Tracked:
    tracker_id: int
    index: int  # position of the detection in the list given to update()
    xyxy: tuple[float, float, float, float]
    confidence: float


class ObjectTracker:
    """One class of objects on one stream; update() once per processed frame, in frame order.

    Boxes are enlarged by `association_scale` around their centre before matching ("buffered
    IoU"): when frames are skipped or dropped under load, an object moves far between two
    processed frames and its plain boxes no longer overlap enough for IoU matching, which would
    split one walk into many tracks. Results carry the detector's own boxes.
    """

    def __init__(self, *, frame_rate: float, activation_threshold: float = 0.5, lost_seconds: float = 1.5,
                 matching_threshold: float = 0.8, association_scale: float = 1.0):
        self.association_scale = association_scale
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self._tracker = sv.ByteTrack(
                track_activation_threshold=activation_threshold,
                lost_track_buffer=max(1, round(lost_seconds * 30)),  # ByteTrack scales the buffer by frame_rate / 30
                minimum_matching_threshold=matching_threshold, frame_rate=max(frame_rate, 1.0),
                minimum_consecutive_frames=1)

    def update(self, boxes: list[tuple[float, float, float, float]], scores: list[float]) -> list[Tracked]:
        original = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        detections = sv.Detections(
            xyxy=_scaled(original, self.association_scale),
            confidence=np.asarray(scores, dtype=np.float32).reshape(-1),
            class_id=np.zeros(len(boxes), dtype=int),
            data={"index": np.arange(len(boxes))})
        tracked = self._tracker.update_with_detections(detections)
        if len(tracked) == 0:  # an empty result carries no data columns
            return []
        return [Tracked(int(tid), int(idx), tuple(float(v) for v in original[idx]), float(conf))
                for tid, idx, conf in zip(tracked.tracker_id, tracked.data["index"], tracked.confidence)]


def _scaled(xyxy: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1.0 or not len(xyxy):
        return xyxy
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = (xyxy[:, 2:] - xyxy[:, :2]) * factor / 2
    return np.hstack([centre - half, centre + half])
