"""Vehicles end to end through the real API: a vehicle track's one object_detected event with its
label (listed, filtered, fetched, on the feed), the updates ingest refuses, a zone analytic watching
trucks, and rules on the object's class and label."""

from __future__ import annotations

import asyncio
import hashlib

from psycopg.types.json import Jsonb

from tests.fixtures.control import database
from tests.ingest.builders import accepted, batch, best_face, face_track, person, publish, quiet, read_events, vehicle
from tests.storage.builders import count
from vigil.api.v1 import common_pb2, event_pb2_grpc
from vigil.api.v1 import event_pb2 as event_pb
from vigil.api.v1 import ingest_pb2 as pb
from vigil.storage.repositories.alerts import AlertRuleRepository, AnalyticsConfigRepository

LOADING_BAY = [{"x": 0.0, "y": 0.4}, {"x": 0.5, "y": 0.4}, {"x": 0.5, "y": 1.0}, {"x": 0.0, "y": 1.0}]


def listing(camera, **filters) -> event_pb.ListEventsRequest:
    return event_pb.ListEventsRequest(camera_ids=[str(camera.id)], **filters)


async def test_a_vehicle_track_makes_one_event_with_its_label(ingest, node, events, app, camera, as_role):
    snapshot = vehicle("v1", "truck", frame=7)
    snapshot.snapshot.CopyFrom(pb.Snapshot(key=f"{camera.id}/2026/12/08/v1-7-vehicle.jpg",
                                           sha256=hashlib.sha256(b"jpeg").hexdigest(), size_bytes=4))
    await accepted(ingest, node,
                   batch(camera.id, [snapshot, person("p1", frame=7)], sequence=1),
                   batch(camera.id, [vehicle("v1", "truck", pb.TRACK_UPDATE_KIND_UPDATE, second=1, frame=32)],
                         sequence=2),
                   batch(camera.id, [vehicle("v1", "truck", pb.TRACK_UPDATE_KIND_END, second=2, frame=57)], sequence=3))
    viewer = as_role("viewer")
    every = (await events.ListEvents(listing(camera), metadata=viewer)).events
    assert sorted((e.track_id, e.event_type, e.object_class, e.object_label) for e in every) == [
        ("p1", common_pb2.EVENT_TYPE_HUMAN_DETECTED, pb.OBJECT_CLASS_PERSON, ""),
        ("v1", common_pb2.EVENT_TYPE_OBJECT_DETECTED, pb.OBJECT_CLASS_VEHICLE, "truck")]
    (truck,) = (await events.ListEvents(listing(camera, object_classes=[pb.OBJECT_CLASS_VEHICLE]),
                                        metadata=viewer)).events
    assert (truck.frame_number, truck.snapshot_media_id != "") == (7, True)  # its first observation, its snapshot
    assert (await events.GetEvent(event_pb.GetEventRequest(id=truck.id), metadata=viewer)).event == truck
    by_label = await events.ListEvents(listing(camera, object_labels=["truck", "bus"]), metadata=viewer)
    assert [e.id for e in by_label.events] == [truck.id]
    assert not (await events.ListEvents(listing(camera, object_labels=["car"]), metadata=viewer)).events
    persons = await events.ListEvents(listing(camera, object_classes=[pb.OBJECT_CLASS_PERSON]), metadata=viewer)
    assert [e.track_id for e in persons.events] == ["p1"]
    async with database(app) as conn:
        assert await count(conn, "SELECT count(*) FROM track_events WHERE camera_id = %s AND kind = 'vehicle'",
                           (camera.id,)) == 1


