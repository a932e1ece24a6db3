"""Events (partitioned, newest-first pages), alert rules and the alert lifecycle."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.storage.builders import count, make_camera
from vigil.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from vigil.storage.repositories.alerts import AlertRepository, AlertRuleRepository
from vigil.storage.repositories.events import EventRepository
from vigil.storage.repositories.persons import PersonRepository
from vigil.storage.repositories.sites import ZoneRepository

BOX = {"x": 120, "y": 80, "width": 200, "height": 250, "frame_width": 1920, "frame_height": 1080}


async def test_event_insert_get_round_trip(conn, secret_box):
    camera = await make_camera(conn, secret_box)
    person = await PersonRepository(conn).create(name="recognised")
    events = EventRepository(conn)
    when = datetime.now(UTC).replace(microsecond=123456)
    event = await events.insert(camera.id, "person_recognized", when, 0.87, BOX, person_id=person.id,
                                frame_number=4711, metadata={"track_id": "t-1", "pose": "frontal"})
    assert (event.timestamp, event.confidence, event.bounding_box, event.metadata["track_id"]) == (
        when, 0.87, BOX, "t-1")
    assert await events.get(event.id, when) == event
    assert await events.get(event.id) == event
    with pytest.raises(NotFound):
        await events.get(event.id, when + timedelta(seconds=1))
    with pytest.raises(NotFound):
        await events.get(uuid.uuid4())
    # a publisher retrying with the same id and timestamp does not store the event twice
    with pytest.raises(AlreadyExists) as again:
        await events.insert(camera.id, "person_recognized", when, 0.87, BOX, event_id=event.id)
    assert again.value.field == "id"


async def test_event_bad_input_writes_nothing(conn, secret_box):
    camera = await make_camera(conn, secret_box)
    events = EventRepository(conn)
    now = datetime.now(UTC)
    cases = [
        ({"camera_id": uuid.uuid4()}, "camera_id"),  # FK to a missing camera
        ({"event_type": "alien_detected"}, "event_type"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": float("nan")}, "confidence"),
        ({"timestamp": now.replace(tzinfo=None)}, "timestamp"),
        ({"person_id": uuid.uuid4()}, "person_id"),
        ({"frame_number": 2**70}, "frame_number"),
    ]
    for change, field in cases:
        args = {"camera_id": camera.id, "event_type": "human_detected", "timestamp": now, "confidence": 0.5,
                "bounding_box": BOX, **change}
        with pytest.raises(InvalidArgument) as refused:
            await events.insert(**args)
        assert refused.value.field == field, change
    assert await count(conn, "SELECT count(*) FROM events WHERE timestamp = %s", (now,)) == 0


async def test_event_list_filters_and_pages_newest_first(conn, secret_box):
    front = await make_camera(conn, secret_box, name="front")
    back = await make_camera(conn, secret_box, name="back")
    person = await PersonRepository(conn).create(name="regular")
    events = EventRepository(conn)
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    created = []
    for n in range(11):
        camera = front if n % 3 else back
        created.append(await events.insert(
            camera.id, "face_detected" if n % 2 else "human_detected", start + timedelta(minutes=n), 0.9, BOX,
            person_id=person.id if n < 4 else None))
    # two events in the same instant: the id breaks the tie, nothing is skipped or repeated
    created.append(await events.insert(front.id, "human_detected", start + timedelta(minutes=5), 0.9, BOX))

    seen, token, pages = [], None, 0
    while True:
        page = await events.list(camera_ids=[front.id, back.id], page_size=4, page_token=token)
        seen.extend(page.items)
        pages += 1
        if (token := page.next_page_token) is None:
            break
    assert pages == 3
    assert [e.id for e in seen] == [e.id for e in sorted(created, key=lambda e: (e.timestamp, e.id), reverse=True)]

    only_back = await events.list(camera_ids=[back.id])
    assert {e.id for e in only_back.items} == {e.id for e in created if e.camera_id == back.id}
    faces = await events.list(camera_ids=[front.id, back.id], event_types=["face_detected"])
    assert {e.event_type for e in faces.items} == {"face_detected"} and len(faces.items) == 5
    window = await events.list(camera_ids=[front.id, back.id], since=start + timedelta(minutes=2),
                               until=start + timedelta(minutes=4))
    assert [e.timestamp for e in window.items] == [start + timedelta(minutes=3), start + timedelta(minutes=2)]
    mine = await events.list(person_id=person.id)
    assert [e.id for e in mine.items] == [e.id for e in reversed(created[:4])]

    with pytest.raises(InvalidArgument) as bad_type:
        await events.list(event_types=["human_detected", "ufo_detected"])
    assert bad_type.value.field == "event_types"
    with pytest.raises(InvalidArgument) as bad_camera:
        await events.list(camera_ids=["front-door"])
    assert bad_camera.value.field == "camera_ids"
    with pytest.raises(InvalidArgument) as bad_token:
        await events.list(page_token="WyJub3QgYSB0aW1lIiwgIm5vdCBhIHV1aWQiXQ")  # ["not a time", "not a uuid"]
    assert bad_token.value.field == "page_token"


async def test_alert_rule_crud(conn, secret_box, actor_id):
    camera = await make_camera(conn, secret_box)
    zone = await ZoneRepository(conn).create(camera.id, "gate", "restricted", [(0, 0), (1, 0), (0, 1)])
    rules = AlertRuleRepository(conn)
    rule = await rules.create("night intruder", actor_id, camera_id=camera.id, zone_id=zone.id,
                              event_type="human_detected", severity="high", confidence_threshold=0.8,
                              schedule={"days": [1, 2, 3, 4, 5], "start_time": "18:00", "end_time": "06:00"})
    everywhere = await rules.create("any face", actor_id, event_type="face_detected")
    assert (rule.confidence_threshold, rule.severity, rule.schedule["start_time"]) == (0.8, "high", "18:00")
    assert everywhere.schedule["days"] == [0, 1, 2, 3, 4, 5, 6]  # the schema's default schedule
    assert await rules.get(rule.id) == rule

    active = await rules.active_for_camera(camera.id)
    assert {r.id for r in active} >= {rule.id, everywhere.id}
    paused = await rules.update(rule.id, {"is_active": False, "quiet_hours": {"start": "12:00", "end": "13:00"}})
    assert not paused.is_active and paused.quiet_hours == {"start": "12:00", "end": "13:00"}
    assert rule.id not in {r.id for r in await rules.active_for_camera(camera.id)}
    assert [r.id for r in (await rules.list(camera_id=camera.id, is_active=False)).items] == [rule.id]

    for change, field in (
        ({"confidence_threshold": 2.0}, "confidence_threshold"),
        ({"severity": "apocalyptic"}, "severity"),
        ({"camera_id": uuid.uuid4()}, "camera_id"),
        ({"created_by": actor_id}, "created_by"),
    ):
        with pytest.raises(InvalidArgument) as refused:
            await rules.update(rule.id, change)
        assert refused.value.field == field
    with pytest.raises(InvalidArgument) as no_creator:
        await rules.create("orphan", uuid.uuid4())
    assert no_creator.value.field == "created_by"
    await rules.delete(rule.id)
    with pytest.raises(NotFound):
        await rules.get(rule.id)


async def test_alert_lifecycle_and_invalid_transitions(conn, secret_box, actor_id):
    camera = await make_camera(conn, secret_box)
    event = await EventRepository(conn).insert(camera.id, "human_detected", datetime.now(UTC), 0.9, BOX)
    alerts = AlertRepository(conn)
    alert = await alerts.insert(event.id, camera.id, "Person_Detected", "high", "person at the gate")
    assert (alert.status, alert.sent_at, alert.acknowledged_by) == ("pending", None, None)
    assert await alerts.get(alert.id) == alert

    sent = await alerts.mark_sent(alert.id)
    assert sent.status == "sent" and sent.sent_at is not None
    acknowledged = await alerts.acknowledge(alert.id, actor_id)
    assert (acknowledged.status, acknowledged.acknowledged_by) == ("acknowledged", actor_id)
    assert acknowledged.acknowledged_at is not None
    with pytest.raises(FailedPrecondition):
        await alerts.mark_sent(alert.id)  # no way back
    resolved = await alerts.resolve(alert.id, actor_id)
    assert (resolved.status, resolved.resolved_by) == ("resolved", actor_id) and resolved.resolved_at is not None
    for move in (alerts.acknowledge, alerts.resolve, alerts.ignore):
        with pytest.raises(FailedPrecondition):
            await move(alert.id, actor_id)  # resolved is final
    assert await alerts.get(alert.id) == resolved

    dismissed = await alerts.insert(event.id, camera.id, "Person_Detected", "low", "false alarm")
    ignored = await alerts.ignore(dismissed.id, actor_id)
    assert (ignored.status, ignored.resolved_by) == ("ignored", actor_id)
    with pytest.raises(FailedPrecondition):
        await alerts.acknowledge(dismissed.id, actor_id)
    with pytest.raises(NotFound):
        await alerts.acknowledge(uuid.uuid4(), actor_id)
    with pytest.raises(InvalidArgument) as unknown_user:
        await alerts.acknowledge((await alerts.insert(event.id, camera.id, "x", "low", "y")).id, uuid.uuid4())
    assert unknown_user.value.field == "acknowledged_by"


async def test_alert_list_filters_and_pages(conn, secret_box):
    camera = await make_camera(conn, secret_box)
    other = await make_camera(conn, secret_box)
    event = await EventRepository(conn).insert(camera.id, "human_detected", datetime.now(UTC), 0.9, BOX)
    alerts = AlertRepository(conn)
    created = [await alerts.insert(event.id, camera.id, "Person_Detected", ("low", "high")[n % 2], f"alert {n}")
               for n in range(7)]
    await alerts.insert(event.id, other.id, "Person_Detected", "high", "elsewhere")
    await alerts.mark_sent(created[0].id)

    first = await alerts.list(camera_ids=[camera.id], page_size=3)
    second = await alerts.list(camera_ids=[camera.id], page_size=3, page_token=first.next_page_token)
    third = await alerts.list(camera_ids=[camera.id], page_size=3, page_token=second.next_page_token)
    ids = [a.id for a in first.items + second.items + third.items]
    assert len(ids) == len(set(ids)) == 7 and third.next_page_token is None
    assert set(ids) == {a.id for a in created}

    high = await alerts.list(camera_ids=[camera.id], severities=["high", "critical"])
    assert {a.id for a in high.items} == {a.id for a in created[1::2]}
    pending = await alerts.list(camera_ids=[camera.id], statuses=["pending"])
    assert {a.id for a in pending.items} == {a.id for a in created[1:]}
    later = await alerts.list(camera_ids=[camera.id], since=datetime.now(UTC) + timedelta(hours=1))
    assert later.items == []
    with pytest.raises(InvalidArgument) as bad_status:
        await alerts.list(statuses=["panicking"])
    assert bad_status.value.field == "statuses"
    with pytest.raises(InvalidArgument) as naive:
        await alerts.list(since=datetime(2026, 1, 1))
    assert naive.value.field == "since"
