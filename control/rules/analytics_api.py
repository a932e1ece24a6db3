"""AnalyticsConfig messages <-> analytics_configs rows. What a configuration may hold is the analytic
unit's manifest (control/analytics: parameters with their types, bounds and defaults, zone needs):
this module only maps message fields onto it and its errors back onto message paths.

A configuration's parameters arrive in AnalyticsConfig.parameter_values (any parameter, by name)
and/or the typed oneof (dwell, crowd, ...: the fields of rule.proto kept for existing clients).
They are stored as a JSON object of the set parameters only, in the manifest's canonical form
(durations in seconds, schedules in the alert_rules.schedule spelling), so that an unset parameter
falls back to the zone's threshold, then to the manifest default, where the analytics read it.

Stored parameters are read the way the analytics engine reads them. A stored value the typed oneof
cannot hold (a key outside rule.proto, a malformed value written past the API) is left out of the
oneof and logged; parameter_values shows the stored object as it is. Reading a configuration never
fails on its parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from vigil.api.v1 import camera_pb2, common_pb2
from vigil.api.v1 import rule_pb2 as pb
from vigil.control.analytics import REGISTRY, ActivityType, Analytic, AnalyticsRegistry, ParameterError
from vigil.control.analytics.parameters import ParameterSpec, ParameterType, excerpt, stored_parameters
from vigil.control.convert import EnumMap, text, timestamp
from vigil.control.request_checks import checked_text
from vigil.control.rules.api_values import duration_seconds, optional_id, schedule_document, time_message
from vigil.control.schedule import Schedule
from vigil.errors import FailedPrecondition, InvalidArgument
from vigil.logs import get_logger
from vigil.storage.repositories.alerts import AnalyticsConfig

log = get_logger("vigil.control.rules")

PATH = "analytics_config"
VALUES = "parameter_values"
ACTIVITY_TYPE = EnumMap(common_pb2.ActivityType, "ACTIVITY_TYPE_", f"{PATH}.activity_type")
SEVERITY = EnumMap(common_pb2.Severity, "SEVERITY_", f"{PATH}.severity")
ZONE_TYPE = EnumMap(camera_pb2.ZoneType, "ZONE_TYPE_", "zone_type")

PARAMETER_FIELDS = ("dwell", "crowd", "speed", "repeated_entry", "after_hours")  # the typed parameters oneof
UPDATABLE = ("name", "zone_id", "severity", "is_active", "analytic", *PARAMETER_FIELDS, VALUES)
IMMUTABLE = ("camera_id", "activity_type")
UPDATABLE_COLUMNS = ("name", "zone_id", "severity", "parameters", "is_active", "analytic")
DEFAULT_SEVERITY = "medium"

# Which member of the typed oneof an activity type takes (rule.proto); its fields are named as the
# manifest's parameters. Bounds and defaults are the manifest's, never restated here.
TYPED_PARAMETERS = {"loitering": "dwell", "dwell_time": "dwell", "crowding": "crowd", "running": "speed",
                    "repeated_entry": "repeated_entry", "after_hours": "after_hours"}
_MESSAGES = {"dwell": pb.DwellParameters, "crowd": pb.CrowdParameters, "speed": pb.SpeedParameters,
             "repeated_entry": pb.RepeatedEntryParameters, "after_hours": pb.AfterHoursParameters}


def activity_enum_name(activity: str) -> str:
    return f"ACTIVITY_TYPE_{activity.upper()}"


def config_unit(config: pb.AnalyticsConfig, registry: AnalyticsRegistry = REGISTRY) -> tuple[str, type[Analytic]]:
    """The configuration's activity type label and the analytic unit that runs it."""
    activity = ACTIVITY_TYPE.label(config.activity_type)
    if registry.latest_for(ActivityType(activity)) is None:
        raise FailedPrecondition(f"{PATH}.activity_type: {activity_enum_name(activity)} needs a detector "
                                 "the pipeline does not have yet")
    try:
        return activity, registry.resolve(config.analytic or None, ActivityType(activity))
    except ValueError as exc:
        field, _, reason = str(exc).partition(": ")
        raise InvalidArgument(f"{PATH}.{field}", reason) from None


# --------------------------------------------------------------------------- parameters in


