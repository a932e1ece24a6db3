"""End to end through the real API: a blacklisted person on a watchlist walks into a restricted
zone. Ingest stores the events, the analytics raise an intrusion, two rules fire (by watchlist and
by activity), the webhook receives both alerts signed, the feed carries them, and a replayed batch
or a repeat within the cooldown raises nothing more. An alert is followed on a second replica's
feed from creation to resolution (AlertUpdate), and intrusions of one episode make one alert."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from datetime import timedelta

import pytest
from psycopg.types.json import Jsonb

from tests.fixtures.control import control_replica, database
from tests.ingest.builders import accepted, batch, face_track, person
from tests.notifications.receivers import HttpReceiver
from vigil.api.v1 import (
    alert_pb2,
    alert_pb2_grpc,
    common_pb2,
    event_pb2,
    event_pb2_grpc,
    person_pb2,
    person_pb2_grpc,
)
from vigil.api.v1 import ingest_pb2 as pb
from vigil.storage.repositories.alerts import AlertRuleRepository, AnalyticsConfigRepository
from vigil.storage.repositories.channel_settings import WebhookSettings
from vigil.storage.repositories.notifications import ChannelRepository
from vigil.storage.repositories.watchlists import WatchlistRepository

SECRET = "whsec-" + uuid.uuid4().hex


@pytest.fixture
async def receiver():
    r = HttpReceiver()
    await r.start()
    yield r
    await r.stop()


async def test_watchlisted_intruder_raises_two_signed_alerts_once(
        app, channel, ingest, admin, camera, model_version, photos, receiver):
    persons = person_pb2_grpc.PersonServiceStub(channel)
    suspect = (await persons.CreatePerson(person_pb2.CreatePersonRequest(person=person_pb2.Person(
        name="Suspect", status=common_pb2.PERSON_STATUS_BLACKLISTED)), metadata=admin)).person
    enrolled = await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=suspect.id, model_version=model_version,
        images=[person_pb2.EnrollImage(image=photos["obama"].read_bytes())]), metadata=admin)
    assert enrolled.results[0].WhichOneof("result") == "face"

    async with database(app) as conn:
        polygon = Jsonb([{"x": 0.0, "y": 0.4}, {"x": 0.4, "y": 0.4}, {"x": 0.4, "y": 1.0}, {"x": 0.0, "y": 1.0}])
        cur = await conn.execute("INSERT INTO camera_zones (camera_id, name, zone_type, polygon_points)"
                                 " VALUES (%s, 'vault', 'restricted', %s) RETURNING id", (camera.id, polygon))
        zone_id = (await cur.fetchone())["id"]
        await AnalyticsConfigRepository(conn).create("vault intrusion", camera.id, "intrusion", None,
                                                     zone_id=zone_id, severity="high")
        webhook = await ChannelRepository(conn, app.secrets).create(
            f"soc-{uuid.uuid4().hex[:6]}", WebhookSettings(url=f"{receiver.url}/hook"), secret=SECRET)
        blacklist = await WatchlistRepository(conn).create(f"bl-{uuid.uuid4().hex[:6]}", "blacklist", None)
        await WatchlistRepository(conn).add_person(blacklist.id, suspect.id, None)
        rules = AlertRuleRepository(conn)
        by_watchlist = await rules.create("blacklist seen", None, camera_id=camera.id, watchlist_id=blacklist.id,
                                          confidence_threshold=0.3, notification_channel_ids=[webhook.id])
        by_activity = await rules.create("vault intrusion", None, camera_id=camera.id, activity_type="intrusion",
                                         confidence_threshold=0.3, notification_channel_ids=[webhook.id])

    feed = event_pb2_grpc.EventServiceStub(channel).Subscribe(
        event_pb2.SubscribeRequest(camera_ids=[str(camera.id)]), metadata=admin)

    from vigil.models.faces import FaceAnalyzer  # the node's side: the face as a pipeline would send it

    with FaceAnalyzer(app.endpoints) as analyzer:
        import cv2

        pixels = cv2.imread(str(photos["obama3"]))
        face = max(analyzer.detect(pixels), key=lambda f: f.box[2] * f.box[3])
        vector = analyzer.embed([analyzer.align(pixels, face.landmarks)])[0]
    sent_face = pb.BestFace(embedding=[float(v) for v in vector], model_version=model_version, quality=0.9,
                            confidence=0.95, box=common_pb2.BoundingBox(x=0.2, y=0.1, width=0.1, height=0.15))
    first = batch(camera.id, [person("p1", second=0), face_track("f1", sent_face, second=0, parent="p1")], sequence=1)
    await accepted(ingest, admin, first)

    posts = await receiver.wait_for("/hook", 2)
    for post in posts:
        signed = post.headers["X-Vigil-Timestamp"].encode() + b"." + post.body
        expected = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(post.headers["X-Vigil-Signature"], expected)

    async with database(app) as conn:
        alerts = await (await conn.execute(
            "SELECT alert_rule_id, severity::text AS severity, trigger_clause, person_id, suspicious_activity_id"
            " FROM alerts WHERE camera_id = %s AND alert_rule_id = ANY(%s) ORDER BY created_at",
            (camera.id, [by_watchlist.id, by_activity.id]))).fetchall()
        activities = await (await conn.execute(
            "SELECT activity_type::text AS t, details FROM suspicious_activity_events WHERE camera_id = %s",
            (camera.id,))).fetchall()
        events = await (await conn.execute(
            "SELECT event_type::text AS t, person_id FROM events WHERE camera_id = %s ORDER BY event_type",
            (camera.id,))).fetchall()
    assert [a["t"] for a in activities] == ["intrusion"]
    assert {e["t"] for e in events} == {"human_detected", "person_recognized"}
    assert any(e["t"] == "person_recognized" and str(e["person_id"]) == suspect.id for e in events)
    fired = {a["alert_rule_id"]: a for a in alerts}
    assert set(fired) == {by_watchlist.id, by_activity.id} and len(alerts) == 2, alerts
    assert fired[by_watchlist.id]["severity"] == "critical"  # default for a blacklisted person
    assert fired[by_watchlist.id]["trigger_clause"].lower() == "watchlist"
    assert fired[by_activity.id]["suspicious_activity_id"] is not None

    # the feed carried both alerts (rules of other tests that match any camera may add more)
    kinds = []
    import asyncio

    async with asyncio.timeout(20):
        while kinds.count("alert") < 2:
            response = await feed.read()
            kinds.append(response.WhichOneof("item"))
    feed.cancel()

    # a replay of the batch, and the same person again within the cooldown, raise nothing new
    acks = [a async for a in _acks(ingest, admin, first)]
    assert acks[0].duplicate
    await accepted(ingest, admin, batch(camera.id, [person("p1", pb.TRACK_UPDATE_KIND_UPDATE, second=2),
                                                    face_track("f1", sent_face, pb.TRACK_UPDATE_KIND_UPDATE,
                                                               second=2, parent="p1")], sequence=2))
    async with database(app) as conn:
        count = (await (await conn.execute(
            "SELECT count(*) AS n FROM alerts WHERE camera_id = %s AND alert_rule_id = ANY(%s)",
            (camera.id, [by_watchlist.id, by_activity.id]))).fetchone())["n"]
    assert count == 2


async def _acks(ingest, metadata, request):
    call = ingest.Publish(metadata=metadata)
    await call.write(request)
    yield await call.read()
    await call.done_writing()


async def next_item(call, kind: str, rule=None, timeout_s: float = 20.0) -> event_pb2.SubscribeResponse:
    """The next feed message of this kind, skipping keepalives and other kinds; with `rule`, only
    alerts (and their updates) of that rule: rules other tests left (global ones) fire on this
    test's cameras too."""
    async with asyncio.timeout(timeout_s):
        while True:
            response = await call.read()
            if response.WhichOneof("item") != kind:
                continue
            alert = response.alert if kind == "alert" else response.alert_update.alert
            if rule is None or alert.alert_rule_id == str(rule.id):
                return response