async def test_a_vehicles_event_follows_the_label_its_track_settles_on(ingest, node, events, camera, as_role):
    viewer = as_role("viewer")
    feed = events.Subscribe(event_pb.SubscribeRequest(camera_ids=[str(camera.id)]), metadata=viewer)
    assert (await feed.read()).WhichOneof("item") == "keepalive"
    update = pb.TRACK_UPDATE_KIND_UPDATE
    await accepted(ingest, node, batch(camera.id, [vehicle("v", "car")], sequence=1),
                   batch(camera.id, [vehicle("v", "car", update, second=0.5), vehicle("v", "truck", update, second=1)],
                         sequence=2),
                   batch(camera.id, [vehicle("v", "truck", update, second=1.5)], sequence=3))  # nothing new
    first, relabelled = await read_events(feed, 2)
    assert (first.event.object_label, relabelled.event.object_label) == ("car", "truck")
    assert (relabelled.event.id, relabelled.event.event_time) == (first.event.id, first.event.event_time)
    (listed,) = (await events.ListEvents(listing(camera), metadata=viewer)).events
    assert listed.object_label == "truck"

    # an operator's verdict on the event stands
    await events.ReviewEvent(event_pb.ReviewEventRequest(id=listed.id, action=event_pb.REVIEW_ACTION_CONFIRM),
                             metadata=as_role("operator"))
    await accepted(ingest, node, batch(camera.id, [vehicle("v", "bus", update, second=2)], sequence=4))
    assert not await quiet(feed, 1.0)  # neither the unchanged label (batch 3) nor the reviewed event
    feed.cancel()
    (reviewed,) = (await events.ListEvents(listing(camera), metadata=viewer)).events
    assert (reviewed.object_label, reviewed.reviewed) == ("truck", True)


async def test_bad_vehicle_updates_are_rejected_naming_the_field(ingest, node, app, camera, model_version,
                                                                 real_faces):
    face = best_face(real_faces["biden"], model_version)
    with_face = vehicle("v")
    with_face.best_face.CopyFrom(face)
    with_parent = vehicle("v")
    with_parent.parent_track_id = "p"
    cases = [
        (batch(camera.id, [vehicle("v", label="")]), "batch.updates[0].label: must be one of bicycle, bus, car"),
        (batch(camera.id, [vehicle("v", label="boat" * 40)]), "batch.updates[0].label: must be one of"),
        (batch(camera.id, [person("ok"), vehicle("v", label="Car")]), "batch.updates[1].label:"),
        (batch(camera.id, [pb.TrackUpdate(track_id="p", kind=pb.TRACK_UPDATE_KIND_START,
                                          object_class=pb.OBJECT_CLASS_PERSON, box=person("p").box, confidence=0.9,
                                          capture_time=person("p").capture_time, label="car")]),
         "batch.updates[0].label: must be empty or 'person' on a PERSON track"),
        (batch(camera.id, [with_face]), "batch.updates[0].best_face: is only allowed on FACE and PERSON tracks"),
        (batch(camera.id, [with_parent]), "batch.updates[0].parent_track_id: is only allowed on FACE tracks"),
        (batch(camera.id, [vehicle("v9"), face_track("f", face, parent="v9")]),
         "batch.updates[1].parent_track_id: track 'v9' is a VEHICLE track"),
    ]
    acks = await publish(ingest, node, *(request for request, _ in cases))
    for (_, error), ack in zip(cases, acks):
        assert ack.status == pb.PUBLISH_STATUS_REJECTED and ack.error.startswith(error), (error, ack)
        assert len(ack.error) < 200  # an excerpt of the value, not the value
    # a vehicle of an earlier batch is no face's parent either
    await accepted(ingest, node, batch(camera.id, [vehicle("v8")], sequence=50))
    (late,) = await publish(ingest, node, batch(camera.id, [face_track("f", face, parent="v8")], sequence=51))
    assert late.status == pb.PUBLISH_STATUS_REJECTED
    assert late.error.startswith("batch.updates[0].parent_track_id: track 'v8' is a VEHICLE track"), late
    async with database(app) as conn:
        assert await count(conn, "SELECT count(*) FROM events WHERE camera_id = %s", (camera.id,)) == 1  # v8


async def test_the_feed_filters_by_object_class_and_label(ingest, node, events, camera, as_role):
    viewer = as_role("viewer")

    async def subscribed(**filters):
        call = events.Subscribe(event_pb.SubscribeRequest(camera_ids=[str(camera.id)], **filters), metadata=viewer)
        assert (await call.read()).WhichOneof("item") == "keepalive"
        return call

    vehicles = await subscribed(object_classes=[pb.OBJECT_CLASS_VEHICLE])
    trucks = await subscribed(object_labels=["truck"])
    await accepted(ingest, node, batch(camera.id, [person("walker"), vehicle("car", "car"),
                                                   vehicle("lorry", "truck")]))
    assert sorted(m.event.track_id for m in await read_events(vehicles, 2)) == ["car", "lorry"]
    (truck,) = await read_events(trucks, 1)
    assert (truck.event.track_id, truck.event.object_label) == ("lorry", "truck")
    assert not await quiet(vehicles, 1.0) and not await quiet(trucks, 0.5)
    vehicles.cancel()
    trucks.cancel()


