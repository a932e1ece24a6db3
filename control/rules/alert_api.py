"""Alert messages from alerts rows, with their trigger, later matches and status history, and the
AlertUpdate messages the feed carries when an alert changes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from vigil.api.v1 import alert_pb2 as pb
from vigil.api.v1 import common_pb2, event_pb2
from vigil.control.convert import EnumMap, text, timestamp
from vigil.storage.repositories.alerts import Alert, AlertMatch, AlertStatusChange

STATUS = EnumMap(pb.AlertStatus, "ALERT_STATUS_", "statuses")
SEVERITY = EnumMap(common_pb2.Severity, "SEVERITY_", "severities")
CLAUSE = EnumMap(pb.RuleClause, "RULE_CLAUSE_", "clause")
EVENT_TYPE = EnumMap(common_pb2.EventType, "EVENT_TYPE_", "event_type")
ACTIVITY_TYPE = EnumMap(common_pb2.ActivityType, "ACTIVITY_TYPE_", "activity_type")


def trigger_message(alert: Alert) -> pb.AlertTrigger | None:
    if alert.trigger_rule_id is None:
        return None  # raised outside rule evaluation (e.g. the seed's SQL triggers)
    return _trigger(alert, alert.track_id, alert.trigger_evidence or {})


def match_message(alert: Alert, match: AlertMatch) -> pb.AlertTrigger:
    """A later match of the alert's episode, as the trigger it would have been on its own."""
    return _trigger(alert, match.track_id, match.evidence)


def _trigger(alert: Alert, track_id: str | None, evidence: dict) -> pb.AlertTrigger:
    trigger = pb.AlertTrigger(
        rule_id=text(alert.trigger_rule_id), rule_name=evidence.get("rule_name") or "",
        clause=CLAUSE.number(alert.trigger_clause), track_id=track_id or "",
        event_type=EVENT_TYPE.number(evidence.get("event_type")),
        activity_type=ACTIVITY_TYPE.number(evidence.get("activity_type")), zone_id=evidence.get("zone_id") or "",
        confidence=evidence.get("confidence") or 0.0, frame_number=evidence.get("frame_number") or 0)
    if evidence.get("similarity") is not None:
        trigger.similarity = evidence["similarity"]
    if evidence.get("capture_time"):
        trigger.capture_time.CopyFrom(timestamp(datetime.fromisoformat(evidence["capture_time"])))
    return trigger


def change_message(change: AlertStatusChange) -> pb.AlertStatusChange:
    return pb.AlertStatusChange(from_status=STATUS.number(change.from_status),
                                to_status=STATUS.number(change.to_status), actor_id=text(change.actor_id),
                                change_time=timestamp(change.changed_at), note=change.note or "")


def alert_message(alert: Alert, history: Sequence[AlertStatusChange] = (),
                  matches: Sequence[AlertMatch] = ()) -> pb.Alert:
    """resolved_by/resolved_at record whoever closed the alert: reported as resolve or ignore by its status."""
    closed_as = {"resolved": ("resolved_by", "resolve_time"), "ignored": ("ignored_by", "ignore_time")}
    closing = {}
    if alert.status in closed_as:
        by, when = closed_as[alert.status]
        closing = {by: text(alert.resolved_by), when: timestamp(alert.resolved_at)}
    return pb.Alert(
        id=str(alert.id), camera_id=str(alert.camera_id), site_id=text(alert.site_id),
        alert_rule_id=text(alert.alert_rule_id), person_id=text(alert.person_id), event_id=text(alert.event_id),
        suspicious_activity_id=text(alert.suspicious_activity_id), alert_type=alert.alert_type,
        severity=SEVERITY.number(alert.severity), message=alert.message, status=STATUS.number(alert.status),
        trigger=trigger_message(alert), sent_time=timestamp(alert.sent_at),
        acknowledged_by=text(alert.acknowledged_by), acknowledge_time=timestamp(alert.acknowledged_at),
        history=[change_message(c) for c in history], create_time=timestamp(alert.created_at),
        match_count=alert.match_count, track_ids=alert.track_ids, last_match_time=timestamp(alert.last_matched_at),
        matches=[match_message(alert, m) for m in matches], **closing)


def status_update(alert: Alert, change: AlertStatusChange) -> event_pb2.AlertUpdate:
    """The feed's message for a status change of the alert."""
    return event_pb2.AlertUpdate(
        alert=alert_message(alert), kind=pb.ALERT_UPDATE_KIND_STATUS_CHANGED,
        previous_status=STATUS.number(change.from_status), change=change_message(change),
        previous_severity=SEVERITY.number(alert.severity))


def match_update(alert: Alert, previous_severity: str, match: AlertMatch) -> event_pb2.AlertUpdate:
    """The feed's message for a later match that joined the alert (ESCALATED when it raised the severity)."""
    kind = pb.ALERT_UPDATE_KIND_ESCALATED if previous_severity != alert.severity else pb.ALERT_UPDATE_KIND_MATCH_ADDED
    return event_pb2.AlertUpdate(
        alert=alert_message(alert), kind=kind,
        previous_status=STATUS.number(alert.status), previous_severity=SEVERITY.number(previous_severity),
        match=match_message(alert, match))