async def subscribed(stub, metadata, **filters):
    """A Subscribe call past its first keepalive: from here on nothing recorded is missed."""
    call = stub.Subscribe(event_pb2.SubscribeRequest(**filters), metadata=metadata)
    assert (await call.read()).WhichOneof("item") == "keepalive"
    return call


async def test_an_alert_is_followed_on_a_second_replicas_feed_from_creation_to_resolution(
        app, stack, settings, channel, ingest, admin, as_role, camera, receiver):
    async with database(app) as conn:
        webhook = await ChannelRepository(conn, app.secrets).create(
            f"desk-{uuid.uuid4().hex[:6]}", WebhookSettings(url=f"{receiver.url}/desk"))
        rule = await AlertRuleRepository(conn).create(
            "someone at the door", None, camera_id=camera.id, event_type="human_detected", confidence_threshold=0.3,
            notification_channel_ids=[webhook.id])
    operator = as_role("operator")
    async with control_replica(stack, settings) as (elsewhere, _):
        # filtered like alerts: the alert's event type, camera and kinds
        feed = await subscribed(event_pb2_grpc.EventServiceStub(elsewhere), as_role("viewer"),
                                camera_ids=[str(camera.id)], event_types=[common_pb2.EVENT_TYPE_HUMAN_DETECTED],
                                kinds=[event_pb2.FEED_ITEM_KIND_ALERT, event_pb2.FEED_ITEM_KIND_ALERT_UPDATE])
        await accepted(ingest, admin, batch(camera.id, [person("visitor")]))
        created = (await next_item(feed, "alert", rule)).alert
        assert created.alert_rule_id == str(rule.id) and created.status == alert_pb2.ALERT_STATUS_PENDING

        sent = (await next_item(feed, "alert_update", rule)).alert_update  # the webhook took it
        assert (sent.kind, sent.previous_status, sent.alert.status) == (
            alert_pb2.ALERT_UPDATE_KIND_STATUS_CHANGED, alert_pb2.ALERT_STATUS_PENDING, alert_pb2.ALERT_STATUS_SENT)
        assert sent.alert.id == created.id and sent.change.actor_id == "" and sent.change.HasField("change_time")

        alerts = alert_pb2_grpc.AlertServiceStub(channel)
        await alerts.AcknowledgeAlert(alert_pb2.AcknowledgeAlertRequest(id=created.id, note="checking"),
                                      metadata=operator)
        await alerts.ResolveAlert(alert_pb2.ResolveAlertRequest(id=created.id, note="a courier"), metadata=operator)
        acknowledged = (await next_item(feed, "alert_update", rule)).alert_update
        resolved = (await next_item(feed, "alert_update", rule)).alert_update
        feed.cancel()
    assert (acknowledged.previous_status, acknowledged.alert.status, acknowledged.change.note) == (
        alert_pb2.ALERT_STATUS_SENT, alert_pb2.ALERT_STATUS_ACKNOWLEDGED, "checking")
    assert (resolved.previous_status, resolved.alert.status, resolved.change.note) == (
        alert_pb2.ALERT_STATUS_ACKNOWLEDGED, alert_pb2.ALERT_STATUS_RESOLVED, "a courier")
    assert resolved.change.from_status == alert_pb2.ALERT_STATUS_ACKNOWLEDGED
    assert resolved.change.to_status == alert_pb2.ALERT_STATUS_RESOLVED
    # who: the operator's user (empty for a user-less key), the same on the alert and on the change
    assert acknowledged.change.actor_id == acknowledged.alert.acknowledged_by
    assert resolved.change.actor_id == resolved.alert.resolved_by == acknowledged.alert.acknowledged_by