def _typed_value(path: str, message: Message, field: FieldDescriptor) -> Any:
    value = getattr(message, field.name)
    if field.message_type is not None and field.message_type.full_name == "google.protobuf.Duration":
        return duration_seconds(path, value)
    if field.message_type is not None:  # a Schedule
        return schedule_document(path, value)
    if field.type == FieldDescriptor.TYPE_FLOAT:
        return float(f"{value:.7g}") if math.isfinite(value) else value  # the float32 the client meant
    return value


def _plain(value: Any) -> Any:
    """A Struct value as the manifest reads it: JSON numbers are doubles, so whole ones become ints
    (days of a schedule, counts)."""
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Given:
    """Parameter values with where each came from (for error paths): a typed field, parameter_values,
    or the stored row."""

    def __init__(self, activity: str, unit: type[Analytic], stored: Mapping[str, Any] | None = None):
        self.activity, self.unit, self.kind = activity, unit, TYPED_PARAMETERS.get(activity)
        self.values: dict[str, Any] = dict(stored or {})
        self.paths: dict[str, str] = {name: self.stored_path(name) for name in self.values}

    def stored_path(self, name: str) -> str:
        """Where a parameter shows in the message: its typed field when the oneof has one."""
        if self.kind and name in _MESSAGES[self.kind].DESCRIPTOR.fields_by_name:
            return f"{PATH}.{self.kind}.{name}"
        return f"{PATH}.{VALUES}.{name}"

    def check_kind(self, kind: str) -> None:
        if kind != self.kind:
            takes = f"it takes {self.kind}" if self.kind else "it takes no typed parameters"
            raise InvalidArgument(f"{PATH}.{kind}", f"does not suit {activity_enum_name(self.activity)}; {takes}")

    def set(self, name: str, value: Any, path: str) -> None:
        if value is None:
            self.unset(name)
        else:
            self.values[name], self.paths[name] = value, path

    def unset(self, name: str) -> None:
        self.values.pop(name, None)
        self.paths.pop(name, None)

    def typed(self, config: pb.AnalyticsConfig, kind: str, names: Iterable[str] | None = None) -> None:
        """The typed fields `names` of config's oneof member `kind` (all when None); unset ones unset."""
        message = getattr(config, kind)
        for field in message.DESCRIPTOR.fields:
            if names is None or field.name in names:
                path = f"{PATH}.{kind}.{field.name}"
                self.set(field.name, _typed_value(path, message, field) if message.HasField(field.name) else None,
                         path)

    def from_struct(self, struct: struct_pb2.Struct, names: Iterable[str] | None = None) -> None:
        given = _plain(json_format.MessageToDict(struct))
        for name in (given if names is None else names):
            self.set(name, given.get(name), f"{PATH}.{VALUES}.{name}")

    def missing(self, name: str, reason: str) -> InvalidArgument:
        """A required parameter left out, naming the oneof member that would carry it (else its key)."""
        path = self.stored_path(name)
        if path == f"{PATH}.{self.kind}.{name}":
            path = f"{PATH}.{self.kind}"
        return InvalidArgument(path, f"is required for {activity_enum_name(self.activity)} ({self.unit.ref()}: "
                                     f"{reason})")

    def stored(self) -> dict[str, Any]:
        """The values checked against the manifest, in their stored form."""
        try:
            return stored_parameters(self.unit.parameters, self.values, analytic=self.unit.ref())
        except ParameterError as exc:
            root, _, rest = exc.field.partition(".")
            root, bracket, item = root.partition("[")  # "objects[1]": an item of a list parameter
            path = self.paths.get(root)
            if path is None:
                raise self.missing(root, exc.reason) from None
            if rest and path.endswith(f".{self.kind}.{root}") and self.kind == "after_hours":
                rest = _SCHEDULE_FIELDS.get(rest, rest)  # the message's spelling of a schedule part
            path += f"{bracket}{item}"
            raise InvalidArgument(f"{path}.{rest}" if rest else path, exc.reason) from None


_SCHEDULE_FIELDS = {"start_time": "start", "end_time": "end"}


def create_parameters(config: pb.AnalyticsConfig, activity: str, unit: type[Analytic]) -> dict[str, Any]:
    """The stored parameters of a create (or of a "*" update): the typed oneof and parameter_values
    together, one parameter given once."""
    given = _Given(activity, unit)
    kind = config.WhichOneof("parameters")
    if kind is not None:
        given.check_kind(kind)
        given.typed(config, kind)
    typed_values, typed_paths = dict(given.values), dict(given.paths)
    given.from_struct(config.parameter_values)
    for name, value in typed_values.items():
        if not _same(unit, name, value, given.values.get(name)):
            raise InvalidArgument(f"{PATH}.{VALUES}.{name}", f"differs from {typed_paths[name]}; give it once")
    return given.stored()


