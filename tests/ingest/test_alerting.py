"""End to end through the real API: a blacklisted person on a watchlist walks into a restricted
zone. Ingest stores the events, the analytics raise an intrusion, two rules fire (by watchlist and
by activity), the webhook receives both alerts signed, the feed carries them, and a replayed batch
or a repeat within the cooldown raises nothing more."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import pytest
from psycopg.types.json import Jsonb

from tests.fixtures.control import database
from tests.ingest.builders import accepted, batch, face_track, person
from tests.notifications.receivers import HttpReceiver
from vigil.api.v1 import common_pb2, event_pb2, event_pb2_grpc, person_pb2, person_pb2_grpc
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
