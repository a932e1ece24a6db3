"""Face enrolment and search through the real gRPC API, on real photos (the face_recognition
sdist's test images) with the models served by the embedded Triton."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from vigil.api.v1 import common_pb2, person_pb2, person_pb2_grpc


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
