"""Stored analytics configurations → AnalyticsConfig messages: parameters are read the way the
analytics engine reads them (allowed_hours in either spelling), and a stored value no message
field can hold is left out, never raised (a read must not answer INTERNAL)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from vigil.api.v1 import common_pb2
from vigil.api.v1 import rule_pb2 as pb
from vigil.control.rules.analytics_api import config_message, config_values
from vigil.control.schedule import Schedule
from vigil.storage.repositories.alerts import AnalyticsConfig

NOW = datetime(2026, 3, 6, tzinfo=timezone.utc)


def stored(activity: str, parameters: dict) -> AnalyticsConfig:
    return AnalyticsConfig(id=uuid.uuid4(), name="c", camera_id=uuid.uuid4(), zone_id=uuid.uuid4(),
                           activity_type=activity, analytic=f"{activity}@1", severity="medium", parameters=parameters, is_active=True,
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
