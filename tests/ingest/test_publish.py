"""IngestService.Publish through the real gRPC API: acks, idempotent replays after a dropped
connection, rejections that name the field and keep the stream open, one event per track."""

from __future__ import annotations

import uuid

import grpc
import psycopg
import pytest

from tests.fixtures.control import database
from tests.ingest.builders import accepted, batch, best_face, face_track, person, publish
from tests.storage.builders import count
from vigil.api.v1 import common_pb2, ingest_pb2_grpc
from vigil.api.v1 import event_pb2 as event_pb
from vigil.api.v1 import ingest_pb2 as pb


async def stored(app, query: str, params=()) -> int:
    async with database(app) as conn:
        return await count(conn, query, params)


async def test_a_batch_replayed_after_a_dropped_connection_stores_nothing_twice(
        ingest, node, app, camera, control, model_version, real_faces):
    face = best_face(real_faces["biden"], model_version)
    first = batch(camera.id, [person("p1"), face_track("f1", face)], sequence=1)
    second = batch(camera.id, [person("p1", pb.TRACK_UPDATE_KIND_UPDATE, second=1), person("p2", second=1)],
                   sequence=2)

    call = ingest.Publish(metadata=node)
    await call.write(first)
    await call.write(second)
    acks = [await call.read(), await call.read()]
    assert [(a.sequence, a.status, a.duplicate) for a in acks] == [
        (1, pb.PUBLISH_STATUS_ACCEPTED, False), (2, pb.PUBLISH_STATUS_ACCEPTED, False)]
    call.cancel()  # the connection drops; the node cannot know which acks were lost

    address, _ = control
    async with grpc.aio.insecure_channel(address) as reconnected:  # a new connection resends its spool
        replay = await publish(ingest_pb2_grpc.IngestServiceStub(reconnected), node, first, second)
    assert [(a.sequence, a.status, a.duplicate) for a in replay] == [
        (1, pb.PUBLISH_STATUS_ACCEPTED, True), (2, pb.PUBLISH_STATUS_ACCEPTED, True)]

    events = await stored(app, "SELECT count(*) FROM events WHERE camera_id = %s", (camera.id,))
    assert events == 3  # human p1, human p2, face f1
    assert await stored(app, "SELECT count(*) FROM ingest_batches WHERE camera_id = %s", (camera.id,)) == 2
    assert await stored(app, "SELECT count(*) FROM person_clusters c JOIN events e ON e.cluster_id = c.id"
                             " WHERE e.camera_id = %s", (camera.id,)) == 1


async def test_one_event_per_person_track_over_its_life(ingest, node, events, camera, as_role):
    await accepted(ingest, node,
                   batch(camera.id, [person("walker", frame=10, confidence=0.7)], sequence=1),
                   batch(camera.id, [person("walker", pb.TRACK_UPDATE_KIND_UPDATE, second=1, frame=35)], sequence=2),
                   batch(camera.id, [person("walker", pb.TRACK_UPDATE_KIND_END, second=2, frame=60),
                                     person("late", pb.TRACK_UPDATE_KIND_UPDATE, second=2)], sequence=3))
    listed = await events.ListEvents(event_pb.ListEventsRequest(camera_ids=[str(camera.id)]),
                                     metadata=as_role("viewer"))
    by_track = {e.track_id: e for e in listed.events}
    assert sorted(by_track) == ["late", "walker"] and len(listed.events) == 2
    walker = by_track["walker"]
    assert (walker.event_type, walker.frame_number, round(walker.confidence, 3)) == \
        (common_pb2.EVENT_TYPE_HUMAN_DETECTED, 10, 0.7)  # the track's first observation
    assert (walker.frame_width, walker.frame_height) == (1920, 1080)
    assert (round(walker.box.x, 4), round(walker.box.height, 4)) == (0.1, 0.5)  # normalised again


