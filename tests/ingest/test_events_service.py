"""EventService's history through the real gRPC API: ListEvents filters and pages, GetEvent,
ReviewEvent, suspicious activities and the dashboard figures."""

from __future__ import annotations

import uuid
from datetime import timedelta

import grpc
import pytest
from psycopg.types.json import Jsonb

from tests.fixtures.control import database
from tests.ingest.builders import T0, accepted, at, batch, best_face, face_track, person
from tests.storage.builders import count
from vigil.api.v1 import common_pb2, ingest_pb2, person_pb2, person_pb2_grpc
from vigil.api.v1 import event_pb2 as pb


async def refused(call, request, metadata) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request, metadata=metadata)
    return err.value


async def test_list_events_filters_and_pages(ingest, node, events, camera, model_version, real_faces, as_role):
    await accepted(ingest, node, batch(camera.id, [
        person("p1"), person("p2", second=10), person("p3", second=20),
        face_track("f1", best_face(real_faces["biden"], model_version, second=5), second=5)]))
    viewer = as_role("viewer")
    mine = [str(camera.id)]

    seen, token = [], ""
    while True:
        page = await events.ListEvents(pb.ListEventsRequest(camera_ids=mine, page_size=3, page_token=token),
                                       metadata=viewer)
        seen += page.events
        if not (token := page.next_page_token):
            break
    assert [e.track_id for e in seen] == ["p3", "p2", "f1", "p1"]  # newest first
    again = pb.ListEventsRequest(camera_ids=mine, page_size=3,
                                 page_token=(await events.ListEvents(pb.ListEventsRequest(
                                     camera_ids=mine, page_size=3), metadata=viewer)).next_page_token,
                                 event_types=[common_pb2.EVENT_TYPE_HUMAN_DETECTED])
    assert (await refused(events.ListEvents, again, viewer)).details().startswith("page_token")

    def listed(**filters):
        return events.ListEvents(pb.ListEventsRequest(camera_ids=mine, **filters), metadata=viewer)

    faces = (await listed(event_types=[common_pb2.EVENT_TYPE_FACE_DETECTED])).events
    assert [e.track_id for e in faces] == ["f1"]
    assert [e.track_id for e in (await listed(cluster_ids=[faces[0].cluster_id])).events] == ["f1"]
    assert len((await listed(event_types=[common_pb2.EVENT_TYPE_UNSPECIFIED])).events) == 4  # "any"
    assert len((await listed(site_ids=[str(camera.site_id)], reviewed=False)).events) == 4
    window = common_pb2.TimeRange(start_time=at(5), end_time=at(20))
    assert [e.track_id for e in (await listed(time_range=window)).events] == ["p2", "f1"]
    assert (await listed(site_ids=[str(uuid.uuid4())])).events == []
    for request, field in [(pb.ListEventsRequest(camera_ids=["nope"]), "camera_ids[0]"),
                           (pb.ListEventsRequest(event_types=[42]), "event_types[0]"),
                           (pb.ListEventsRequest(page_size=-1), "page_size")]:
        err = await refused(events.ListEvents, request, viewer)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith(field), err.details()