def _same(unit: type[Analytic], name: str, typed: Any, value: Any) -> bool:
    """Whether a parameter given in both forms says the same (as a message read back and sent whole
    does)."""
    if value is None or value == typed:
        return True
    spec = next((spec for spec in unit.parameters if spec.name == name), None)
    try:
        return spec is not None and spec.stored(spec.coerce(value)) == spec.stored(spec.coerce(typed))
    except ParameterError:
        return False


def updated_parameters(stored: Mapping[str, Any], request: pb.AnalyticsConfig, paths: list[str], activity: str,
                       unit: type[Analytic]) -> dict[str, Any]:
    """The stored parameters after an update: the stored ones with the masked paths applied (a path
    whose value the request leaves unset unsets the parameter, so it falls back), checked whole."""
    if VALUES in paths and any(path.split(".", 1)[0] in PARAMETER_FIELDS for path in paths):
        return create_parameters(request, activity, unit)  # both forms replaced: as a create
    given = _Given(activity, unit, stored)
    if VALUES in paths:
        given = _Given(activity, unit)
        given.from_struct(request.parameter_values)
    for path in paths:
        root, _, rest = path.partition(".")
        if root in PARAMETER_FIELDS:
            if request.WhichOneof("parameters") == root or rest or root == given.kind:
                given.check_kind(root)
                given.typed(request, root, [rest.split(".", 1)[0]] if rest else None)
        elif root == VALUES and rest:  # a part of a parameter (a schedule's) replaces the parameter
            given.from_struct(request.parameter_values, [rest.split(".", 1)[0]])
    return given.stored()


def check_stored_parameters(stored: Mapping[str, Any], activity: str, unit: type[Analytic]) -> None:
    """An update that leaves the parameters as stored: refused only when the unit could not run
    them (a required parameter unreadable), naming it; other unreadable values stay as they are
    (the engine reports them), as a read shows them."""
    given = _Given(activity, unit, stored)
    for spec in unit.parameters:
        if not spec.required:
            continue
        if spec.name not in given.values:
            raise given.missing(spec.name, f"is required by {unit.ref()}")
        try:
            spec.coerce(given.values[spec.name])
        except ParameterError as exc:
            raise InvalidArgument(given.stored_path(spec.name), f"the stored value cannot be used ({exc.reason}); "
                                                                f"set it") from None


def names_parameters(paths: list[str]) -> bool:
    """Whether an update mask's paths (as apply_mask gives them, "*" expanded) touch the parameters."""
    return any(path.split(".", 1)[0] in (*PARAMETER_FIELDS, VALUES) for path in paths)


def config_values(config: pb.AnalyticsConfig, parameters: dict[str, Any] | None = None,
                  registry: AnalyticsRegistry = REGISTRY) -> dict[str, Any]:
    """The stored values of a configuration message, checked completely (a create, or an update's
    result with its parameters worked out by updated_parameters). The zone's camera and type are
    checked by the service, inside its transaction."""
    activity, unit = config_unit(config, registry)
    values = {
        "name": checked_text(f"{PATH}.name", config.name, 200, required=True),
        "camera_id": optional_id(f"{PATH}.camera_id", config.camera_id),
        "zone_id": optional_id(f"{PATH}.zone_id", config.zone_id),
        "activity_type": activity,
        "analytic": unit.ref(),
        "severity": SEVERITY.label(config.severity, required=False) or DEFAULT_SEVERITY,
        "is_active": config.is_active if config.HasField("is_active") else True,
        "parameters": create_parameters(config, activity, unit) if parameters is None else parameters,
    }
    if values["camera_id"] is None:
        raise InvalidArgument(f"{PATH}.camera_id", "is required")
    if unit.zone_required and values["zone_id"] is None:
        raise InvalidArgument(f"{PATH}.zone_id", f"is required for {activity_enum_name(activity)} ({unit.ref()})")
    return values