async def test_a_better_face_updates_the_event_and_a_worse_one_changes_nothing(
        ingest, node, events, camera, model_version, real_faces, as_role):
    face = real_faces["biden"]
    await accepted(ingest, node, batch(camera.id, [face_track("f", best_face(face, model_version, quality=0.4,
                                                                             snapshot_key="snaps/a.jpg"))]))
    viewer = as_role("viewer")
    (first,) = (await events.ListEvents(event_pb.ListEventsRequest(camera_ids=[str(camera.id)]),
                                        metadata=viewer)).events
    assert (first.event_type, first.face_quality, first.model_version) == \
        (common_pb2.EVENT_TYPE_FACE_DETECTED, pytest.approx(0.4), model_version)

    better = best_face(face, model_version, quality=0.9, snapshot_key="snaps/b.jpg", frame=42, second=1)
    worse = best_face(face, model_version, quality=0.2, snapshot_key="snaps/c.jpg")
    await accepted(ingest, node, batch(camera.id, [face_track("f", better, pb.TRACK_UPDATE_KIND_UPDATE, second=1)]),
                   batch(camera.id, [face_track("f", worse, pb.TRACK_UPDATE_KIND_UPDATE, second=2)]))
    (updated,) = (await events.ListEvents(event_pb.ListEventsRequest(camera_ids=[str(camera.id)]),
                                          metadata=viewer)).events
    assert (updated.id, updated.event_time) == (first.id, first.event_time)  # the same event
    assert (updated.face_quality, updated.frame_number, updated.cluster_id) == \
        (pytest.approx(0.9), 42, first.cluster_id)


async def test_bad_batches_are_rejected_naming_the_field_and_the_stream_stays_open(
        ingest, node, app, camera, model_version, real_faces):
    good_face = best_face(real_faces["biden"], model_version)
    short = best_face(real_faces["biden"], model_version)
    del short.embedding[-1]
    nan = best_face(real_faces["biden"], model_version)
    nan.embedding[3] = float("nan")
    unknown_model = best_face(real_faces["biden"], f"no-such-model-{uuid.uuid4().hex[:6]}")
    wide = person("p")
    wide.box.x, wide.box.width = 0.9, 0.2
    cases = [
        (pb.PublishRequest(), "batch: is required"),
        (batch(camera.id, []), "batch.updates:"),
        (batch(camera.id, [person("p")], sequence=0), "batch.sequence:"),
        (batch(uuid.uuid4(), [person("p")]), "batch.camera_id:"),
        (batch("cam-1", [person("p")]), "batch.camera_id:"),
        (batch(camera.id, [person("p")], key="bad\nkey"), "batch.idempotency_key:"),
        (batch(camera.id, [person("ok"), wide]), "batch.updates[1].box.width:"),
        (batch(camera.id, [person("p", pb.TRACK_UPDATE_KIND_UNSPECIFIED)]), "batch.updates[0].kind:"),
        (batch(camera.id, [person("p", confidence=1.5)]), "batch.updates[0].confidence:"),
        (batch(camera.id, [face_track("f", short)]), "batch.updates[0].best_face.embedding:"),
        (batch(camera.id, [face_track("f", nan)]), "batch.updates[0].best_face.embedding:"),
        (batch(camera.id, [face_track("f", unknown_model)]), "batch.updates[0].best_face.model_version:"),
        (batch(camera.id, [person("x"), face_track("x", good_face)]), "batch.updates[1].object_class:"),
    ]
    good = batch(camera.id, [person("p"), face_track("f", good_face)], sequence=100)
    acks = await publish(ingest, node, *(request for request, _ in cases), good)
    for (request, field), ack in zip(cases, acks):
        assert ack.status == pb.PUBLISH_STATUS_REJECTED and ack.error.startswith(field), (field, ack)
        assert ack.sequence == request.batch.sequence
    assert (acks[-1].sequence, acks[-1].status) == (100, pb.PUBLISH_STATUS_ACCEPTED)  # the stream stayed open
    assert await stored(app, "SELECT count(*) FROM events WHERE camera_id = %s", (camera.id,)) == 2
    assert await stored(app, "SELECT count(*) FROM ingest_batches WHERE camera_id = %s", (camera.id,)) == 1


async def test_publish_needs_the_ingest_permission(ingest, as_role, camera):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await publish(ingest, as_role("operator"), batch(camera.id, [person("p")]))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_idempotency_keys_are_kept_seven_days_then_purged(db, camera):
    keys = {age: f"retention-{age}-{uuid.uuid4().hex}" for age in (6, 9)}
    for age, key in keys.items():
        db.execute("INSERT INTO ingest_batches (idempotency_key, node_id, camera_id, sequence, update_count,"
                   " received_at) VALUES (%s, %s, %s, 1, 1, now() - make_interval(days => %s))",
                   (key, uuid.uuid4(), camera.id, age))
    purged = dict(db.execute("SELECT table_name, deleted FROM fn_purge_ingest_state()").fetchall())
    assert purged["ingest_batches"] >= 1 and "track_events" in purged
    left = {r[0] for r in db.execute("SELECT idempotency_key FROM ingest_batches WHERE idempotency_key = ANY(%s)",
                                     (list(keys.values()),)).fetchall()}
    assert left == {keys[6]}
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="at least 7 days"):
        db.execute("SELECT * FROM fn_purge_ingest_state(interval '1 day')")
