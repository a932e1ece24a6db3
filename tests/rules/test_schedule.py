"""Schedules and quiet hours (control/schedule.py, shared by alert rules and the after_hours analytic):
days from Sunday = 0, windows crossing midnight, time zones (the schedule's, else the site's)
including a local weekday that differs from UTC's, and daylight saving. Rules are exercised through
the evaluator; the analytics' reading (the "start"/"end" spelling, a zone settled at configuration
time) directly, and both must agree."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.rules.builders import event, rule
from vigil.control.analytics.after_hours import AfterHours
from vigil.control.rules import QuietHours, RuleEvaluator, Schedule, ScheduleError
from vigil.storage.repositories.alerts import ALL_WEEK

evaluate = RuleEvaluator().evaluate


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def armed(schedule, when, *, quiet_hours=None, site_timezone="UTC") -> bool:
    """Whether a rule with this schedule (None: all week) and quiet hours fires at `when`."""
    r = rule(schedule=schedule or ALL_WEEK, quiet_hours=quiet_hours)
    return bool(evaluate([r], event(observed_at=when, site_timezone=site_timezone)))


# 2026-03-06 is a Friday, 2026-03-07 a Saturday, 2026-03-08 a Sunday.
FRIDAY_NIGHTS = {"days": [5], "start_time": "22:00", "end_time": "06:00"}


@pytest.mark.parametrize(("when", "expected"), [
    (utc(2026, 3, 6, 21, 59), False),  # Friday, before the window opens
    (utc(2026, 3, 6, 22, 0), True),  # Friday, opens (start inclusive)
    (utc(2026, 3, 6, 23, 59, 59), True),
    (utc(2026, 3, 7, 0, 0), True),  # Saturday morning still belongs to Friday's window
    (utc(2026, 3, 7, 5, 59, 59), True),
    (utc(2026, 3, 7, 6, 0), False),  # closes (end exclusive)
    (utc(2026, 3, 7, 23, 0), False),  # Saturday night: Saturday is not listed
    (utc(2026, 3, 6, 3, 0), False),  # Friday early morning belongs to Thursday's (unlisted) window
])
def test_a_window_crossing_midnight_belongs_to_the_day_it_opens(when, expected):
    assert armed(FRIDAY_NIGHTS, when) is expected


def test_days_count_from_sunday_and_empty_days_mean_every_day():
    office = {"days": [1, 2, 3, 4, 5], "start_time": "08:00", "end_time": "18:00"}
    assert armed(office, utc(2026, 3, 2, 9, 0))  # Monday
    assert not armed(office, utc(2026, 3, 1, 9, 0))  # Sunday
    assert armed({"days": [0], "start_time": "08:00", "end_time": "18:00"}, utc(2026, 3, 1, 9, 0))
    assert armed({"days": [], "start_time": "08:00", "end_time": "18:00"}, utc(2026, 3, 7, 9, 0))
    assert not armed(office, utc(2026, 3, 2, 18, 0))


def test_equal_start_and_end_mean_the_whole_day_and_24_00_ends_it():
    saturday = {"days": [6], "start_time": "07:30", "end_time": "07:30"}
    assert armed(saturday, utc(2026, 3, 7, 0, 0)) and armed(saturday, utc(2026, 3, 7, 23, 59, 59))
    assert not armed(saturday, utc(2026, 3, 8, 0, 0))
    evening = {"days": [6], "start_time": "18:00", "end_time": "24:00"}
    assert armed(evening, utc(2026, 3, 7, 23, 59, 59)) and not armed(evening, utc(2026, 3, 8, 0, 0))


def test_the_local_weekday_of_the_schedules_time_zone_decides():
    # Sunday 20:00 UTC is Monday 04:00 in Singapore (UTC+8)
    sunday_evening_utc = utc(2026, 3, 1, 20, 0)
    monday_early = {"days": [1], "start_time": "00:00", "end_time": "08:00", "timezone": "Asia/Singapore"}
    assert armed(monday_early, sunday_evening_utc)
    assert not armed({**monday_early, "timezone": "UTC"}, sunday_evening_utc)
    # without a zone of its own the schedule is read in the camera site's zone
    site_local = {"days": [1], "start_time": "00:00", "end_time": "08:00"}
    assert armed(site_local, sunday_evening_utc, site_timezone="Asia/Singapore")
    assert not armed(site_local, sunday_evening_utc, site_timezone="UTC")


def test_daylight_saving_follows_the_zones_rules():
    office = {"days": [], "start_time": "09:00", "end_time": "17:00", "timezone": "America/New_York"}
    assert armed(office, utc(2026, 7, 1, 13, 30))  # 09:30 EDT
    assert not armed(office, utc(2026, 1, 7, 13, 30))  # 08:30 EST


def test_quiet_hours_silence_a_rule_even_across_midnight_unless_disabled():
    lunch = {"start": "12:00", "end": "13:00", "enabled": True}
    assert not armed(None, utc(2026, 3, 1, 12, 30), quiet_hours=lunch)
    assert armed(None, utc(2026, 3, 1, 13, 0), quiet_hours=lunch)
    assert armed(None, utc(2026, 3, 1, 12, 30), quiet_hours={**lunch, "enabled": False})
    nights = {"start": "23:00", "end": "05:00", "enabled": True}
    assert not armed(None, utc(2026, 3, 1, 23, 30), quiet_hours=nights)
    assert not armed(None, utc(2026, 3, 2, 4, 59), quiet_hours=nights)
    assert armed(None, utc(2026, 3, 2, 5, 0), quiet_hours=nights)
    # quiet hours are read in the schedule's zone: 12:30 in Singapore is 04:30 UTC
    singapore = {"days": [], "start_time": "00:00", "end_time": "00:00", "timezone": "Asia/Singapore"}
    assert not armed(singapore, utc(2026, 3, 1, 4, 30), quiet_hours=lunch)
    assert armed(singapore, utc(2026, 3, 1, 12, 30), quiet_hours=lunch)


@pytest.mark.parametrize(("document", "field"), [
    ({"days": [7], "start_time": "08:00", "end_time": "09:00"}, "schedule.days[0]"),
    ({"days": [1, 1], "start_time": "08:00", "end_time": "09:00"}, "schedule.days[1]"),
    ({"days": "weekdays", "start_time": "08:00", "end_time": "09:00"}, "schedule.days"),
    ({"days": [1], "start_time": "24:00", "end_time": "09:00"}, "schedule.start_time"),
    ({"days": [1], "start_time": "8am", "end_time": "09:00"}, "schedule.start_time"),
    ({"days": [1], "start_time": "08:00", "end_time": "24:01"}, "schedule.end_time"),
    ({"days": [1], "start_time": "08:00"}, "schedule.end_time"),
    ({"days": [1], "start_time": "08:00", "end_time": "09:00", "timezone": "Mars/Olympus"}, "schedule.timezone"),
    ({"days": [1], "start_time": "08:00", "end_time": "09:00", "timezone": "../../etc/passwd"}, "schedule.timezone"),
    ({"days": [1], "start_time": "08:00", "end_time": "09:00", "timezone": "America"}, "schedule.timezone"),
])
def test_invalid_schedules_are_value_errors_naming_the_field(document, field):
    with pytest.raises(ValueError) as refused:
        Schedule.from_json(document)
    assert isinstance(refused.value, ScheduleError) and refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


def test_invalid_quiet_hours_name_the_field():
    with pytest.raises(ScheduleError) as refused:
        QuietHours.from_json({"start": "12:00", "end": "25:00"})
    assert refused.value.field == "quiet_hours.end"
    with pytest.raises(ScheduleError) as refused:
        QuietHours.from_json({"start": "12:00", "end": "13:00", "enabled": "yes"})
    assert refused.value.field == "quiet_hours.enabled"


# --------------------------------------------------------------------------- as the analytics read it


@pytest.mark.parametrize("when", [utc(2026, 3, 6, 21, 59), utc(2026, 3, 6, 22, 0), utc(2026, 3, 7, 5, 59, 59),
                                  utc(2026, 3, 7, 6, 0), utc(2026, 3, 7, 23, 0), utc(2026, 3, 6, 3, 0)])
@pytest.mark.parametrize("site_timezone", ["UTC", "Asia/Singapore"])
def test_after_hours_reads_a_schedule_exactly_as_an_alert_rule_does(when, site_timezone):
    allowed = AfterHours(parameters={"allowed_hours": FRIDAY_NIGHTS}, site_timezone=site_timezone).params
    assert allowed["allowed_hours"].contains(when) is armed(FRIDAY_NIGHTS, when, site_timezone=site_timezone)


def test_the_start_end_spelling_reads_as_start_time_end_time_and_is_stored_in_the_latter():
    engine_spelling = Schedule.from_json({"days": [5], "start": "22:00", "end": "06:00"}, "allowed_hours")
    assert engine_spelling == Schedule.from_json(FRIDAY_NIGHTS)
    assert engine_spelling.to_json() == {"days": [5], "start_time": "22:00", "end_time": "06:00"}
    with pytest.raises(ScheduleError) as refused:
        Schedule.from_json({"days": [5], "start": "22:00", "end": "6"}, "allowed_hours")
    assert refused.value.field == "allowed_hours.end"


def test_a_schedule_without_zone_takes_the_sites_when_settled_and_needs_one():
    site_local = Schedule.from_json({"days": [1], "start_time": "00:00", "end_time": "08:00"})
    assert site_local.in_zone("Asia/Singapore").timezone == "Asia/Singapore"
    assert site_local.in_zone("Asia/Singapore").contains(utc(2026, 3, 1, 20, 0))  # Monday 04:00 there
    assert Schedule.from_json({**FRIDAY_NIGHTS, "timezone": "UTC"}).in_zone("Asia/Singapore").timezone == "UTC"
    with pytest.raises(ScheduleError) as refused:
        site_local.in_zone(None, "allowed_hours")
    assert refused.value.field == "allowed_hours.timezone"


def test_local_day_and_time_are_the_zones():
    tokyo = Schedule.from_json({"days": [1], "start_time": "09:00", "end_time": "18:00", "timezone": "Asia/Tokyo"})
    assert tokyo.local_day_and_time(utc(2025, 3, 9, 23, 30)) == ("monday", "2025-03-10T08:30:00+09:00")
