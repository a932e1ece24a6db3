"""FaceAnalyzer against the test stack's Triton (PyTriton serving the prepared repository)."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from tests.fixtures.stack import MEDIA_CACHE
from vigil.models.alignment import align_face
from vigil.models.catalog import SFACE_COSINE_THRESHOLD
from vigil.models.detection import letterbox
from vigil.models.errors import InferenceError, InvalidImageError
from vigil.models.faces import FaceAnalyzer
from vigil.models.images import to_bgr
from vigil.models.samples import GROUP_PHOTO, GROUP_PHOTO_FACES, INSIGHTFACE, face_photos

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


# --- still images: group photos and small faces in large photos --------------------------------

@pytest.fixture(scope="module")
def group_photo() -> np.ndarray:
    """insightface's t1.jpg: a real photo of six people at a table (two look down at their cards)."""
    return to_bgr(face_photos(MEDIA_CACHE.parent / INSIGHTFACE.name, INSIGHTFACE)[GROUP_PHOTO])


def _iou(a, b) -> float:
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


def _matched(found, truth: list[tuple[float, float, float, float]]) -> list[float]:
    """For each true face box, the best IoU of a found face."""
    return [max((_iou(t, f.box) for f in found), default=0.0) for t in truth]


@pytest.fixture(scope="module")
def group_faces(analyzer, group_photo):
    """The six faces of the group photo at its own resolution (faces 94-110 px wide)."""
    found = analyzer.detect_still(group_photo)
    assert len(found) == GROUP_PHOTO_FACES, [f.box for f in found]
    return found


def test_every_face_of_a_group_photo(analyzer, group_photo, group_faces):
    # the real-time path (one 640 px canvas) finds fewer: the still path is what enrolment needs
    assert len(analyzer.detect(group_photo)) < GROUP_PHOTO_FACES
    assert all(f.score >= 0.8 and f.box[2] > 80 for f in group_faces)
    centres = sorted(f.box[0] + f.box[2] / 2 for f in group_faces)
    assert np.diff(centres).min() > 50  # six different people, not one face twice


@pytest.mark.parametrize("scale", [0.32, 0.6])
def test_small_faces_of_a_group_photo_in_a_large_photo(analyzer, group_photo, group_faces, scale):
    """The group photo shrunk so its faces are 40-48 px tall (scale 0.32) inside a 4000x3000 photo."""
    small = cv2.resize(group_photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    large = np.full((3000, 4000, 3), 96, np.uint8)
    ox, oy = 2300, 1700
    large[oy:oy + small.shape[0], ox:ox + small.shape[1]] = small
    truth = [(ox + x * scale, oy + y * scale, w * scale, h * scale) for x, y, w, h in (f.box for f in group_faces)]
    assert min(h for *_, h in truth) >= 40
    found = analyzer.detect_still(large)
    assert len(found) == GROUP_PHOTO_FACES, [f.box for f in found]
    assert min(_matched(found, truth)) >= 0.5
    assert len(analyzer.detect(large)) == 0  # on one canvas these faces are 6-10 px: none found


def test_composed_crowd_from_real_faces_40_to_300_px(analyzer):
    """Real faces (face_recognition photos, scikit-image's astronaut) cut out and placed at known
    positions and sizes on a 4000x3000 brick wall, some across tile borders."""
    from vigil.samples.scene import astronaut_bgr, cut_out, load_textures, read_photo

    photos = face_photos(MEDIA_CACHE)
    sources = {stem: read_photo(photos[stem]) for stem in ("obama2", "obama3", "biden")}
    sources["astronaut"] = astronaut_bgr()
    width, height = 4000, 3000
    wall = cv2.resize(np.tile(load_textures()["brick"][:, :, None], (1, 1, 3)), (width, height))
    canvas = wall.astype(np.float32)
    people = [("obama2", 40, 500, 500), ("biden", 44, 1300, 900), ("astronaut", 48, 2100, 600),
              ("obama3", 60, 3000, 1500), ("biden", 90, 700, 2000), ("astronaut", 150, 1800, 1800),
              ("obama2", 300, 2900, 2300), ("obama3", 40, 960, 1420)]
    truth = []
    for stem, face_height, cx, cy in people:
        cut = cut_out(sources[stem], stem, face_height)
        fx, fy, fw, fh = cut.face
        ox, oy = int(cx - fx - fw / 2), int(cy - fy - fh / 2)
        h, w = cut.alpha.shape[:2]
        canvas[oy:oy + h, ox:ox + w] = canvas[oy:oy + h, ox:ox + w] * (1 - cut.alpha) + cut.alpha * cut.image
        truth.append((ox + fx, oy + fy, fw, fh))
    crowd = canvas.clip(0, 255).astype(np.uint8)
    found = analyzer.detect_still(crowd)
    assert len(found) == len(people), [f.box for f in found]
    assert min(_matched(found, truth)) >= 0.5


@pytest.mark.parametrize("name", SINGLE_FACE_PHOTOS)
def test_still_detection_finds_the_one_face_of_a_portrait(analyzer, faces, name):
    """Tiles at finer scales find no extra faces (no eye or hair taken for a face) in a portrait."""
    image, detected, _ = faces[name]
    still = analyzer.detect_still(image)
    assert len(still) == 1, [f.box for f in still]
    assert _iou(still[0].box, detected[0].box) >= 0.7
