"""The object detector client of the portable backend: persons and vehicles in batches of frames
through Triton (`object_detector`), decoded by vigil.models.objects like the DeepStream probe."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vigil.endpoints import Endpoints
from vigil.models import objects
from vigil.models.objects import DetectedObject
from vigil.models.triton import TritonModels, chunks


class ObjectDetector:
    name = "nanodet"

    def __init__(self, endpoints: Endpoints, *, model: str = objects.MODEL_NAME, timeout_s: float = 30.0):
        self.model = model
        self._triton = TritonModels(endpoints, timeout_s=timeout_s)

    def close(self) -> None:
        self._triton.close()

    def wait_until_ready(self, timeout_s: float) -> None:
        self._triton.wait_until_ready([self.model], timeout_s)

    def detect_many(self, images_bgr: Sequence[np.ndarray], min_score: float) -> list[list[DetectedObject]]:
        """Persons and vehicles in each frame, best first; the frames travel to Triton together,
        max_batch_size at a time."""
        found: list[list[DetectedObject]] = []
        for chunk in chunks(len(images_bgr), self._triton.max_batch_size(self.model)):
            blob, boxes = objects.detector_blob([images_bgr[i] for i in chunk])
            out = self._triton.infer(self.model, objects.INPUT, blob, (objects.SCORES, objects.BOXES))
            found += [objects.decode_objects(out[objects.SCORES][row], out[objects.BOXES][row], box, min_score)
                      for row, box in enumerate(boxes)]
        return found
