"""Recognition of ingested faces on real photos with the served face models: an enrolled person's
face gives person_recognized, a stranger's faces share one unknown cluster, and the cluster
conventions of PersonService keep working on what ingest created."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.fixtures.control import database
from tests.ingest.builders import accepted, batch, best_face, face_track, person
from vigil.api.v1 import common_pb2, person_pb2, person_pb2_grpc
from vigil.api.v1 import event_pb2 as event_pb
from vigil.storage.repositories.events import EventRepository
from vigil.storage.repositories.faces import Calibration, ModelVersionRepository


async def camera_events(events, camera, metadata) -> dict[str, event_pb.Event]:
    listed = await events.ListEvents(event_pb.ListEventsRequest(camera_ids=[str(camera.id)]), metadata=metadata)
    return {e.track_id: e for e in listed.events}


async def test_an_enrolled_persons_face_is_recognized(ingest, node, events, channel, admin, app, camera,
                                                       model_version, threshold, photos, real_faces):
    persons = person_pb2_grpc.PersonServiceStub(channel)
    obama = (await persons.CreatePerson(person_pb2.CreatePersonRequest(person=person_pb2.Person(
        name="Barack Obama", status=common_pb2.PERSON_STATUS_KNOWN)), metadata=admin)).person.id
    enrolled = await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=obama, model_version=model_version,
        images=[person_pb2.EnrollImage(image=photos[name].read_bytes()) for name in ("obama", "obama2")]),
        metadata=admin)
    assert [r.WhichOneof("result") for r in enrolled.results] == ["face", "face"]

    face = best_face(real_faces["obama3"], model_version, snapshot_key="snaps/obama3.jpg")
    await accepted(ingest, node, batch(camera.id, [person("body"), face_track("face", face, parent="body")]))

    found = await camera_events(events, camera, admin)
    recognized = found["face"]
    assert (recognized.event_type, recognized.person_id, recognized.cluster_id) == \
        (common_pb2.EVENT_TYPE_PERSON_RECOGNIZED, obama, "")
    assert threshold <= recognized.similarity <= 1.0
    assert recognized.model_version == model_version and recognized.face_quality > 0
    assert found["body"].event_type == common_pb2.EVENT_TYPE_HUMAN_DETECTED
    async with database(app) as conn:
        stored = await EventRepository(conn).get(recognized.id)
    assert stored.image_path == "snaps/obama3.jpg"
    assert stored.metadata["matched_face_id"] in [r.face.id for r in enrolled.results]
    assert (stored.metadata["track_id"], stored.metadata["parent_track_id"]) == ("face", "body")
    assert isinstance(stored.metadata["processing_time_ms"], int)
    assert len(stored.metadata["landmarks"]) == 5


async def test_a_calibrated_1n_threshold_above_a_match_leaves_the_face_unnamed(
        ingest, node, events, channel, admin, app, camera, model_version, photos, real_faces):
    """The gallery's 1:N threshold (vigil models calibrate) is applied at once: a face that matches
    an enrolled person at the 1:1 threshold but not at the calibrated one is a stranger, and
    SearchFaces reports the threshold it named persons at."""
    persons = person_pb2_grpc.PersonServiceStub(channel)
    calibrated = (await persons.CreatePerson(person_pb2.CreatePersonRequest(person=person_pb2.Person(
        name="Calibrated Obama", status=common_pb2.PERSON_STATUS_KNOWN)), metadata=admin)).person.id
    await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=calibrated, model_version=model_version,
        images=[person_pb2.EnrollImage(image=photos["obama"].read_bytes())]), metadata=admin)
    face = best_face(real_faces["obama3"], model_version)
    await accepted(ingest, node, batch(camera.id, [face_track("before", face)]))
    before = (await camera_events(events, camera, admin))["before"]
    assert before.person_id  # named at the 1:1 threshold (by this or another test's enrolment)

    async with database(app) as conn:
        await ModelVersionRepository(conn).set_identification(
            model_version, Calibration(min(0.9999, before.similarity + 0.02), {"fpir": 0.001}), by="test")
    try:
        await accepted(ingest, node, batch(camera.id, [face_track("after", face, second=30)]))
        after = (await camera_events(events, camera, admin))["after"]
        assert after.event_type == common_pb2.EVENT_TYPE_FACE_DETECTED and not after.person_id and after.cluster_id
        searched = await persons.SearchFaces(person_pb2.SearchFacesRequest(
            image=photos["obama3"].read_bytes(), model_version=model_version), metadata=admin)
        assert searched.match_threshold == pytest.approx(min(0.9999, before.similarity + 0.02), abs=1e-4)
        assert searched.matches and all(m.above_threshold == (m.similarity >= searched.match_threshold)
                                        for m in searched.matches)
    finally:
        async with database(app) as conn:
            await conn.execute("UPDATE model_versions SET identification_threshold = NULL,"
                               " identification_calibration = '{}' WHERE version_string = %s", (model_version,))


async def test_an_unknown_face_seen_twice_is_one_cluster(ingest, node, events, channel, admin, app, camera,
                                                         model_version, real_faces):
    first = best_face(real_faces["biden"], model_version, quality=0.6)
    again = best_face(real_faces["biden_small"], model_version, quality=0.5)
    await accepted(ingest, node, batch(camera.id, [face_track("visit-1", first)]))
    await accepted(ingest, node, batch(camera.id, [face_track("visit-2", again, second=30)]))

    found = await camera_events(events, camera, admin)
    one, two = found["visit-1"], found["visit-2"]
    assert one.event_type == two.event_type == common_pb2.EVENT_TYPE_FACE_DETECTED
    assert one.cluster_id and one.cluster_id == two.cluster_id and not one.person_id
    persons = person_pb2_grpc.PersonServiceStub(channel)
    cluster = (await persons.GetUnknownCluster(person_pb2.GetUnknownClusterRequest(id=one.cluster_id),
                                               metadata=admin)).cluster
    assert re.fullmatch(r"Unknown-\d{3,}", cluster.label), cluster.label
    assert (cluster.status, cluster.sample_count, cluster.event_count) == (person_pb2.CLUSTER_STATUS_ACTIVE, 2, 2)
    assert list(cluster.camera_ids) == [str(camera.id)] and cluster.person_id == ""  # a placeholder holds the faces
    assert cluster.representative_quality == pytest.approx(0.6)

    # identified by an operator, the stranger's next face is recognised as that person
    named = await persons.AssignClusterToPerson(person_pb2.AssignClusterToPersonRequest(
        cluster_id=one.cluster_id, new_person=person_pb2.Person(name="Joe Biden")), metadata=admin)
    third = best_face(real_faces["biden_small"], model_version)
    await accepted(ingest, node, batch(camera.id, [face_track("visit-3", third, second=60)]))
    assert (await camera_events(events, camera, admin))["visit-3"].person_id == named.person.id


async def test_strangers_in_one_batch_share_a_new_cluster_and_others_get_their_own(
        ingest, node, events, admin, camera, model_version, real_faces):
    await accepted(ingest, node, batch(camera.id, [
        face_track("a", best_face(real_faces["biden"], model_version)),
        face_track("b", best_face(real_faces["biden_small"], model_version)),
        face_track("c", best_face(real_faces["obama3"], model_version)),
    ]))
    found = await camera_events(events, camera, admin)
    assert found["a"].cluster_id == found["b"].cluster_id != found["c"].cluster_id
    assert all(uuid.UUID(found[t].cluster_id) for t in "abc")