def check_zone_type(values: Mapping[str, Any], zone_type: str, registry: AnalyticsRegistry = REGISTRY) -> None:
    """The configuration's zone is of a type its unit runs on (the manifest's zone_types)."""
    unit = registry[values["analytic"]]
    if zone_type not in {t.value for t in unit.zone_types}:
        allowed = ", ".join(sorted(t.value for t in unit.zone_types))
        raise InvalidArgument(f"{PATH}.zone_id", f"{unit.ref()} runs on zones of type {allowed}, not {zone_type}")


# A stored value that cannot become its message field: logged and left out, never raised.
_UNREADABLE = (ValueError, TypeError, OverflowError, AttributeError, OSError)  # OSError: a zone name ZoneInfo trips on
_INTEGER_TYPES = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
                  FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64)


def allowed_hours_message(document: Any, field: str = "allowed_hours") -> pb.Schedule:
    """A stored allowed_hours schedule as the analytics engine reads it (control/schedule.py):
    "start"/"end" or "start_time"/"end_time"; no days = every day; no time zone = the site's.
    ValueError when the engine would refuse it too."""
    schedule = Schedule.from_json(document, field=field)
    return pb.Schedule(days=sorted(schedule.days), start=time_message(schedule.window.start),
                       end=time_message(schedule.window.end), timezone=schedule.timezone or "")


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


def _values_struct(parameters: Mapping[str, Any], config_id: Any) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    for name, value in parameters.items():
        try:
            struct.update({name: value})
        except _UNREADABLE as exc:
            log.warning("stored analytics parameter left out of the message", analytics_config_id=text(config_id),
                        parameter=f"{VALUES}.{name}", value=excerpt(value), error=str(exc))
    return struct


def config_message(config: AnalyticsConfig) -> pb.AnalyticsConfig:
    message = pb.AnalyticsConfig(
        id=str(config.id), name=config.name, camera_id=str(config.camera_id), zone_id=text(config.zone_id),
        activity_type=ACTIVITY_TYPE.number(config.activity_type), severity=SEVERITY.number(config.severity),
        is_active=config.is_active, created_by=text(config.created_by), create_time=timestamp(config.created_at),
        update_time=timestamp(config.updated_at), analytic=config.analytic,
        parameter_values=_values_struct(config.parameters, config.id))
    kind = TYPED_PARAMETERS.get(config.activity_type)
    if kind is not None and config.parameters:
        # set even when every field was left out: the oneof still says which parameters the type takes
        getattr(message, kind).CopyFrom(_parameters_message(kind, config.parameters, config.id))
    return message


# --------------------------------------------------------------------------- manifests out

_PARAMETER_TYPE = {ParameterType.DURATION: pb.ANALYTIC_PARAMETER_TYPE_DURATION,
                   ParameterType.INTEGER: pb.ANALYTIC_PARAMETER_TYPE_INTEGER,
                   ParameterType.NUMBER: pb.ANALYTIC_PARAMETER_TYPE_NUMBER,
                   ParameterType.SCHEDULE: pb.ANALYTIC_PARAMETER_TYPE_SCHEDULE,
                   ParameterType.OBJECTS: pb.ANALYTIC_PARAMETER_TYPE_OBJECTS}


def parameter_message(spec: ParameterSpec) -> pb.AnalyticParameter:
    message = pb.AnalyticParameter(name=spec.name, type=_PARAMETER_TYPE[spec.type], unit=spec.unit or "",
                                   exclusive_minimum=spec.exclusive_minimum, required=spec.required,
                                   zone_threshold=spec.zone_threshold or "", description=spec.description,
                                   choices=spec.choices)
    if isinstance(spec.default, tuple):  # a list parameter (OBJECTS)
        message.default_choices.extend(spec.default)
    elif spec.default is not None:
        message.default_value = spec.default
    for field, value in (("minimum", spec.minimum), ("maximum", spec.maximum)):
        if value is not None:
            setattr(message, field, value)
    return message


def analytic_message(unit: type[Analytic], registry: AnalyticsRegistry = REGISTRY) -> pb.Analytic:
    """A unit's manifest (Analytic.describe's facts) as ListAnalytics returns it."""
    return pb.Analytic(
        analytic=unit.ref(), name=unit.name, version=unit.version, summary=unit.summary,
        activity_types=[ACTIVITY_TYPE.number(t.value) for t in unit.activity_types],
        zone_required=unit.zone_required,
        zone_types=sorted(ZONE_TYPE.number(t.value) for t in unit.zone_types),
        parameters=[parameter_message(spec) for spec in unit.parameters],
        latest=all(registry.latest_for(t) is unit for t in unit.activity_types))
