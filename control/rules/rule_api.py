"""AlertRule messages ↔ alert_rules rows, with every check of rule.proto."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from vigil.api.v1 import common_pb2, ingest_pb2
from vigil.api.v1 import rule_pb2 as pb
from vigil.control.analytics.model import VEHICLE_LABELS
from vigil.control.analytics.parameters import excerpt
from vigil.control.convert import EnumMap, text, timestamp
from vigil.control.request_checks import checked_text
from vigil.control.rules.api_values import (
    duration_message,
    duration_value,
    optional_id,
    quiet_hours_document,
    quiet_hours_message,
    schedule_document,
    schedule_message,
    unit_interval,
)
from vigil.errors import InvalidArgument
from vigil.storage.repositories.alerts import ALL_WEEK, DEFAULT_COOLDOWN, AlertRule
from vigil.storage.repositories.base import as_uuid

PATH = "alert_rule"
EVENT_TYPE = EnumMap(common_pb2.EventType, "EVENT_TYPE_", f"{PATH}.event_type")
ACTIVITY_TYPE = EnumMap(common_pb2.ActivityType, "ACTIVITY_TYPE_", f"{PATH}.activity_type")
SEVERITY = EnumMap(common_pb2.Severity, "SEVERITY_", f"{PATH}.severity")
OBJECT_CLASS = EnumMap(ingest_pb2.ObjectClass, "OBJECT_CLASS_", f"{PATH}.object_class")

UPDATABLE = ("name", "camera_id", "person_id", "person_role", "watchlist_id", "zone_id", "event_type",
             "activity_type", "confidence_threshold", "schedule", "quiet_hours", "severity", "cooldown",
             "notification_channel_ids", "is_active", "group_window", "object_class", "object_label")
DEFAULT_CONFIDENCE = 0.75
MAX_COOLDOWN = timedelta(hours=24)
MAX_GROUP_WINDOW = timedelta(hours=24)
# Unset on create: one alert per match, as before grouping existed, so existing clients' rules
# keep their meaning (and their cooldown); grouping is asked for (the demo's zone rules do).
DEFAULT_GROUP_WINDOW = timedelta(0)
MAX_CHANNELS = 20


def channel_ids(rule: pb.AlertRule) -> list[UUID]:
    ids = rule.notification_channel_ids
    if len(ids) > MAX_CHANNELS:
        raise InvalidArgument(f"{PATH}.notification_channel_ids", f"at most {MAX_CHANNELS} channels, got {len(ids)}")
    checked = [as_uuid(f"{PATH}.notification_channel_ids[{i}]", value) for i, value in enumerate(ids)]
    for i, value in enumerate(checked):
        if value in checked[:i]:
            raise InvalidArgument(f"{PATH}.notification_channel_ids[{i}]", "lists a channel twice")
    return checked


def object_label(rule: pb.AlertRule) -> str | None:
    """A vehicle's label: only with object_class VEHICLE, and one the detector gives."""
    if not rule.object_label:
        return None
    if rule.object_class != ingest_pb2.OBJECT_CLASS_VEHICLE:
        raise InvalidArgument(f"{PATH}.object_label", "needs object_class OBJECT_CLASS_VEHICLE (labels name vehicles)")
    if rule.object_label not in VEHICLE_LABELS:
        raise InvalidArgument(f"{PATH}.object_label",
                              f"must be one of {', '.join(VEHICLE_LABELS)}, got {excerpt(rule.object_label)}")
    return rule.object_label


def rule_values(rule: pb.AlertRule) -> dict[str, Any]:
    """The stored values of a rule message, checked completely (a create, or an update's result).
    References are checked to exist by the service, inside its transaction."""
    values = {
        "name": checked_text(f"{PATH}.name", rule.name, 200, required=True),
        "camera_id": optional_id(f"{PATH}.camera_id", rule.camera_id),
        "person_id": optional_id(f"{PATH}.person_id", rule.person_id),
        "person_role": checked_text(f"{PATH}.person_role", rule.person_role, 100),
        "watchlist_id": optional_id(f"{PATH}.watchlist_id", rule.watchlist_id),
        "zone_id": optional_id(f"{PATH}.zone_id", rule.zone_id),
        "event_type": EVENT_TYPE.label(rule.event_type, required=False),
        "activity_type": ACTIVITY_TYPE.label(rule.activity_type, required=False),
        "confidence_threshold": (unit_interval(f"{PATH}.confidence_threshold", rule.confidence_threshold)
                                 if rule.HasField("confidence_threshold") else DEFAULT_CONFIDENCE),
        "schedule": (schedule_document(f"{PATH}.schedule", rule.schedule)
                     if rule.HasField("schedule") else ALL_WEEK),
        "quiet_hours": (quiet_hours_document(f"{PATH}.quiet_hours", rule.quiet_hours)
                        if rule.HasField("quiet_hours") else None),
        "severity": SEVERITY.label(rule.severity, required=False),  # None: from the person's status
        "cooldown": (duration_value(f"{PATH}.cooldown", rule.cooldown, timedelta(0), MAX_COOLDOWN)
                     if rule.HasField("cooldown") else DEFAULT_COOLDOWN),
        "notification_channel_ids": channel_ids(rule),
        "is_active": rule.is_active if rule.HasField("is_active") else True,
        "group_window": (duration_value(f"{PATH}.group_window", rule.group_window, timedelta(0), MAX_GROUP_WINDOW)
                         if rule.HasField("group_window") else DEFAULT_GROUP_WINDOW),
        "object_class": OBJECT_CLASS.label(rule.object_class, required=False),
        "object_label": object_label(rule),
    }
    if values["activity_type"] is not None and values["event_type"] is not None:
        raise InvalidArgument(f"{PATH}.event_type", "must be EVENT_TYPE_UNSPECIFIED when activity_type is set")
    return values


def rule_message(rule: AlertRule) -> pb.AlertRule:
    return pb.AlertRule(
        id=str(rule.id), name=rule.name, camera_id=text(rule.camera_id), person_id=text(rule.person_id),
        person_role=rule.person_role or "", watchlist_id=text(rule.watchlist_id), zone_id=text(rule.zone_id),
        event_type=EVENT_TYPE.number(rule.event_type), activity_type=ACTIVITY_TYPE.number(rule.activity_type),
        confidence_threshold=rule.confidence_threshold,
        schedule=None if rule.schedule == ALL_WEEK else schedule_message(rule.schedule),
        quiet_hours=None if rule.quiet_hours is None else quiet_hours_message(rule.quiet_hours),
        severity=SEVERITY.number(rule.severity), cooldown=duration_message(rule.cooldown),
        notification_channel_ids=[str(c) for c in rule.notification_channel_ids], is_active=rule.is_active,
        created_by=text(rule.created_by), create_time=timestamp(rule.created_at),
        update_time=timestamp(rule.updated_at), group_window=duration_message(rule.group_window),
        object_class=OBJECT_CLASS.number(rule.object_class), object_label=rule.object_label or "")
