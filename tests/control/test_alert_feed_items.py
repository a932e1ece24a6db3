"""The feed items of alerts and alert updates (pure): the attributes Subscribe filters them on are
those of the alert, so an update reaches exactly the subscribers its alert reaches."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from vigil.api.v1 import alert_pb2, common_pb2
from vigil.control.ingest.feed import FeedFilter, FeedItem, response_of
from vigil.control.rules.alert_api import match_update, status_update
from vigil.storage.repositories.alerts import Alert, AlertMatch, AlertStatusChange

NOW = datetime(2026, 3, 1, 22, 15, tzinfo=UTC)


def alert(**fields) -> Alert:
    values = dict(id=uuid.uuid4(), event_id=None, suspicious_activity_id=uuid.uuid4(), alert_rule_id=uuid.uuid4(),
                  person_id=uuid.uuid4(), camera_id=uuid.uuid4(), site_id=uuid.uuid4(),
                  alert_type="suspicious_activity_intrusion", severity="high", message="intrusion", status="sent",
                  sent_at=NOW, acknowledged_by=None, acknowledged_at=None, resolved_by=None, resolved_at=None,
                  trigger_rule_id=uuid.uuid4(), trigger_clause="zone", track_id="p1",
                  trigger_evidence={"rule_name": "zone", "activity_type": "intrusion", "capture_time": NOW.isoformat()},
                  created_at=NOW, group_key="r/c/z", match_count=2, last_matched_at=NOW, track_ids=["p1", "p2"])
    return Alert(**{**values, **fields})


def test_an_alert_update_is_filtered_like_its_alert():
    a = alert()
    change = AlertStatusChange(a.id, "pending", "sent", None, None, None, NOW)
    created, updated = FeedItem.of_alert(a).payload(), FeedItem.of_alert_update(a, status_update(a, change)).payload()
    assert updated["kind"] == "alert_update" and created["kind"] == "alert"
    assert {k: v for k, v in updated.items() if k not in ("kind", "message")} == {
        k: v for k, v in created.items() if k not in ("kind", "message")}
    assert updated["activity_type"] == "intrusion" and "event_type" not in updated
    assert updated["person_ids"] == [str(a.person_id)] and updated["severity"] == "high"

    def passes(**filters) -> bool:
        return FeedFilter(**{k: frozenset(v) for k, v in filters.items()}).matches(updated, set())

    assert passes(kinds={"alert_update"}, camera_ids={str(a.camera_id)}, activity_types={"intrusion"})
    assert not passes(activity_types={"loitering"})
    assert not passes(severities={"low"})
    assert not passes(person_ids={str(uuid.uuid4())})
    assert not passes(site_ids={str(uuid.uuid4())})

    message = response_of("1-0", updated).alert_update
    assert (message.previous_status, message.alert.status, message.kind) == (
        alert_pb2.ALERT_STATUS_PENDING, alert_pb2.ALERT_STATUS_SENT, alert_pb2.ALERT_UPDATE_KIND_STATUS_CHANGED)


def test_an_event_alert_carries_its_event_type_and_a_device_alert_neither_type():
    by_event = FeedItem.of_alert(alert(event_id=uuid.uuid4(), suspicious_activity_id=None,
                                       alert_type="person_recognized")).payload()
    assert by_event["event_type"] == "person_recognized" and "activity_type" not in by_event
    device = FeedItem.of_alert(alert(event_id=None, suspicious_activity_id=None, alert_type="camera_offline",
                                     person_id=None, trigger_rule_id=None, trigger_clause=None)).payload()
    assert "event_type" not in device and "activity_type" not in device and device["person_ids"] == []


def test_a_joined_match_is_added_or_escalates():
    a = alert(severity="critical", match_count=3)
    match = AlertMatch(a.id, NOW, "p3", None, uuid.uuid4(), "critical", {"rule_name": "zone", "zone_id": "z"})
    escalated = match_update(a, "high", match)
    assert (escalated.kind, escalated.previous_severity, escalated.alert.match_count) == (
        alert_pb2.ALERT_UPDATE_KIND_ESCALATED, common_pb2.SEVERITY_HIGH, 3)
    assert escalated.match.track_id == "p3" and escalated.match.zone_id == "z"
    assert match_update(a, "critical", match).kind == alert_pb2.ALERT_UPDATE_KIND_MATCH_ADDED
