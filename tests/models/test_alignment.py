"""vigil.models.alignment on CPU arrays: the array-module generic warp (the one the DeepStream
backend runs on CuPy surfaces) against OpenCV's similarity fit and warpAffine, on real photos
with the landmarks the real face detector gives. The CuPy path runs in the GPU kit (bench/gpu/)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vigil.models import detection
from vigil.models.alignment import ARCFACE_TEMPLATE, align_face, sample_bilinear, similarity_transform, warp_faces
from vigil.models.catalog import DETECTOR_OUTPUTS, EMBEDDER_INPUT_SIZE
from vigil.models.images import to_bgr

PHOTOS = ["obama", "obama2", "biden"]
CANVAS = (640, 640)
# OpenCV's alignCrop fit: a RANSAC threshold no residual reaches makes it least squares over all 5 points
ALL_POINTS_INLIERS = 1e6


@pytest.fixture(scope="module")
def landmarked(model_repository, prepared_models, photos):
    """Each photo (BGR) with its faces' landmarks from the prepared YuNet (onnxruntime)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_repository / "face_detector" / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    found = {}
    for name in PHOTOS:
        image = to_bgr(photos[name])
        boxed = detection.letterbox(image, CANVAS)
        outputs = session.run(list(DETECTOR_OUTPUTS), {"input": detection.detector_blob([boxed.canvas])})
        rows = detection.decode({n: o[0] for n, o in zip(DETECTOR_OUTPUTS, outputs)}, CANVAS, score_threshold=0.6)
        assert len(rows), name
        found[name] = (image, [r[detection.LANDMARKS].reshape(5, 2) / boxed.scale for r in rows])
    return found


def opencv_crop(image, landmarks):
    matrix, _ = cv2.estimateAffinePartial2D(np.float32(landmarks), ARCFACE_TEMPLATE, method=cv2.RANSAC,
                                            ransacReprojThreshold=ALL_POINTS_INLIERS)
    return matrix, cv2.warpAffine(image, matrix, (EMBEDDER_INPUT_SIZE, EMBEDDER_INPUT_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT)


@pytest.mark.parametrize("name", PHOTOS)
def test_crops_match_opencv_on_real_faces(landmarked, name):
    image, faces = landmarked[name]
    crops = warp_faces(image, faces)
    assert crops.shape == (len(faces), EMBEDDER_INPUT_SIZE, EMBEDDER_INPUT_SIZE, 3) and crops.dtype == np.uint8
    for landmarks, crop in zip(faces, crops):
        matrix, reference = opencv_crop(image, landmarks)
        ours = similarity_transform(landmarks)
        np.testing.assert_allclose(ours, matrix, rtol=1e-4, atol=1e-3)
        # the sampling is warpAffine's, to the bit, given the same matrix: for numpy images it is
        # warpAffine; the array code CuPy images go through computes the same pixels
        expected = cv2.warpAffine(image, ours, (EMBEDDER_INPUT_SIZE, EMBEDDER_INPUT_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT)
        np.testing.assert_array_equal(crop, expected)
        np.testing.assert_array_equal(sample_bilinear(image, [ours])[0], expected)
        # and OpenCV's own fit moves no pixel by more than a grey level
        diff = np.abs(crop.astype(np.int16) - reference.astype(np.int16))
        assert diff.mean() < 0.01 and diff.max() <= 1, (diff.mean(), diff.max())
        assert reference.std() > 20  # the landmarks land on the template: a face, not the background
    np.testing.assert_array_equal(align_face(image, faces[0]), crops[0])


def test_channels_and_borders_follow_the_image(landmarked):
    """An RGBA surface keeps its 4 channels; a face near the edge gets black outside the frame,
    where OpenCV's BORDER_CONSTANT puts it."""
    image, faces = landmarked["obama"]
    rgba = cv2.cvtColor(image, cv2.COLOR_BGR2RGBA)
    crop = warp_faces(rgba, faces[:1])[0]
    assert crop.shape == (EMBEDDER_INPUT_SIZE, EMBEDDER_INPUT_SIZE, 4)
    np.testing.assert_array_equal(crop[..., 2::-1], warp_faces(image, faces[:1])[0])
    np.testing.assert_array_equal(sample_bilinear(rgba, [similarity_transform(faces[0])])[0], crop)
    shifted = faces[0] - faces[0].min(axis=0) + [2.0, 2.0]  # landmarks at the top-left corner
    reference = cv2.warpAffine(image, similarity_transform(shifted), (EMBEDDER_INPUT_SIZE, EMBEDDER_INPUT_SIZE),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    assert (reference == 0).all(axis=2).mean() > 0.1  # a good part of the crop is outside the photo
    np.testing.assert_array_equal(warp_faces(image, [shifted])[0], reference)
    np.testing.assert_array_equal(sample_bilinear(image, [similarity_transform(shifted)])[0], reference)


def test_no_faces_and_degenerate_landmarks():
    image = np.zeros((50, 60, 3), np.uint8)
    assert warp_faces(image, []).shape == (0, EMBEDDER_INPUT_SIZE, EMBEDDER_INPUT_SIZE, 3)
    with pytest.raises(ValueError, match="degenerate"):
        warp_faces(image, [np.full((5, 2), 7.0)])