async def test_get_and_review_events(ingest, node, events, channel, app, camera, as_role, admin):
    await accepted(ingest, node, batch(camera.id, [person("a"), person("b"), person("c")]))
    viewer, operator = as_role("viewer"), as_role("operator")
    by_track = {e.track_id: e for e in (await events.ListEvents(
        pb.ListEventsRequest(camera_ids=[str(camera.id)]), metadata=viewer)).events}
    got = (await events.GetEvent(pb.GetEventRequest(id=by_track["a"].id), metadata=viewer)).event
    assert got == by_track["a"]
    assert (await refused(events.GetEvent, pb.GetEventRequest(id=str(uuid.uuid4())), viewer)).code() == \
        grpc.StatusCode.NOT_FOUND

    confirmed = (await events.ReviewEvent(pb.ReviewEventRequest(
        id=by_track["a"].id, action=pb.REVIEW_ACTION_CONFIRM, note="looks right"), metadata=operator)).event
    assert (confirmed.reviewed, confirmed.review_action) == (True, pb.REVIEW_ACTION_CONFIRM)

    persons = person_pb2_grpc.PersonServiceStub(channel)
    someone = (await persons.CreatePerson(person_pb2.CreatePersonRequest(person=person_pb2.Person(
        name="Someone")), metadata=admin)).person.id
    corrected = (await events.ReviewEvent(pb.ReviewEventRequest(
        id=by_track["b"].id, action=pb.REVIEW_ACTION_CORRECT_NAME, person_id=someone), metadata=operator)).event
    assert (corrected.person_id, corrected.review_action) == (someone, pb.REVIEW_ACTION_CORRECT_NAME)

    delete = pb.ReviewEventRequest(id=by_track["c"].id, action=pb.REVIEW_ACTION_DELETE)
    assert (await refused(events.ReviewEvent, delete, operator)).code() == grpc.StatusCode.PERMISSION_DENIED
    assert not (await events.ReviewEvent(delete, metadata=as_role("super_admin"))).HasField("event")  # events:delete
    assert (await refused(events.GetEvent, pb.GetEventRequest(id=by_track["c"].id), viewer)).code() == \
        grpc.StatusCode.NOT_FOUND
    async with database(app) as conn:
        assert await count(conn, "SELECT count(*) FROM review_actions WHERE event_id = ANY(%s)",
                           ([uuid.UUID(by_track[t].id) for t in "abc"],)) == 3
        assert await count(conn, "SELECT count(*) FROM audit_logs WHERE action = 'event.review'"
                                 " AND resource_id = %s", (uuid.UUID(by_track["b"].id),)) == 1

    a = by_track["a"].id
    for request, code, field in [
        (pb.ReviewEventRequest(id=a, action=pb.REVIEW_ACTION_MERGE), grpc.StatusCode.INVALID_ARGUMENT, "action"),
        (pb.ReviewEventRequest(id=a), grpc.StatusCode.INVALID_ARGUMENT, "action"),
        (pb.ReviewEventRequest(id=a, action=pb.REVIEW_ACTION_CORRECT_NAME), grpc.StatusCode.INVALID_ARGUMENT,
         "person_id"),
        (pb.ReviewEventRequest(id=a, action=pb.REVIEW_ACTION_CONFIRM, person_id=someone),
         grpc.StatusCode.INVALID_ARGUMENT, "person_id"),
        (pb.ReviewEventRequest(id=a, action=pb.REVIEW_ACTION_CONFIRM, note="n" * 2001),
         grpc.StatusCode.INVALID_ARGUMENT, "note"),
        (pb.ReviewEventRequest(id=a, action=pb.REVIEW_ACTION_CORRECT_NAME, person_id=str(uuid.uuid4())),
         grpc.StatusCode.NOT_FOUND, ""),
        (pb.ReviewEventRequest(id=str(uuid.uuid4()), action=pb.REVIEW_ACTION_CONFIRM), grpc.StatusCode.NOT_FOUND, ""),
    ]:
        err = await refused(events.ReviewEvent, request, operator)
        assert err.code() == code and err.details().startswith(field), err.details()
    assert (await refused(events.ReviewEvent, pb.ReviewEventRequest(id=a, action=pb.REVIEW_ACTION_CONFIRM),
                          viewer)).code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_reviewed_face_event_keeps_the_operators_verdict(ingest, node, events, channel, admin, camera,
                                                                 model_version, real_faces, as_role):
    face = real_faces["biden"]
    await accepted(ingest, node, batch(camera.id, [face_track("f", best_face(face, model_version, quality=0.3))]))
    (event,) = (await events.ListEvents(pb.ListEventsRequest(camera_ids=[str(camera.id)]), metadata=admin)).events
    persons = person_pb2_grpc.PersonServiceStub(channel)
    named = (await persons.CreatePerson(person_pb2.CreatePersonRequest(person=person_pb2.Person(name="Named")),
                                        metadata=admin)).person.id
    await events.ReviewEvent(pb.ReviewEventRequest(id=event.id, action=pb.REVIEW_ACTION_CORRECT_NAME,
                                                   person_id=named), metadata=as_role("operator"))
    better = best_face(face, model_version, quality=0.9, second=1)
    await accepted(ingest, node, batch(camera.id, [face_track("f", better, ingest_pb2.TRACK_UPDATE_KIND_UPDATE)]))
    after = (await events.GetEvent(pb.GetEventRequest(id=event.id), metadata=admin)).event
    assert (after.person_id, after.face_quality) == (named, pytest.approx(0.3))


async def test_suspicious_activities_are_listed_with_their_details(events, app, camera, as_role):
    details = {"duration_seconds": 95.5, "location": {"x": 0.4, "y": 0.8}, "track_ids": ["t-7"],
               "person_ids": [], "config_id": str(uuid.uuid4())}
    async with database(app) as conn:
        cur = await conn.execute(
            "INSERT INTO suspicious_activity_events (camera_id, activity_type, confidence, severity, details,"
            " timestamp) VALUES (%s, 'loitering', 0.8, 'high', %s, %s), (%s, 'crowding', 0.6, 'low', '{}', %s)"
            " RETURNING id", (camera.id, Jsonb(details), T0, camera.id, T0 + timedelta(seconds=1)))
        loitering_id = (await cur.fetchone())["id"]
    viewer = as_role("viewer")
    listed = await events.ListSuspiciousActivities(pb.ListSuspiciousActivitiesRequest(
        camera_ids=[str(camera.id)], severities=[common_pb2.SEVERITY_HIGH]), metadata=viewer)
    (activity,) = listed.suspicious_activities
    assert (activity.id, activity.activity_type, activity.severity, activity.site_id) == (
        str(loitering_id), common_pb2.ACTIVITY_TYPE_LOITERING, common_pb2.SEVERITY_HIGH, str(camera.site_id))
    assert (activity.details.duration.seconds, activity.details.duration.nanos) == (95, 500_000_000)
    assert (round(activity.details.location.x, 3), list(activity.details.track_ids)) == (0.4, ["t-7"])
    assert activity.analytics_config_id == details["config_id"]
    both = await events.ListSuspiciousActivities(pb.ListSuspiciousActivitiesRequest(
        camera_ids=[str(camera.id)]), metadata=viewer)
    assert [a.activity_type for a in both.suspicious_activities] == [common_pb2.ACTIVITY_TYPE_CROWDING,
                                                                    common_pb2.ACTIVITY_TYPE_LOITERING]
    got = await events.GetSuspiciousActivity(pb.GetSuspiciousActivityRequest(id=str(loitering_id)), metadata=viewer)
    assert got.suspicious_activity == activity


async def test_dashboard_stats_are_the_views_figures(events, db, as_role):
    stats = (await events.GetDashboardStats(pb.GetDashboardStatsRequest(), metadata=as_role("viewer"))).stats
    row = db.execute("SELECT * FROM vw_dashboard_stats").fetchone()
    columns = [c.name for c in db.execute("SELECT * FROM vw_dashboard_stats LIMIT 0").description]
    expected = dict(zip(columns, row))
    for name, value in expected.items():
        if value is None:
            assert not stats.HasField(name), name
        else:
            assert getattr(stats, name) == pytest.approx(float(value)), name
    assert stats.compute_time.seconds > 0
