"""AnalyticsConfig messages ↔ analytics_configs rows, with every check of rule.proto.

The parameters oneof is stored as a JSON object of the set fields only (durations in seconds), so
that an unset parameter falls back to the zone's threshold, then to the server default, where the
analytics read it: {"min_duration": 120}, {"min_persons": 5, "min_duration": 5},
{"min_speed": 1.5, "min_duration": 1}, {"min_entries": 3, "window": 3600},
{"allowed_hours": <schedule document>}.

Stored parameters are read the way the analytics engine reads them (control/analytics), since that
is what runs: allowed_hours in either spelling the engine takes, "start"/"end" or the alert_rules
one "start_time"/"end_time" that this module writes. A stored value no message field can hold (a
key outside rule.proto, a malformed value written past the API) is left out of the message and
logged; reading a configuration never fails on its parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from vigil.api.v1 import common_pb2
from vigil.api.v1 import rule_pb2 as pb
from vigil.control.analytics.schedule import WeeklySchedule
from vigil.control.convert import EnumMap, text, timestamp
from vigil.control.rules.api_values import duration_value, optional_id, schedule_document, time_message
from vigil.control.request_checks import checked_text
from vigil.logs import get_logger
from vigil.storage.repositories.alerts import AnalyticsConfig
from vigil.errors import FailedPrecondition, InvalidArgument

log = get_logger("vigil.control.rules")

PATH = "analytics_config"
ACTIVITY_TYPE = EnumMap(common_pb2.ActivityType, "ACTIVITY_TYPE_", f"{PATH}.activity_type")
SEVERITY = EnumMap(common_pb2.Severity, "SEVERITY_", f"{PATH}.severity")

UPDATABLE = ("name", "zone_id", "severity", "is_active", "dwell", "crowd", "speed", "repeated_entry", "after_hours")
IMMUTABLE = ("camera_id", "activity_type")
UPDATABLE_COLUMNS = ("name", "zone_id", "severity", "parameters", "is_active")
PARAMETER_FIELDS = ("dwell", "crowd", "speed", "repeated_entry", "after_hours")  # the parameters oneof
DEFAULT_SEVERITY = "medium"

# The parameters each activity type takes (None: none).
PARAMETERS_OF = {"loitering": "dwell", "dwell_time": "dwell", "crowding": "crowd", "running": "speed",
                 "repeated_entry": "repeated_entry", "after_hours": "after_hours", "intrusion": None,
                 "zone_breach": None}
ZONE_REQUIRED = ("intrusion", "zone_breach", "dwell_time", "repeated_entry")
NOT_DETECTABLE = ("fall", "abandoned_object")  # need detectors the pipeline does not have yet


def _seconds(path: str, value: Any, low: timedelta, high: timedelta) -> float:
    return duration_value(path, value, low, high).total_seconds()


def _count(path: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidArgument(path, f"must be within {low}..{high}, got {value}")
    return value


def _speed(path: str, value: float) -> float:
    if not (math.isfinite(value) and 0.0 < value <= 20.0):
        raise InvalidArgument(path, f"must be > 0 and at most 20 person heights per second, got {value}")
    return float(f"{value:.7g}")


_MESSAGES = {"dwell": pb.DwellParameters, "crowd": pb.CrowdParameters, "speed": pb.SpeedParameters,
             "repeated_entry": pb.RepeatedEntryParameters, "after_hours": pb.AfterHoursParameters}
# Per parameters message: its fields, each with the check giving a set value's stored form.
_FIELDS: dict[str, dict[str, Callable[[str, Any], Any]]] = {
    "dwell": {"min_duration": lambda p, v: _seconds(p, v, timedelta(seconds=1), timedelta(hours=24))},
    "crowd": {"min_persons": lambda p, v: _count(p, v, 2, 1000),
              "min_duration": lambda p, v: _seconds(p, v, timedelta(0), timedelta(hours=1))},
    "speed": {"min_speed": _speed,
              "min_duration": lambda p, v: _seconds(p, v, timedelta(0), timedelta(seconds=60))},
    "repeated_entry": {"min_entries": lambda p, v: _count(p, v, 2, 1000),
                       "window": lambda p, v: _seconds(p, v, timedelta(minutes=1), timedelta(days=7))},
    "after_hours": {"allowed_hours": schedule_document},
}


def activity_enum_name(activity: str) -> str:
    return f"ACTIVITY_TYPE_{activity.upper()}"


def parameters_document(config: pb.AnalyticsConfig, activity: str) -> dict[str, Any]:
    kind = config.WhichOneof("parameters")
    expected = PARAMETERS_OF[activity]
    if kind is not None and kind != expected:
        takes = f"it takes {expected}" if expected else "it takes no parameters"
        raise InvalidArgument(f"{PATH}.{kind}", f"does not suit {activity_enum_name(activity)}; {takes}")
    if kind is None:
        if activity == "after_hours":
            raise InvalidArgument(f"{PATH}.after_hours", f"is required for {activity_enum_name(activity)}")
        return {}
    parameters: Message = getattr(config, kind)
    if kind == "after_hours" and not parameters.HasField("allowed_hours"):
        raise InvalidArgument(f"{PATH}.after_hours.allowed_hours", "is required")
    return {name: check(f"{PATH}.{kind}.{name}", getattr(parameters, name))
            for name, check in _FIELDS[kind].items() if parameters.HasField(name)}


def config_values(config: pb.AnalyticsConfig) -> dict[str, Any]:
    """The stored values of a configuration message, checked completely (a create, or an update's
    result). The zone's camera is checked by the service, inside its transaction."""
    activity = ACTIVITY_TYPE.label(config.activity_type)
    if activity in NOT_DETECTABLE:
        raise FailedPrecondition(f"{PATH}.activity_type: {activity_enum_name(activity)} needs a detector "
                                 "the pipeline does not have yet")
    values = {
        "name": checked_text(f"{PATH}.name", config.name, 200, required=True),
        "camera_id": optional_id(f"{PATH}.camera_id", config.camera_id),
        "zone_id": optional_id(f"{PATH}.zone_id", config.zone_id),
        "activity_type": activity,
        "severity": SEVERITY.label(config.severity, required=False) or DEFAULT_SEVERITY,
        "is_active": config.is_active if config.HasField("is_active") else True,
        "parameters": parameters_document(config, activity),
    }
    if values["camera_id"] is None:
        raise InvalidArgument(f"{PATH}.camera_id", "is required")
    if activity in ZONE_REQUIRED and values["zone_id"] is None:
        raise InvalidArgument(f"{PATH}.zone_id", f"is required for {activity_enum_name(activity)}")
    return values


