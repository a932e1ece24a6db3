"""Self-description of every analytic, and how a config's parameters are resolved."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.analytics.scripts import zone
from vigil.control.analytics import REGISTRY, ActivityType, ParameterError, ZoneThresholds
from vigil.control.analytics.after_hours import AfterHours
from vigil.control.analytics.crowding import Crowding
from vigil.control.analytics.dwell import DwellTime, Loitering
from vigil.control.analytics.parameters import stored_parameters
from vigil.control.analytics.running import Running
from vigil.control.analytics.zone_entry import Intrusion

PARAMETER_KEYS = {"name", "type", "default", "required", "unit", "minimum", "maximum",
                  "exclusive_minimum", "zone_threshold", "description", "choices"}


@pytest.mark.parametrize("ref", REGISTRY.refs())
def test_describe_is_complete(ref):
    described = REGISTRY[ref].describe()
    assert f'{described["name"]}@{described["version"]}' == described["analytic"] == ref
    assert described["activity_types"] and all(ActivityType(t) for t in described["activity_types"])
    assert len(described["summary"]) > 40
    assert set(described["zone"]) == {"required", "zone_types"} and described["zone"]["zone_types"]
    assert described["parameters"], "every analytic has at least its gap tolerance"
    for parameter in described["parameters"]:
        assert set(parameter) == PARAMETER_KEYS
        assert parameter["type"] in {"duration", "integer", "number", "schedule", "objects"}
        assert bool(parameter["choices"]) is (parameter["type"] == "objects")
        assert len(parameter["description"]) > 20
        assert parameter["required"] is (parameter["default"] is None and parameter["zone_threshold"] is None)
        if parameter["type"] in {"duration", "number", "integer"}:
            assert parameter["unit"] and parameter["default"] is not None
            assert parameter["minimum"] is not None and parameter["maximum"] is not None


def test_registry_covers_every_activity_the_pipeline_can_see():
    covered = {t for cls in REGISTRY for t in cls.activity_types}
    # fall and abandoned objects need detectors the pipeline does not have yet (rule.proto)
    assert covered == set(ActivityType) - {ActivityType.FALL, ActivityType.ABANDONED_OBJECT}


def test_defaults_come_from_the_description():
    assert Crowding().params == {"min_persons": 5, "min_duration": 5.0, "max_gap": 2.0}
    assert DwellTime(zone=zone()).params["min_duration"] == 60.0
    assert Loitering().params["min_duration"] == 120.0


def test_zone_thresholds_fill_unset_parameters_and_explicit_values_win():
    lobby = zone(thresholds=ZoneThresholds(dwell_threshold=30.0, loiter_threshold=45.0, crowd_threshold=8))
    assert DwellTime(zone=lobby).params["min_duration"] == 30.0
    assert Loitering(zone=lobby).params["min_duration"] == 45.0
    assert Crowding(zone=lobby).params["min_persons"] == 8
    assert Crowding(zone=lobby, parameters={"min_persons": 3}).params["min_persons"] == 3


def test_durations_accept_timedeltas_and_integers_accept_whole_floats():
    analytic = Running(parameters={"min_duration": timedelta(milliseconds=500)})
    assert analytic.params["min_duration"] == 0.5
    assert Crowding(parameters={"min_persons": 4.0}).params["min_persons"] == 4


@pytest.mark.parametrize("cls, kwargs, message", [
    (Crowding, {"parameters": {"min_persons": 1}}, r"parameters\.min_persons: must be >= 2 persons, got 1"),
    (Crowding, {"parameters": {"min_persons": 2.5}}, r"parameters\.min_persons: must be a whole number"),
    (Crowding, {"parameters": {"crowd": 3}}, r"parameters\.crowd: not a parameter of crowding"),
    (Running, {"parameters": {"min_speed": 0}}, r"parameters\.min_speed: must be > 0 person_heights/s, got 0"),
    (Running, {"parameters": {"min_speed": "fast"}}, r"parameters\.min_speed: must be a finite number, got 'fast'"),
    (Running, {"parameters": {"min_duration": True}}, r"parameters\.min_duration: must be a finite number"),
    (DwellTime, {"zone": zone(), "parameters": {"min_duration": 86401}}, r"parameters\.min_duration: must be <= 86400"),
    (Running, {"parameters": {"window": float("nan")}}, r"parameters\.window: must be a finite number"),
    (Running, {"parameters": {"window": "x" * 500}}, r"parameters\.window: must be a finite number, got 'x{36}\.\.\.$"),
    (Loitering, {"parameters": {"max_net_speed": 7}}, r"parameters\.max_net_speed: must be <= 5 person_heights/s"),
    (DwellTime, {}, "zone: required by dwell_time"),
    (Intrusion, {"zone": zone("interest")}, "zone: intrusion needs a zone of type restricted"),
    (Loitering, {"zone": zone("entry")}, "zone: loitering needs a zone of type interest, restricted"),
])
def test_bad_configuration_names_the_field(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_after_hours_requires_its_schedule():
    with pytest.raises(ValueError, match=r"parameters\.allowed_hours: is required by after_hours@1"):
        REGISTRY["after_hours@1"]()


def test_stored_form_keeps_only_what_was_set_in_canonical_form():
    stored = stored_parameters(Running.parameters, {"window": timedelta(seconds=2), "min_speed": 2}, analytic="r")
    assert stored == {"window": 2.0, "min_speed": 2.0}  # min_duration unset: it falls back at run time
    schedule = {"days": [1], "start": "08:00", "end": "18:00"}
    assert stored_parameters(AfterHours.parameters, {"allowed_hours": schedule}, analytic="a") == {
        "allowed_hours": {"days": [1], "start_time": "08:00", "end_time": "18:00"}}
    with pytest.raises(ParameterError) as refused:
        stored_parameters(AfterHours.parameters, {"max_gap": 1}, analytic="after_hours@1")
    assert (refused.value.field, refused.value.reason) == ("allowed_hours", "is required by after_hours@1")
    with pytest.raises(ParameterError) as refused:
        stored_parameters(AfterHours.parameters, {"allowed_hours": {**schedule, "end": "25:00"}}, analytic="a")
    assert refused.value.field == "allowed_hours.end"
