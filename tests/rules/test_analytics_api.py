"""Stored analytics configurations → AnalyticsConfig messages: parameters are read the way the
analytics engine reads them (allowed_hours in either spelling), and a stored value no message
field can hold is left out, never raised (a read must not answer INTERNAL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from google.protobuf import duration_pb2, struct_pb2

from tests.analytics.versions import VERSIONED
from vigil.api.v1 import camera_pb2, common_pb2
from vigil.api.v1 import rule_pb2 as pb
from vigil.control.analytics import REGISTRY
from vigil.control.rules.analytics_api import analytic_message, config_message, config_values
from vigil.control.schedule import Schedule
from vigil.errors import InvalidArgument
from vigil.storage.repositories.alerts import AnalyticsConfig

NOW = datetime(2026, 3, 6, tzinfo=UTC)


def stored(activity: str, parameters: dict) -> AnalyticsConfig:
    return AnalyticsConfig(id=uuid.uuid4(), name="c", camera_id=uuid.uuid4(), zone_id=uuid.uuid4(),
                           activity_type=activity, analytic=f"{activity}@1", severity="medium", parameters=parameters,
                           is_active=True,
                           created_by=None, created_at=NOW, updated_at=NOW)


def at(hours: int, minutes: int = 0) -> pb.LocalTime:
    return pb.LocalTime(hours=hours, minutes=minutes)


@pytest.mark.parametrize("document", [
    {"days": [1, 2], "start": "08:00", "end": "18:00", "timezone": "UTC"},  # the engine's spelling
    {"days": [1, 2], "start_time": "08:00", "end_time": "18:00", "timezone": "UTC"},  # the API's
])
def test_both_spellings_of_allowed_hours_read_alike_and_as_the_engine_reads_them(document):
    message = config_message(stored("after_hours", {"allowed_hours": document}))
    assert message.after_hours.allowed_hours == pb.Schedule(days=[1, 2], start=at(8), end=at(18), timezone="UTC")
    engine = Schedule.from_json(document)
    assert (engine.window.start, engine.window.end, sorted(engine.days)) == (8 * 60, 18 * 60, [1, 2])
    # and what the API would store for it is the same window
    assert config_values(message)["parameters"] == {
        "allowed_hours": {"days": [1, 2], "start_time": "08:00", "end_time": "18:00", "timezone": "UTC"}}


def test_allowed_hours_without_days_or_zone_stay_every_day_in_the_sites_zone():
    message = config_message(stored("after_hours", {"allowed_hours": {"start": "22:00", "end": "24:00"}}))
    assert message.after_hours.allowed_hours == pb.Schedule(start=at(22), end=at(24))


@pytest.mark.parametrize("allowed_hours", [
    {"start": "08:00"}, {"start_time": None, "end_time": "09:00"}, {"start": "25:00", "end": "09:00"},
    {"start": "08:00", "end": "09:00", "timezone": "Mars/Olympus"}, {"start": "08:00", "end": "09:00",
                                                                      "timezone": "America"},
    {"days": [7], "start": "08:00", "end": "09:00"}, {"days": "weekdays", "start": "08:00", "end": "09:00"},
    "08:00-09:00", None, [],
])
def test_an_allowed_hours_the_engine_refuses_is_left_out_not_raised(allowed_hours):
    message = config_message(stored("after_hours", {"allowed_hours": allowed_hours}))
    assert message.activity_type == common_pb2.ACTIVITY_TYPE_AFTER_HOURS
    assert message.WhichOneof("parameters") == "after_hours" and not message.after_hours.HasField("allowed_hours")


def test_numbers_the_fields_cannot_hold_are_left_out_and_the_rest_kept():
    crowd = config_message(stored("crowding", {"min_persons": 5.0, "min_duration": "soon", "max_gap": 3})).crowd
    assert crowd.min_persons == 5 and not crowd.HasField("min_duration")
    entries = config_message(stored("repeated_entry", {"min_entries": 1e30, "window": float("inf")})).repeated_entry
    assert not entries.HasField("min_entries") and not entries.HasField("window")
    speed = config_message(stored("running", {"min_speed": True, "min_duration": 2})).speed
    assert not speed.HasField("min_speed") and speed.min_duration.seconds == 2
    dwell = config_message(stored("loitering", {"min_duration": 2.5})).dwell
    assert (dwell.min_duration.seconds, dwell.min_duration.nanos) == (2, 500_000_000)


# --------------------------------------------------------------------------- the manifest drives validation


def loitering(**fields) -> pb.AnalyticsConfig:
    return pb.AnalyticsConfig(name="c", camera_id=str(uuid.uuid4()), activity_type=common_pb2.ACTIVITY_TYPE_LOITERING,
                              **fields)


def values_struct(**values) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def refusal(config: pb.AnalyticsConfig, **kwargs) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as refused:
        config_values(config, **kwargs)
    return refused.value


def test_every_manifest_parameter_is_settable_through_parameter_values():
    values = config_values(loitering(parameter_values=values_struct(max_net_speed=0.35, max_gap=4)))
    assert (values["analytic"], values["parameters"]) == ("loitering@2", {"max_net_speed": 0.35, "max_gap": 4.0})
    running = pb.AnalyticsConfig(name="r", camera_id=str(uuid.uuid4()), activity_type=common_pb2.ACTIVITY_TYPE_RUNNING,
                                 speed=pb.SpeedParameters(min_speed=2), parameter_values=values_struct(window=2.5))
    assert config_values(running)["parameters"] == {"min_speed": 2.0, "window": 2.5}


@pytest.mark.parametrize("given, field, reason", [
    ({"max_net_speed": 7}, "parameter_values.max_net_speed", "must be <= 5 person_heights/s, got 7"),
    ({"max_net_speed": 0}, "parameter_values.max_net_speed", "must be > 0 person_heights/s, got 0"),
    ({"max_net_speed": "z" * 300}, "parameter_values.max_net_speed", "must be a finite number, got 'zzz"),
    ({"min_duration": 0.5}, "parameter_values.min_duration", "must be >= 1 s, got 0.5"),
    ({"window": 3}, "parameter_values.window", "not a parameter of loitering@2 (known: max_gap, max_net_speed, "),
])
def test_out_of_manifest_values_name_the_field_with_an_excerpt(given, field, reason):
    refused = refusal(loitering(parameter_values=values_struct(**given)))
    assert refused.field == f"analytics_config.{field}" and refused.message.startswith(reason)
    assert len(str(refused)) < 160  # an excerpt of the value, not the value


def test_bounds_follow_the_manifest_in_the_typed_fields_too():
    refused = refusal(loitering(dwell=pb.DwellParameters(min_duration=duration_pb2.Duration(seconds=86401))))
    assert (refused.field, refused.message) == ("analytics_config.dwell.min_duration", "must be <= 86400 s, got 86401")


def test_a_parameter_given_in_both_forms_must_agree():
    same = loitering(dwell=pb.DwellParameters(min_duration=duration_pb2.Duration(seconds=90)),
                     parameter_values=values_struct(min_duration=90))
    assert config_values(same)["parameters"] == {"min_duration": 90.0}
    differing = loitering(dwell=pb.DwellParameters(min_duration=duration_pb2.Duration(seconds=90)),
                          parameter_values=values_struct(min_duration=91))
    assert refusal(differing).field == "analytics_config.parameter_values.min_duration"


def test_a_read_configuration_sent_back_whole_is_accepted_unchanged():
    message = config_message(stored("loitering", {"min_duration": 90.0, "max_net_speed": 0.3}))
    assert message.dwell.min_duration.seconds == 90 and message.parameter_values["max_net_speed"] == 0.3
    assert config_values(message)["parameters"] == {"min_duration": 90.0, "max_net_speed": 0.3}


def test_configurations_name_and_resolve_a_version_of_the_registry():
    assert config_values(loitering(), registry=VERSIONED)["analytic"] == "loitering@2"
    pinned = config_values(loitering(analytic="loitering@1"), registry=VERSIONED)
    assert pinned["analytic"] == "loitering@1"
    # a parameter only version 2 has
    assert config_values(loitering(parameter_values=values_struct(min_persons_nearby=2)),
                         registry=VERSIONED)["parameters"] == {"min_persons_nearby": 2}
    assert refusal(loitering(analytic="loitering@1", parameter_values=values_struct(min_persons_nearby=2)),
                   registry=VERSIONED).field == "analytics_config.parameter_values.min_persons_nearby"
    assert refusal(loitering(analytic="crowding@1"), registry=VERSIONED).field == "analytics_config.analytic"
    assert refusal(loitering(analytic="loitering@9"), registry=VERSIONED).field == "analytics_config.analytic"


def test_a_required_zone_follows_the_manifest():
    dwell = pb.AnalyticsConfig(name="d", camera_id=str(uuid.uuid4()), activity_type=common_pb2.ACTIVITY_TYPE_DWELL_TIME)
    assert refusal(dwell).field == "analytics_config.zone_id"


@pytest.mark.parametrize("ref", REGISTRY.refs())
def test_list_analytics_carries_the_whole_manifest(ref):
    unit = REGISTRY[ref]
    message = analytic_message(unit)
    described = unit.describe()
    assert (message.analytic, message.name, message.version, message.summary, message.zone_required) == (
        described["analytic"], described["name"], described["version"], described["summary"],
        described["zone"]["required"])
    assert [common_pb2.ActivityType.Name(t) for t in message.activity_types] == [
        f"ACTIVITY_TYPE_{t.upper()}" for t in described["activity_types"]]
    assert sorted(camera_pb2.ZoneType.Name(t) for t in message.zone_types) == [
        f"ZONE_TYPE_{t.upper()}" for t in described["zone"]["zone_types"]]
    for parameter, spec in zip(message.parameters, described["parameters"], strict=True):
        read = {"name": parameter.name, "type": pb.AnalyticParameterType.Name(parameter.type)
                .removeprefix("ANALYTIC_PARAMETER_TYPE_").lower(),
                "default": (list(parameter.default_choices) if parameter.default_choices else
                            parameter.default_value if parameter.HasField("default_value") else None),
                "required": parameter.required, "unit": parameter.unit or None,
                "minimum": parameter.minimum if parameter.HasField("minimum") else None,
                "maximum": parameter.maximum if parameter.HasField("maximum") else None,
                "exclusive_minimum": parameter.exclusive_minimum, "zone_threshold": parameter.zone_threshold or None,
                "description": parameter.description, "choices": list(parameter.choices)}
        assert read == spec
    # the zone units' version 2 (watching vehicles too) supersedes their version 1
    assert message.latest is (unit.version == "2" or f"{unit.name}@2" not in REGISTRY.refs())


def test_the_objects_a_zone_unit_watches_are_set_by_name_and_refused_naming_the_item():
    values = config_values(loitering(parameter_values=values_struct(objects=["truck", "bus"], min_duration=30)))
    assert (values["analytic"], values["parameters"]) == ("loitering@2", {"objects": ["truck", "bus"],
                                                                          "min_duration": 30.0})
    read_back = config_message(AnalyticsConfig(**{**stored("loitering", values["parameters"]).__dict__,
                                                  "analytic": "loitering@2"}))
    assert list(read_back.parameter_values["objects"]) == ["truck", "bus"]
    assert config_values(read_back)["parameters"] == values["parameters"]  # sent back whole: unchanged
    boat = refusal(loitering(parameter_values=values_struct(objects=["truck", "boat"])))
    assert (boat.field, boat.message) == ("analytics_config.parameter_values.objects[1]",
                                          "must be one of person, vehicle, bicycle, bus, car, motorcycle, truck, "
                                          "got 'boat'")
    pinned = refusal(loitering(analytic="loitering@1", parameter_values=values_struct(objects=["truck"])))
    assert pinned.message.startswith("not a parameter of loitering@1")
