"""Face enrolment and search through the real gRPC API, on real photos (the face_recognition
sdist's test images) with the models served by the embedded Triton."""

from __future__ import annotations

import hashlib

import cv2
import grpc
import numpy as np
import pytest

from tests.fixtures.stack import MEDIA_CACHE
from vigil.api.v1 import common_pb2, person_pb2, person_pb2_grpc
from vigil.control.gallery import Box, Rejection, choose_face
from vigil.models.detection import DetectedFace
from vigil.models.samples import GROUP_PHOTO, GROUP_PHOTO_FACES, INSIGHTFACE, face_photos


@pytest.fixture(scope="module")
def persons(channel):
    return person_pb2_grpc.PersonServiceStub(channel)


async def _person(persons, md, name: str) -> str:
    reply = await persons.CreatePerson(person_pb2.CreatePersonRequest(
        person=person_pb2.Person(name=name, status=common_pb2.PERSON_STATUS_KNOWN)), metadata=md)
    return reply.person.id


async def test_enrol_then_search_ranks_the_right_person_first(persons, as_role, face_models, photos, control):
    md = as_role("admin")
    obama = await _person(persons, md, "Barack Obama")
    biden = await _person(persons, md, "Joe Biden")
    enrolled = await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=obama, images=[person_pb2.EnrollImage(image=photos["obama"].read_bytes()),
                                 person_pb2.EnrollImage(image=photos["obama2"].read_bytes())]), metadata=md)
    assert [r.WhichOneof("result") for r in enrolled.results] == ["face", "face"], enrolled
    assert sum(r.face.is_primary for r in enrolled.results) == 1
    assert all(r.face.embedding_dim == 128 and 0 < r.face.quality <= 1 for r in enrolled.results)
    await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=biden, images=[person_pb2.EnrollImage(image=photos["biden"].read_bytes())]), metadata=md)

    # the crop is in object storage with the checksum of what was stored
    _, app = control
    faces = await persons.ListFaces(person_pb2.ListFacesRequest(person_id=obama), metadata=md)
    assert len(faces.faces) == 2

    reply = await persons.SearchFaces(person_pb2.SearchFacesRequest(
        image=photos["obama3"].read_bytes(), top_k=5), metadata=as_role("viewer"))
    assert reply.matches[0].person.id == obama and reply.matches[0].above_threshold
    assert reply.matches[0].similarity >= reply.match_threshold
    others = [m for m in reply.matches if m.person.id == biden]
    assert others and not others[0].above_threshold and others[0].similarity < reply.match_threshold
    assert 0 < reply.query_face_quality <= 1 and reply.query_face_box.width > 0


