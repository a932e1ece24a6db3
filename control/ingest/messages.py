"""Stored events and suspicious activities as API messages (EventService and the event feed), and
boxes in the stored form.

events.bounding_box keeps the seed's form: pixels plus the frame size ({"x", "y", "width",
"height", "frame_width", "frame_height"}); the API's boxes are normalised. A stored box without
a frame size is taken as already normalised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from google.protobuf import duration_pb2

from vigil.api.v1 import common_pb2, ingest_pb2
from vigil.api.v1 import event_pb2 as pb
from vigil.control.analytics.model import Box
from vigil.control.convert import EnumMap, text, timestamp
from vigil.storage.repositories.events import Event, SuspiciousActivity

EVENT_TYPE = EnumMap(common_pb2.EventType, "EVENT_TYPE_", "event_types")
ACTIVITY_TYPE = EnumMap(common_pb2.ActivityType, "ACTIVITY_TYPE_", "activity_types")
SEVERITY = EnumMap(common_pb2.Severity, "SEVERITY_", "severities")
REVIEW_ACTION = EnumMap(pb.ReviewAction, "REVIEW_ACTION_", "action")
OBJECT_CLASS = EnumMap(ingest_pb2.ObjectClass, "OBJECT_CLASS_", "object_classes")
# where analytics put the point an activity happened at, by activity (suspicious_activity_events.details)
_LOCATION_KEYS = ("location", "entry_point", "cluster_center", "floor_location")


def pixel_box(box: Box, frame_width: int, frame_height: int) -> dict[str, Any]:
    return {"x": round(box.x * frame_width, 3), "y": round(box.y * frame_height, 3),
            "width": round(box.width * frame_width, 3), "height": round(box.height * frame_height, 3),
            "frame_width": frame_width, "frame_height": frame_height}


def _number(mapping: Mapping[str, Any], key: str) -> float:
    value = mapping.get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


def box_message(stored: Mapping[str, Any]) -> tuple[common_pb2.BoundingBox, int, int]:
    """(normalised box, frame width, frame height) of a stored bounding_box."""
    width, height = int(_number(stored, "frame_width")), int(_number(stored, "frame_height"))
    sx, sy = (width, height) if width > 0 and height > 0 else (1, 1)
    return common_pb2.BoundingBox(x=_number(stored, "x") / sx, y=_number(stored, "y") / sy,
                                  width=_number(stored, "width") / sx, height=_number(stored, "height") / sy), \
        width, height


def event_message(e: Event) -> pb.Event:
    box, frame_width, frame_height = box_message(e.bounding_box)
    meta = e.metadata
    message = pb.Event(
        id=str(e.id), camera_id=str(e.camera_id), site_id=text(e.site_id), event_type=EVENT_TYPE.number(e.event_type),
        person_id=text(e.person_id), cluster_id=text(e.cluster_id), confidence=e.confidence, box=box,
        frame_width=frame_width, frame_height=frame_height, track_id=str(meta.get("track_id", "")),
        frame_number=e.frame_number or 0, event_time=timestamp(e.timestamp),
        model_version=str(meta.get("model_version", "")), snapshot_media_id=text(e.snapshot_media_id),
        clip_media_id=text(e.clip_media_id), reviewed=e.reviewed, review_action=REVIEW_ACTION.number(e.review_action),
        create_time=timestamp(e.created_at), object_class=_object_class(meta),
        object_label=str(meta.get("object_label") or ""))
    for field in ("similarity", "face_quality"):
        if isinstance(meta.get(field), (int, float)):
            setattr(message, field, meta[field])
    return message


def _seconds(details: Mapping[str, Any], key: str) -> duration_pb2.Duration | None:
    if not isinstance(details.get(key), (int, float)):
        return None
    duration = duration_pb2.Duration()
    duration.FromMilliseconds(round(_number(details, key) * 1000))
    return duration


def _location(details: Mapping[str, Any]) -> common_pb2.Point | None:
    for key in _LOCATION_KEYS:
        point = details.get(key)
        if isinstance(point, Mapping):
            return common_pb2.Point(x=_number(point, "x"), y=_number(point, "y"))
    return None


def _strings(details: Mapping[str, Any], key: str) -> list[str]:
    values = details.get(key)
    return [str(v) for v in values if v] if isinstance(values, list) else []


def _object_class(stored: Mapping[str, Any], default: str | None = None) -> int:
    """The ObjectClass number of a stored "object_class" label; UNSPECIFIED when unknown."""
    label = stored.get("object_class", default)
    return OBJECT_CLASS.number(label) if isinstance(label, str) else ingest_pb2.OBJECT_CLASS_UNSPECIFIED


def activity_details(details: Mapping[str, Any]) -> pb.ActivityDetails:
    """Activities recorded before analytics watched vehicles were all about persons."""
    return pb.ActivityDetails(
        object_class=_object_class(details, "person"), object_label=str(details.get("object_label") or ""),
        track_ids=_strings(details, "track_ids"), person_ids=_strings(details, "person_ids"),
        duration=_seconds(details, "duration_seconds"),
        person_count=int(_number(details, "person_count")), entry_count=int(_number(details, "entry_count")),
        window=_seconds(details, "window_seconds"), speed=_number(details, "speed"), location=_location(details))


def suspicious_activity_message(a: SuspiciousActivity) -> pb.SuspiciousActivity:
    return pb.SuspiciousActivity(
        id=str(a.id), camera_id=str(a.camera_id), site_id=text(a.site_id),
        activity_type=ACTIVITY_TYPE.number(a.activity_type), zone_id=text(a.zone_id),
        analytics_config_id=str(a.details.get("config_id") or ""), event_id=text(a.event_id),
        confidence=a.confidence, severity=SEVERITY.number(a.severity), details=activity_details(a.details),
        snapshot_media_id=text(a.snapshot_media_id), clip_media_id=text(a.clip_media_id),
        event_time=timestamp(a.timestamp), alert_sent=a.alert_sent, create_time=timestamp(a.created_at))
