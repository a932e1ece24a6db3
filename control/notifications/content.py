"""What a notification says about an alert, read from the database when each attempt starts.

Reading it then (not when the alert was submitted) lets a retry after a restart send the same
content with nothing but the alert id in the queue.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from google.protobuf import json_format

from vigil.api.v1 import alert_pb2, common_pb2
from vigil.control.convert import EnumMap, text, timestamp
from vigil.control.notifications.models import Notification
from vigil.storage.repositories.notifications import DeliveryRepository

_SEVERITY = EnumMap(common_pb2.Severity, "SEVERITY_", "severity")
_STATUS = EnumMap(alert_pb2.AlertStatus, "ALERT_STATUS_", "status")
_CLAUSE = EnumMap(alert_pb2.RuleClause, "RULE_CLAUSE_", "clause")
_EVENT_TYPE = EnumMap(common_pb2.EventType, "EVENT_TYPE_", "event_type")
_ACTIVITY_TYPE = EnumMap(common_pb2.ActivityType, "ACTIVITY_TYPE_", "activity_type")


async def load_notification(conn: psycopg.AsyncConnection, alert_id: UUID) -> Notification:
    row = await DeliveryRepository(conn).content(alert_id)
    return Notification(
        alert_id=row["id"], alert_type=row["alert_type"], severity=row["severity"], message=row["message"],
        created_at=row["created_at"], camera_name=row["camera_name"], location=row["location"],
        site_name=row["site_name"], person_name=row["person_name"], confidence=row["confidence"],
        document=json_format.MessageToDict(_alert_message(row)))


def _alert_message(row: dict[str, Any]) -> alert_pb2.Alert:
    """The alert as AlertService returns it (without its history), which is what webhooks receive."""
    alert = alert_pb2.Alert(
        id=text(row["id"]), camera_id=text(row["camera_id"]), site_id=text(row["site_id"]),
        alert_rule_id=text(row["alert_rule_id"]), person_id=text(row["person_id"]),
        event_id=text(row["event_id"]), suspicious_activity_id=text(row["suspicious_activity_id"]),
        alert_type=row["alert_type"], severity=_SEVERITY.number(row["severity"]), message=row["message"],
        status=_STATUS.number(row["status"]), acknowledged_by=text(row["acknowledged_by"]))
    _set_time(alert, "create_time", row["created_at"])
    _set_time(alert, "sent_time", row["sent_at"])
    _set_time(alert, "acknowledge_time", row["acknowledged_at"])
    # the schema records who closed an alert in resolved_* whether it was resolved or ignored
    if row["status"] == "ignored":
        alert.ignored_by = text(row["resolved_by"])
        _set_time(alert, "ignore_time", row["resolved_at"])
    else:
        alert.resolved_by = text(row["resolved_by"])
        _set_time(alert, "resolve_time", row["resolved_at"])
    if row["trigger_rule_id"] is not None:
        alert.trigger.CopyFrom(_trigger(row))
    return alert


def _trigger(row: dict[str, Any]) -> alert_pb2.AlertTrigger:
    evidence = row["trigger_evidence"] or {}
    trigger = alert_pb2.AlertTrigger(
        rule_id=text(row["trigger_rule_id"]), rule_name=evidence.get("rule_name") or "",
        clause=_CLAUSE.number(row["trigger_clause"]), track_id=row["track_id"] or "",
        event_type=_EVENT_TYPE.number(evidence.get("event_type")),
        activity_type=_ACTIVITY_TYPE.number(evidence.get("activity_type")),
        zone_id=evidence.get("zone_id") or "", confidence=evidence.get("confidence") or 0.0,
        frame_number=evidence.get("frame_number") or 0)
    if evidence.get("similarity") is not None:
        trigger.similarity = evidence["similarity"]
    if evidence.get("capture_time"):
        _set_time(trigger, "capture_time", datetime.fromisoformat(evidence["capture_time"]))
    return trigger


def _set_time(message: Any, field: str, value: datetime | None) -> None:
    if value is not None:
        getattr(message, field).CopyFrom(timestamp(value))