async def test_search_by_embedding_and_filters(persons, as_role, face_models, photos):
    md = as_role("admin")
    person = await _person(persons, md, "Embedding probe")
    enrolled = await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=person, images=[person_pb2.EnrollImage(image=photos["obama"].read_bytes())]), metadata=md)
    face = enrolled.results[0].face
    models = await persons.ListModelVersions(person_pb2.ListModelVersionsRequest(), metadata=md)
    assert face.model_version in [m.version_string for m in models.model_versions]

    bad = person_pb2.SearchFacesRequest(embedding=person_pb2.Embedding(values=[0.1] * 127),
                                        model_version=face.model_version)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await persons.SearchFaces(bad, metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "embedding.values" in err.value.details()

    nan = person_pb2.SearchFacesRequest(embedding=person_pb2.Embedding(values=[float("nan")] * 128),
                                        model_version=face.model_version)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await persons.SearchFaces(nan, metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # the blacklisted-only filter excludes this known person
    filtered = await persons.SearchFaces(person_pb2.SearchFacesRequest(
        image=photos["obama"].read_bytes(), statuses=[common_pb2.PERSON_STATUS_BLACKLISTED]), metadata=md)
    assert person not in [m.person.id for m in filtered.matches]


async def test_enrolment_refusals(persons, as_role, face_models, photos):
    md = as_role("admin")
    person = await _person(persons, md, "Refusals")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await persons.EnrollFace(person_pb2.EnrollFaceRequest(
            person_id=person, images=[person_pb2.EnrollImage(image=b"not an image")]), metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "images[0].image" in err.value.details()

    import cv2
    import numpy as np

    blank = cv2.imencode(".png", np.full((200, 200, 3), 127, np.uint8))[1].tobytes()
    left, right = cv2.imread(str(photos["obama"])), cv2.imread(str(photos["biden"]))
    height = 400
    side_by_side = cv2.hconcat([cv2.resize(img, (img.shape[1] * height // img.shape[0], height))
                                for img in (left, right)])
    two = cv2.imencode(".jpg", side_by_side)[1].tobytes()
    reply = await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=person, images=[person_pb2.EnrollImage(image=blank), person_pb2.EnrollImage(image=two)]),
        metadata=md)
    reasons = [r.rejection.reason for r in reply.results]
    assert reasons == [person_pb2.FACE_REJECTION_REASON_NO_FACE, person_pb2.FACE_REJECTION_REASON_MULTIPLE_FACES]
    faces = await persons.ListFaces(person_pb2.ListFacesRequest(person_id=person), metadata=md)
    assert len(faces.faces) == 0  # nothing half-written

    # a face box picks one of the two faces
    boxed = await persons.EnrollFace(person_pb2.EnrollFaceRequest(person_id=person, images=[person_pb2.EnrollImage(
        image=two, face_box=common_pb2.BoundingBox(x=0.5, y=0.0, width=0.5, height=1.0))]), metadata=md)
    assert boxed.results[0].WhichOneof("result") == "face", boxed

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await persons.EnrollFace(person_pb2.EnrollFaceRequest(
            person_id="00000000-0000-0000-0000-000000000000",
            images=[person_pb2.EnrollImage(image=photos["obama"].read_bytes())]), metadata=md)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_stored_crop_matches_its_checksum(persons, as_role, face_models, photos, control, db):
    md = as_role("admin")
    person = await _person(persons, md, "Checksum probe")
    await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=person, images=[person_pb2.EnrollImage(image=photos["biden"].read_bytes())]), metadata=md)
    key = db.execute("SELECT source_image_path FROM face_embeddings WHERE person_id = %s", (person,)).fetchone()[0]
    _, app = control
    data = app.objects.get(key)
    assert app.objects.stat(key).sha256 == hashlib.sha256(data).hexdigest()
    assert data[:2] == b"\xff\xd8"  # a JPEG crop


# --------------------------------------------------------------------------- face_box: which face


def _face(x, y, w, h) -> DetectedFace:
    return DetectedFace(box=(x, y, w, h), box_normalized=(x, y, w, h), landmarks=np.zeros((5, 2)),
                        landmarks_normalized=np.zeros((5, 2)), score=0.9)


def test_a_tight_box_inside_the_detected_face_picks_it():
    left, right = _face(0.10, 0.10, 0.20, 0.30), _face(0.50, 0.10, 0.20, 0.30)
    tight = Box(0.55, 0.16, 0.10, 0.15)  # a quarter of the detector's box: most of it outside
    assert choose_face([left, right], tight) is right


def test_a_loose_box_picks_the_face_whose_centre_it_holds():
    small, large = _face(0.33, 0.42, 0.05, 0.06), _face(0.42, 0.15, 0.20, 0.25)
    loose = Box(0.30, 0.30, 0.20, 0.20)  # head and shoulders of the small face; a corner of the large one
    assert loose.iou(Box(*large.box_normalized)) > loose.iou(Box(*small.box_normalized))  # IoU alone: wrong face
    assert choose_face([large, small], loose) is small


def test_of_faces_whose_centres_it_holds_the_box_picks_the_best_overlap():
    a, b = _face(0.10, 0.10, 0.10, 0.10), _face(0.22, 0.10, 0.12, 0.12)
    assert choose_face([a, b], Box(0.05, 0.05, 0.30, 0.20)) is b
    assert choose_face([a, b], Box(0.08, 0.08, 0.20, 0.14)) is a


def test_a_box_overlapping_no_face_is_refused():
    chosen = choose_face([_face(0.1, 0.1, 0.1, 0.1)], Box(0.5, 0.5, 0.2, 0.2))
    assert isinstance(chosen, Rejection) and chosen.reason == "face_box_mismatch"
    assert choose_face([_face(0.1, 0.1, 0.1, 0.1)], Box(0.19, 0.19, 0.2, 0.2)).box == (0.1, 0.1, 0.1, 0.1)


# --------------------------------------------------------------------------- group photos, small faces


@pytest.fixture(scope="module")
def group_photo() -> bytes:
    """insightface's t1.jpg: six people at a table, faces 94-110 px wide."""
    return face_photos(MEDIA_CACHE.parent / INSIGHTFACE.name, INSIGHTFACE)[GROUP_PHOTO].read_bytes()


def _shrunk(box: common_pb2.BoundingBox, by: float) -> common_pb2.BoundingBox:
    """The box scaled about its centre: `by` < 1 draws it tighter than the detector did."""
    cx, cy = box.x + box.width / 2, box.y + box.height / 2
    return common_pb2.BoundingBox(x=cx - box.width * by / 2, y=cy - box.height * by / 2,
                                  width=box.width * by, height=box.height * by)


async def test_group_photo_enrolment_by_a_tight_face_box(persons, as_role, face_models, group_photo):
    md = as_role("admin")
    person = await _person(persons, md, "Group photo")
    reply = await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=person, images=[person_pb2.EnrollImage(image=group_photo)]), metadata=md)
    rejection = reply.results[0].rejection
    assert rejection.reason == person_pb2.FACE_REJECTION_REASON_MULTIPLE_FACES
    assert f"{GROUP_PHOTO_FACES} faces" in rejection.message

    # each face's detected box, as search reports it, drawn tighter (half its size), picks that face
    boxes = []
    for x in (0.1, 0.3, 0.45, 0.65, 0.75, 0.92):
        found = await persons.SearchFaces(person_pb2.SearchFacesRequest(
            image=group_photo, face_box=common_pb2.BoundingBox(x=x - 0.04, y=0.0, width=0.08, height=0.6),
            top_k=1), metadata=md)
        boxes.append(found.query_face_box)
    assert len({round(b.x, 3) for b in boxes}) == GROUP_PHOTO_FACES  # six different faces
    tight = _shrunk(boxes[3], 0.5)
    enrolled = await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=person, images=[person_pb2.EnrollImage(image=group_photo, face_box=tight)]), metadata=md)
    result = enrolled.results[0]
    assert result.WhichOneof("result") == "face", result
    assert abs(result.face_box.x - boxes[3].x) < 1e-3 and abs(result.face_box.width - boxes[3].width) < 1e-3

    # searching the same photo with the same tight box finds the enrolled person first
    found = await persons.SearchFaces(person_pb2.SearchFacesRequest(image=group_photo, face_box=tight, top_k=3),
                                      metadata=md)
    assert found.matches[0].person.id == person and found.matches[0].similarity > 0.95

    # a box over the table, where no face is, is refused
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await persons.SearchFaces(person_pb2.SearchFacesRequest(
            image=group_photo, face_box=common_pb2.BoundingBox(x=0.3, y=0.8, width=0.3, height=0.15)), metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no detected face" in err.value.details()


async def test_search_finds_a_small_face_in_a_large_photo(persons, as_role, face_models, photos):
    """Obama enrolled from a portrait, searched by a 4000x3000 photo where his face is 64 px tall."""
    from vigil.samples.scene import cut_out, read_photo

    md = as_role("admin")
    obama = await _person(persons, md, "Obama, small in a large photo")
    await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=obama, images=[person_pb2.EnrollImage(image=photos["obama2"].read_bytes())]), metadata=md)
    cut = cut_out(read_photo(photos["obama3"]), "obama3", 64)
    width, height = 4000, 3000
    canvas = np.full((height, width, 3), 110, np.float32)
    ox, oy = 2900, 2100
    h, w = cut.alpha.shape[:2]
    canvas[oy:oy + h, ox:ox + w] = canvas[oy:oy + h, ox:ox + w] * (1 - cut.alpha) + cut.alpha * cut.image
    image = cv2.imencode(".jpg", canvas.clip(0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    fx, fy, fw, fh = cut.face
    reply = await persons.SearchFaces(person_pb2.SearchFacesRequest(image=image, top_k=5), metadata=md)
    box = reply.query_face_box
    assert abs(box.x * width - (ox + fx)) < 8 and abs(box.y * height - (oy + fy)) < 8 and box.height * height > 50
    ours = [m for m in reply.matches if m.person.id == obama]  # other tests enrol Obama too
    assert ours and ours[0].above_threshold, [(m.person.name, m.similarity) for m in reply.matches]


# --------------------------------------------------------------------------- every search accounted for


async def test_each_search_is_logged_audited_and_listed_for_admins(persons, as_role, face_models, photos, db):
    from google.protobuf import timestamp_pb2

    md = as_role("admin")
    person = await _person(persons, md, "Logged search")
    enrolled = await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=person, images=[person_pb2.EnrollImage(image=photos["biden"].read_bytes())]), metadata=md)
    model_version = enrolled.results[0].face.model_version
    start = timestamp_pb2.Timestamp()
    start.GetCurrentTime()

    by_image = await persons.SearchFaces(person_pb2.SearchFacesRequest(
        image=photos["biden"].read_bytes(), top_k=3, statuses=[common_pb2.PERSON_STATUS_KNOWN]),
        metadata=as_role("viewer"))
    probe = db.execute("SELECT embedding::text FROM face_embeddings WHERE person_id = %s", (person,)).fetchone()[0]
    by_embedding = await persons.SearchFaces(person_pb2.SearchFacesRequest(
        embedding=person_pb2.Embedding(values=[float(v) for v in probe.strip("[]").split(",")]),
        model_version=model_version, top_k=2, min_similarity=0.5), metadata=as_role("operator"))

    window = common_pb2.TimeRange(start_time=start)
    listed = await persons.ListSearches(person_pb2.ListSearchesRequest(time_range=window), metadata=md)
    embedding_entry, image_entry = listed.searches[:2]  # newest first
    assert image_entry.query_type == person_pb2.SEARCH_QUERY_TYPE_IMAGE
    assert list(image_entry.matched_person_ids) == [m.person.id for m in by_image.matches]
    assert person in image_entry.matched_person_ids  # other tests enrol Biden too
    assert image_entry.top_score == pytest.approx(by_image.matches[0].similarity, abs=1e-4)
    assert list(image_entry.statuses) == [common_pb2.PERSON_STATUS_KNOWN] and image_entry.top_k == 3
    assert image_entry.model_version == model_version
    # the image query spent most of its time embedding; each part is measured, the whole covers them
    assert image_entry.embed_time_ms > 0 and image_entry.vector_time_ms > 0 and image_entry.db_time_ms > 0
    parts = image_entry.embed_time_ms + image_entry.vector_time_ms + image_entry.db_time_ms
    assert parts <= image_entry.total_time_ms and image_entry.embed_time_ms > image_entry.vector_time_ms
    assert image_entry.api_key_id and not image_entry.user_id  # the test keys are service keys

    assert embedding_entry.query_type == person_pb2.SEARCH_QUERY_TYPE_EMBEDDING
    assert embedding_entry.embed_time_ms == 0 and embedding_entry.min_similarity == pytest.approx(0.5)
    assert list(embedding_entry.matched_person_ids) == [m.person.id for m in by_embedding.matches]
    assert embedding_entry.api_key_id != image_entry.api_key_id  # operator's key, not the viewer's

    only_images = await persons.ListSearches(person_pb2.ListSearchesRequest(
        time_range=window, query_types=[person_pb2.SEARCH_QUERY_TYPE_IMAGE]), metadata=md)
    assert [s.id for s in only_images.searches] == [image_entry.id]
    paged = await persons.ListSearches(person_pb2.ListSearchesRequest(time_range=window, page_size=1), metadata=md)
    assert [s.id for s in paged.searches] == [embedding_entry.id] and paged.next_page_token

    # audited: who searched whom
    audited = db.execute("SELECT details FROM audit_logs WHERE action = 'person.search_faces' AND resource_id = %s",
                         (image_entry.id,)).fetchone()
    assert audited and audited[0]["changed_fields"]["matched_person_ids"] == list(image_entry.matched_person_ids)
    assert audited[0]["api_key_id"] == image_entry.api_key_id

    # admins only: faces are personal data
    for role in ("viewer", "operator"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await persons.ListSearches(person_pb2.ListSearchesRequest(), metadata=as_role(role))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await persons.ListSearches(person_pb2.ListSearchesRequest(query_types=[0]), metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "query_types[0]" in err.value.details()


async def test_failed_searches_are_logged_and_audited_with_their_error(persons, as_role, face_models, db):
    from google.protobuf import timestamp_pb2

    start = timestamp_pb2.Timestamp()
    start.GetCurrentTime()
    md = as_role("operator")
    blank = cv2.imencode(".jpg", np.full((240, 320, 3), 128, np.uint8))[1].tobytes()
    with pytest.raises(grpc.aio.AioRpcError) as no_face:
        await persons.SearchFaces(person_pb2.SearchFacesRequest(image=blank, top_k=4), metadata=md)
    model_version = db.execute("SELECT version_string FROM model_versions WHERE embedding_dim IS NOT NULL"
                               " ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    with pytest.raises(grpc.aio.AioRpcError) as wrong_size:
        await persons.SearchFaces(person_pb2.SearchFacesRequest(
            embedding=person_pb2.Embedding(values=[0.1] * 7), model_version=model_version), metadata=md)
    assert wrong_size.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    listed = await persons.ListSearches(person_pb2.ListSearchesRequest(
        time_range=common_pb2.TimeRange(start_time=start)), metadata=as_role("admin"))
    mine = [s for s in listed.searches if s.error]
    by_embedding, by_image = mine[:2]  # newest first
    assert by_image.query_type == person_pb2.SEARCH_QUERY_TYPE_IMAGE and by_image.top_k == 4
    assert by_image.error.startswith(no_face.value.code().name + ": ")
    assert not by_image.matched_person_ids and not by_image.HasField("top_score")
    assert by_embedding.query_type == person_pb2.SEARCH_QUERY_TYPE_EMBEDDING
    assert by_embedding.error.startswith("INVALID_ARGUMENT: ") and "7" in by_embedding.error
    assert by_embedding.model_version == model_version  # resolved before the vector was refused
    audited = db.execute("SELECT details FROM audit_logs WHERE action = 'person.search_faces' AND resource_id = %s",
                         (by_image.id,)).fetchone()
    assert audited and audited[0]["changed_fields"]["error"] == by_image.error