# A stored value that cannot become its message field: logged and left out, never raised.
_UNREADABLE = (ValueError, TypeError, OverflowError, AttributeError, OSError)  # OSError: a zone name ZoneInfo trips on
_INTEGER_TYPES = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
                  FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64)


def allowed_hours_message(document: Any, field: str = "allowed_hours") -> pb.Schedule:
    """A stored allowed_hours schedule as the analytics engine reads it (WeeklySchedule.parse):
    "start"/"end" or "start_time"/"end_time"; no days = every day; no time zone = the site's.
    ValueError when the engine would refuse it too."""
    if not isinstance(document, Mapping):
        raise ValueError(f"{field}: must be a schedule object, got {document!r}")
    named_zone = document.get("timezone") or ""
    # the engine needs a zone to resolve; a schedule naming none is read in the site's, which
    # the message leaves unnamed, so any valid zone stands in for it here
    schedule = WeeklySchedule.parse(document, field=field, site_timezone=named_zone or "UTC")
    return pb.Schedule(days=sorted(schedule.days) if document.get("days") else [],
                       start=time_message(schedule.start_minute), end=time_message(schedule.end_minute),
                       timezone=schedule.timezone if named_zone else "")


def _number(field: FieldDescriptor, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"must be a number, got {value!r}")
    if field.type in _INTEGER_TYPES:
        if value != int(value):  # 5.0 is 5, as the engine reads it; 5.5 is no count
            raise ValueError(f"must be a whole number, got {value!r}")
        return int(value)
    return float(value)


def _parameters_message(kind: str, document: Mapping[str, Any], config_id: Any = None) -> Message:
    message = _MESSAGES[kind]()
    for name, value in document.items():
        field = message.DESCRIPTOR.fields_by_name.get(name)
        if field is None:  # an engine parameter rule.proto does not carry (max_gap, say): kept in storage
            continue
        try:
            if name == "allowed_hours":
                getattr(message, name).CopyFrom(allowed_hours_message(value, f"parameters.{name}"))
            elif field.message_type is not None:  # a Duration, stored in seconds
                getattr(message, name).FromTimedelta(timedelta(seconds=_number(field, value)))
            else:
                setattr(message, name, _number(field, value))
        except _UNREADABLE as exc:
            message.ClearField(name)
            log.warning("stored analytics parameter left out of the message", analytics_config_id=text(config_id),
                        parameter=f"{kind}.{name}", value=repr(value), error=str(exc))
    return message


def names_parameters(paths: list[str]) -> bool:
    """Whether an update mask's paths (as apply_mask gives them, "*" expanded) touch the parameters."""
    return any(path.split(".", 1)[0] in PARAMETER_FIELDS for path in paths)


def config_message(config: AnalyticsConfig) -> pb.AnalyticsConfig:
    message = pb.AnalyticsConfig(
        id=str(config.id), name=config.name, camera_id=str(config.camera_id), zone_id=text(config.zone_id),
        activity_type=ACTIVITY_TYPE.number(config.activity_type), severity=SEVERITY.number(config.severity),
        is_active=config.is_active, created_by=text(config.created_by), create_time=timestamp(config.created_at),
        update_time=timestamp(config.updated_at))
    kind = PARAMETERS_OF.get(config.activity_type)
    if kind is not None and config.parameters:
        # set even when every field was left out: the oneof still says which parameters the type takes
        getattr(message, kind).CopyFrom(_parameters_message(kind, config.parameters, config.id))
    return message