async def test_intrusions_of_one_episode_make_one_alert_updated_on_the_feed(app, channel, ingest, admin, camera):
    async with database(app) as conn:
        polygon = Jsonb([{"x": 0.0, "y": 0.4}, {"x": 0.4, "y": 0.4}, {"x": 0.4, "y": 1.0}, {"x": 0.0, "y": 1.0}])
        cur = await conn.execute("INSERT INTO camera_zones (camera_id, name, zone_type, polygon_points)"
                                 " VALUES (%s, 'dock', 'restricted', %s) RETURNING id", (camera.id, polygon))
        zone_id = (await cur.fetchone())["id"]
        await AnalyticsConfigRepository(conn).create("dock intrusion", camera.id, "intrusion", None,
                                                     zone_id=zone_id, severity="high")
        rule = await AlertRuleRepository(conn).create(
            "dock episodes", None, camera_id=camera.id, zone_id=zone_id, activity_type="intrusion",
            confidence_threshold=0.3, group_window=timedelta(seconds=60))
    feed = await subscribed(event_pb2_grpc.EventServiceStub(channel), admin, camera_ids=[str(camera.id)],
                            kinds=[event_pb2.FEED_ITEM_KIND_ALERT, event_pb2.FEED_ITEM_KIND_ALERT_UPDATE])
    await accepted(ingest, admin, batch(camera.id, [person("first", second=0)], sequence=1),
                   batch(camera.id, [person("second", second=5)], sequence=2),
                   batch(camera.id, [person("third", second=9)], sequence=3))
    opened = (await next_item(feed, "alert", rule)).alert
    joined = [(await next_item(feed, "alert_update", rule)).alert_update for _ in range(2)]
    feed.cancel()
    assert opened.trigger.track_id == "first" and opened.trigger.zone_id == str(zone_id)
    assert [(u.kind, u.match.track_id, u.alert.match_count) for u in joined] == [
        (alert_pb2.ALERT_UPDATE_KIND_MATCH_ADDED, "second", 2), (alert_pb2.ALERT_UPDATE_KIND_MATCH_ADDED, "third", 3)]
    assert list(joined[-1].alert.track_ids) == ["first", "second", "third"]

    async with database(app) as conn:
        alerts = await (await conn.execute("SELECT id, match_count FROM alerts WHERE alert_rule_id = %s",
                                           (rule.id,))).fetchall()
        # every intrusion belongs to an alert: the one that raised it, or one it joined
        unalerted = await (await conn.execute(
            "SELECT sa.id FROM suspicious_activity_events sa WHERE sa.camera_id = %s AND sa.activity_type = 'intrusion'"
            " AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.suspicious_activity_id = sa.id)"
            " AND NOT EXISTS (SELECT 1 FROM alert_matches m WHERE m.suspicious_activity_id = sa.id)",
            (camera.id,))).fetchall()
        intrusions = (await (await conn.execute(
            "SELECT count(*) AS n FROM suspicious_activity_events WHERE camera_id = %s AND activity_type = 'intrusion'",
            (camera.id,))).fetchone())["n"]
    assert [a["match_count"] for a in alerts] == [3] and str(alerts[0]["id"]) == opened.id
    assert intrusions == 3 and unalerted == []
