"""FaceAnalyzer against the test stack's Triton (PyTriton serving the prepared repository)."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from vigil.models.alignment import align_face
from vigil.models.catalog import SFACE_COSINE_THRESHOLD
from vigil.models.detection import letterbox
from vigil.models.errors import InferenceError, InvalidImageError
from vigil.models.faces import FaceAnalyzer
from vigil.models.images import to_bgr

OBAMA = ["obama", "obama2", "obama3", "obama_partial_face", "obama_partial_face2"]
SINGLE_FACE_PHOTOS = [*OBAMA, "biden"]


@pytest.fixture(scope="module")
def faces(analyzer, photos):
    """The one face of each single-person photo, with its aligned crop."""
    found = {}
    for name in SINGLE_FACE_PHOTOS:
        image = to_bgr(photos[name])
        detected = analyzer.detect(image)
        found[name] = (image, detected, analyzer.align(image, detected[0].landmarks) if detected else None)
    return found


@pytest.fixture(scope="module")
def embeddings(analyzer, faces) -> dict[str, np.ndarray]:
    vectors = analyzer.embed([faces[name][2] for name in SINGLE_FACE_PHOTOS])
    return dict(zip(SINGLE_FACE_PHOTOS, vectors))


@pytest.mark.parametrize("name", SINGLE_FACE_PHOTOS)
def test_one_face_per_single_person_photo(faces, name):
    image, detected, _ = faces[name]
    assert len(detected) == 1, [f.box for f in detected]
    face = detected[0]
    height, width = image.shape[:2]
    x, y, w, h = face.box
    assert x >= 0 and y >= 0 and x + w <= width and y + h <= height and w > 50 and h > 50
    assert face.landmarks.shape == (5, 2)
    assert np.all((face.landmarks[:, 0] >= x) & (face.landmarks[:, 0] <= x + w))
    assert np.all((face.landmarks[:, 1] >= y) & (face.landmarks[:, 1] <= y + h))
    np.testing.assert_allclose(face.box_normalized, (x / width, y / height, w / width, h / height), rtol=1e-6)
    np.testing.assert_allclose(face.landmarks_normalized, face.landmarks / [width, height], rtol=1e-5)
    assert 0.9 <= face.score <= 1.0
    # right eye left of left eye (image coordinates), nose between the eyes and the mouth
    assert face.landmarks[0, 0] < face.landmarks[1, 0]
    assert face.landmarks[:2, 1].mean() < face.landmarks[2, 1] < face.landmarks[3:, 1].mean()


def test_detection_matches_opencv_on_the_same_canvas(analyzer, prepared_models, faces):
    """Through Triton and our numpy decoding, the faces cv2.FaceDetectorYN finds on the same
    letterboxed canvas, mapped back to the photo."""
    detector = cv2.FaceDetectorYN.create(str(prepared_models["face_detector"].path), "", analyzer.canvas_size)
    for name in SINGLE_FACE_PHOTOS:
        image, detected, _ = faces[name]
        boxed = letterbox(image, analyzer.canvas_size)
        _, reference = detector.detect(boxed.canvas)
        assert reference is not None and len(reference) == 1
        expected = reference[0].astype(np.float64)
        height, width = image.shape[:2]
        corners = np.clip(
            [expected[:2] / boxed.scale, (expected[:2] + expected[2:4]) / boxed.scale], 0, [width, height]
        )
        box = [*corners[0], *(corners[1] - corners[0])]  # FaceAnalyzer clips boxes to the photo
        np.testing.assert_allclose(detected[0].box, box, atol=0.01)
        np.testing.assert_allclose(detected[0].landmarks.ravel(), expected[4:14] / boxed.scale, atol=0.01)
        assert detected[0].score == pytest.approx(expected[14], abs=1e-5)


def test_same_person_matches_different_person_does_not(embeddings):
    for a, b in itertools.combinations(OBAMA, 2):
        assert float(embeddings[a] @ embeddings[b]) >= SFACE_COSINE_THRESHOLD, (a, b)
    for name in OBAMA:
        assert float(embeddings[name] @ embeddings["biden"]) < SFACE_COSINE_THRESHOLD, name


def test_embeddings_are_unit_vectors_of_the_model_dimension(embeddings, served_models):
    matrix = np.stack(list(embeddings.values()))
    assert matrix.shape == (len(SINGLE_FACE_PHOTOS), served_models["face_embedder"].embedding_dim)
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-5)


def test_batch_equals_one_by_one(analyzer, faces, embeddings):
    for name in SINGLE_FACE_PHOTOS:
        alone = analyzer.embed([faces[name][2]])
        np.testing.assert_allclose(alone[0], embeddings[name], atol=1e-5)


def test_more_crops_than_max_batch_size(analyzer, faces, embeddings):
    crops = [faces[name][2] for name in SINGLE_FACE_PHOTOS] * 6  # 36 > max_batch_size 32
    vectors = analyzer.embed(crops)
    assert vectors.shape == (36, 128)
    np.testing.assert_allclose(vectors[-1], embeddings["biden"], atol=1e-5)
    assert analyzer.embed([]).shape == (0, 128)


def test_detect_many_equals_detect(analyzer, faces):
    images = [faces[name][0] for name in SINGLE_FACE_PHOTOS]
    for name, found in zip(SINGLE_FACE_PHOTOS, analyzer.detect_many(images)):
        np.testing.assert_allclose(found[0].box, faces[name][1][0].box, atol=1e-3)


def test_alignment_matches_opencv_align_crop(faces, prepared_models):
    recognizer = cv2.FaceRecognizerSF.create(str(prepared_models["face_embedder"].path), "")
    for name in SINGLE_FACE_PHOTOS:
        image, detected, crop = faces[name]
        face = detected[0]
        row = np.array([*face.box, *face.landmarks.ravel(), face.score], dtype=np.float32)
        reference = recognizer.alignCrop(image, row)
        assert crop.shape == (112, 112, 3)
        assert np.abs(crop.astype(int) - reference.astype(int)).mean() < 0.01, name


def test_quality_parts(analyzer, faces):
    image, detected, _ = faces["obama"]
    face = detected[0]
    sharp = analyzer.quality(image, face)
    for part in (sharp.score, sharp.size, sharp.sharpness, sharp.frontal):
        assert 0.0 <= part <= 1.0
    assert sharp.size == 1.0 and sharp.sharpness > 0.9 and sharp.frontal > 0.8 and sharp.score > 0.9
    blurred = analyzer.quality(cv2.GaussianBlur(image, (0, 0), 4), face)
    assert blurred.sharpness < sharp.sharpness - 0.3 and blurred.score < sharp.score
    # the same face at a sixth of the size: too small for a full size score
    small = cv2.resize(image, None, fx=1 / 6, fy=1 / 6, interpolation=cv2.INTER_AREA)
    small_face = analyzer.detect(small)[0]
    assert analyzer.quality(small, small_face).size < 0.5


def test_frontal_score_drops_when_the_head_turns(faces):
    from vigil.models.quality import frontal_score

    landmarks = faces["obama"][1][0].landmarks.copy()
    frontal = frontal_score(landmarks)
    eye_distance = np.linalg.norm(landmarks[1] - landmarks[0])
    turned = landmarks.copy()
    turned[2, 0] += 0.35 * eye_distance  # nose towards one eye, as in a half-profile
    assert frontal_score(turned) < frontal - 0.3


@pytest.mark.parametrize(
    "bad",
    [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, np.zeros((10, 10, 3), np.float32),
     np.zeros((0, 0, 3), np.uint8), np.zeros((4, 4, 2), np.uint8), 42],
    ids=["empty", "text", "truncated-png", "float-array", "empty-array", "two-channels", "int"],
)
def test_bad_images_raise_the_typed_error(analyzer, bad):
    with pytest.raises(InvalidImageError):
        analyzer.detect(bad)


def test_missing_file_and_bad_crops_raise_the_typed_error(analyzer, tmp_path):
    with pytest.raises(InvalidImageError, match="cannot read image file"):
        analyzer.detect(tmp_path / "missing.jpg")
    with pytest.raises(InvalidImageError, match="crop 1"):
        analyzer.embed([np.zeros((112, 112, 3), np.uint8), np.zeros((100, 100, 3), np.uint8)])


def test_encoded_bytes_and_arrays_give_the_same_faces(analyzer, photos, faces):
    from_bytes = analyzer.detect(photos["obama"].read_bytes())
    np.testing.assert_allclose(from_bytes[0].box, faces["obama"][1][0].box, atol=1e-3)
    grey = cv2.cvtColor(faces["obama"][0], cv2.COLOR_BGR2GRAY)
    assert len(analyzer.detect(grey)) == 1
    assert len(analyzer.detect(photos["32bit"])) == 1  # a 4-channel PNG


def test_unknown_model_is_an_inference_error(endpoints, served_models):
    with FaceAnalyzer(endpoints, embedder_model="no_such_model") as client:  # noqa: SIM117
        with pytest.raises(InferenceError, match="no_such_model"):
            client.embed([np.zeros((112, 112, 3), np.uint8)])


def test_align_face_rejects_degenerate_landmarks():
    with pytest.raises(ValueError, match="degenerate"):
        align_face(np.zeros((50, 50, 3), np.uint8), np.zeros((5, 2), np.float32))