async def test_a_truck_stopped_in_the_loading_bay_raises_its_rules_alert(app, channel, ingest, admin, camera):
    async with database(app) as conn:
        cur = await conn.execute("INSERT INTO camera_zones (camera_id, name, zone_type, polygon_points)"
                                 " VALUES (%s, 'loading bay', 'interest', %s) RETURNING id",
                                 (camera.id, Jsonb(LOADING_BAY)))
        zone_id = (await cur.fetchone())["id"]
        await AnalyticsConfigRepository(conn).create(
            "truck stopped", camera.id, "loitering", None, zone_id=zone_id, analytic="loitering@2",
            parameters={"objects": ["truck"], "min_duration": 2})
        rules = AlertRuleRepository(conn)
        stopped = await rules.create("truck in the bay", None, camera_id=camera.id, activity_type="loitering",
                                     object_class="vehicle", object_label="truck", confidence_threshold=0.3)
        cars = await rules.create("car seen", None, camera_id=camera.id, event_type="object_detected",
                                  object_class="vehicle", object_label="car", confidence_threshold=0.3)
        loiterers = await rules.create("person loitering", None, camera_id=camera.id, activity_type="loitering",
                                       object_class="person", confidence_threshold=0.3)
    feed_stub = event_pb2_grpc.EventServiceStub(channel)
    alerts = feed_stub.Subscribe(event_pb.SubscribeRequest(
        camera_ids=[str(camera.id)], kinds=[event_pb.FEED_ITEM_KIND_ALERT],
        object_classes=[pb.OBJECT_CLASS_VEHICLE]), metadata=admin)
    assert (await alerts.read()).WhichOneof("item") == "keepalive"

    # a truck and a car stand in the bay for 3 s (updates every 0.5 s); the car is not watched
    kinds = [pb.TRACK_UPDATE_KIND_START] + [pb.TRACK_UPDATE_KIND_UPDATE] * 6
    await accepted(ingest, admin, *(batch(camera.id, [vehicle("truck", "truck", kind, second=i / 2, frame=i),
                                                      vehicle("car", "car", kind, second=i / 2, frame=i,
                                                              feet=(0.3, 0.8))], sequence=i + 1)
                                    for i, kind in enumerate(kinds)))
    raised = []
    async with asyncio.timeout(20):  # rules other tests left may fire too
        while len(raised) < 2:
            response = await alerts.read()
            if response.WhichOneof("item") == "alert" and response.alert.alert_rule_id in {str(stopped.id),
                                                                                            str(cars.id)}:
                raised.append(response.alert)
    alerts.cancel()
    by_rule = {a.alert_rule_id: a for a in raised}
    assert by_rule[str(cars.id)].message.startswith("A car detected on camera")
    truck_alert = by_rule[str(stopped.id)]
    assert truck_alert.trigger.track_id == "truck" and truck_alert.message.startswith("Loitering by a truck")

    listed = await feed_stub.ListSuspiciousActivities(event_pb.ListSuspiciousActivitiesRequest(
        camera_ids=[str(camera.id)], object_classes=[pb.OBJECT_CLASS_VEHICLE]), metadata=admin)
    (activity,) = listed.suspicious_activities
    assert (activity.activity_type, list(activity.details.track_ids)) == (
        common_pb2.ACTIVITY_TYPE_LOITERING, ["truck"])
    assert (activity.details.object_class, activity.details.object_label) == (pb.OBJECT_CLASS_VEHICLE, "truck")
    assert activity.details.duration.seconds == 2
    persons_only = await feed_stub.ListSuspiciousActivities(event_pb.ListSuspiciousActivitiesRequest(
        camera_ids=[str(camera.id)], object_classes=[pb.OBJECT_CLASS_PERSON]), metadata=admin)
    assert not persons_only.suspicious_activities
    async with database(app) as conn:
        assert await count(conn, "SELECT count(*) FROM alerts WHERE alert_rule_id = %s", (loiterers.id,)) == 0
        clause = await (await conn.execute("SELECT trigger_clause::text AS clause FROM alerts WHERE alert_rule_id = %s",
                                           (stopped.id,))).fetchone()
        assert clause["clause"] == "object"

