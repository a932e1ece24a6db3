"""The face client used by enrolment and the pipeline: detect, align, embed and score faces,
with the networks running in Triton (the embedded PyTriton or a production server).

Pre- and post-processing happen here in numpy/OpenCV, so the server only runs the networks and
the same client works against any Triton serving the repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import cv2
import numpy as np

from vigil.endpoints import Endpoints, resolve
from vigil.models.alignment import align_face
from vigil.models.catalog import (
    DETECTOR_INPUT,
    DETECTOR_OUTPUTS,
    EMBEDDER_INPUT,
    EMBEDDER_INPUT_SIZE,
    EMBEDDER_OUTPUT,
    FACE_DETECTOR,
    FACE_EMBEDDER,
)
from vigil.models.detection import (
    MIN_STILL_FACE,
    NMS_THRESHOLD,
    SCORE_THRESHOLD,
    STILL_SCORE_THRESHOLD,
    TOP_K,
    DetectedFace,
    check_canvas_size,
    decode,
    detector_blob,
    in_window,
    letterbox,
    merge_windows,
    still_windows,
    to_detected_faces,
    window_canvas,
)
from vigil.models.errors import InvalidImageError
from vigil.models.images import ImageInput, to_bgr
from vigil.models.quality import FaceQuality, face_quality
from vigil.models.triton import TritonModels, chunks
from vigil.settings import VigilSettings

DEFAULT_CANVAS = (640, 640)  # width, height every frame is letterboxed onto (YuNet's reference size)


class FaceAnalyzer:
    """Face detection (YuNet), alignment, embedding (SFace) and quality through Triton gRPC."""

    def __init__(
        self,
        endpoints: Endpoints,
        *,
        detector_model: str = FACE_DETECTOR.name,
        embedder_model: str = FACE_EMBEDDER.name,
        canvas_size: tuple[int, int] = DEFAULT_CANVAS,
        score_threshold: float = SCORE_THRESHOLD,
        nms_threshold: float = NMS_THRESHOLD,
        top_k: int = TOP_K,
        still_score_threshold: float = STILL_SCORE_THRESHOLD,
        timeout_s: float = 30.0,
    ):
        check_canvas_size(canvas_size)
        self.detector_model = detector_model
        self.embedder_model = embedder_model
        self.canvas_size = canvas_size
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.still_score_threshold = still_score_threshold
        self.timeout_s = timeout_s
        self.url = endpoints.triton_url
        self._triton = TritonModels(endpoints, timeout_s=timeout_s)

    @classmethod
    def from_settings(cls, settings: VigilSettings, **options) -> FaceAnalyzer:
        return cls(resolve(settings), **options)

    def close(self) -> None:
        self._triton.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def wait_until_ready(self, timeout_s: float = 60.0) -> None:
        """Block until both models are loaded (the server answers before it has loaded them)."""
        self._triton.wait_until_ready([self.detector_model, self.embedder_model], timeout_s)

    # --- detection -------------------------------------------------------------------------

    def detect(self, image: ImageInput) -> list[DetectedFace]:
        """Faces in one image (array, encoded bytes or path), best score first."""
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[ImageInput]) -> list[list[DetectedFace]]:
        """Faces in each image; the images travel to Triton together, max_batch_size at a time."""
        frames = [to_bgr(image) for image in images]
        boxed = [letterbox(frame, self.canvas_size) for frame in frames]
        found: list[list[DetectedFace]] = []
        for chunk in chunks(len(frames), self._max_batch_size(self.detector_model)):
            blob = detector_blob([boxed[i].canvas for i in chunk])
            outputs = self._infer(self.detector_model, DETECTOR_INPUT, blob, DETECTOR_OUTPUTS)
            for row, index in enumerate(chunk):
                rows = decode(
                    {name: out[row] for name, out in outputs.items()}, self.canvas_size,
                    self.score_threshold, self.nms_threshold, self.top_k,
                )
                height, width = frames[index].shape[:2]
                found.append(to_detected_faces(rows, boxed[index].scale, (width, height)))
        return found

    def detect_still(self, image: ImageInput, *, min_face: float = MIN_STILL_FACE) -> list[DetectedFace]:
        """Faces in a still photo down to `min_face` pixels (box height), best score first: the
        whole image and overlapping tiles at finer scales (detection.still_windows), merged.
        Slower than detect() by the number of tiles; for enrolment and search, not for video."""
        frame = to_bgr(image)
        height, width = frame.shape[:2]
        windows = still_windows((width, height), self.canvas_size, min_face)
        rows = []
        for chunk in chunks(len(windows), self._max_batch_size(self.detector_model)):
            blob = detector_blob([window_canvas(frame, windows[i], self.canvas_size) for i in chunk])
            outputs = self._infer(self.detector_model, DETECTOR_INPUT, blob, DETECTOR_OUTPUTS)
            for row, index in enumerate(chunk):
                found = decode({name: out[row] for name, out in outputs.items()}, self.canvas_size,
                               self.still_score_threshold, self.nms_threshold, self.top_k)
                rows.append(in_window(found, windows[index], (width, height)))
        return to_detected_faces(merge_windows(np.vstack(rows), self.nms_threshold), 1.0, (width, height))

    # --- alignment, embedding, quality -----------------------------------------------------

    def align(self, image: ImageInput, landmarks: np.ndarray) -> np.ndarray:
        """The 112x112 BGR crop the embedder expects, from a face's 5 landmarks."""
        return align_face(to_bgr(image), landmarks)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(n, D) float32 L2-normalised embeddings of aligned crops, in one Triton request
        (several only when n exceeds the model's max_batch_size)."""
        crops = [self._checked_crop(crop, i) for i, crop in enumerate(crops)]
        if not crops:
            return np.zeros((0, self._embedding_dim()), dtype=np.float32)
        # FaceRecognizerSF's preprocessing: RGB, 0..255 float, NCHW (the graph normalises)
        blob = cv2.dnn.blobFromImages(crops, 1.0, (EMBEDDER_INPUT_SIZE, EMBEDDER_INPUT_SIZE), (0, 0, 0),
                                      swapRB=True, crop=False)
        features = np.vstack([
            self._infer(self.embedder_model, EMBEDDER_INPUT, blob[chunk.start:chunk.stop], (EMBEDDER_OUTPUT,))[
                EMBEDDER_OUTPUT]
            for chunk in chunks(len(crops), self._max_batch_size(self.embedder_model))
        ]).astype(np.float32)
        return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)

    def quality(self, image: ImageInput, face: DetectedFace) -> FaceQuality:
        """How suitable the face is for embedding: size, sharpness and frontal pose, and their mean."""
        return face_quality(to_bgr(image), face)

    # --- Triton ----------------------------------------------------------------------------

    @staticmethod
    def _checked_crop(crop: np.ndarray, index: int) -> np.ndarray:
        size = (EMBEDDER_INPUT_SIZE, EMBEDDER_INPUT_SIZE, 3)
        if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.shape != size:
            shape = getattr(crop, "shape", type(crop).__name__)
            raise InvalidImageError(f"crop {index}: expected a uint8 array of shape {size} (see align), got {shape}")
        return crop

    def _max_batch_size(self, model: str) -> int:
        return self._triton.max_batch_size(model)

    def _embedding_dim(self) -> int:
        outputs = {o.name: o for o in self._triton.config(self.embedder_model).output}
        return int(outputs[EMBEDDER_OUTPUT].dims[-1])

    def _infer(self, model: str, input_name: str, array: np.ndarray, output_names) -> dict[str, np.ndarray]:
        return self._triton.infer(model, input_name, array, output_names)
