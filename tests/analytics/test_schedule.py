"""Weekly schedules: days from Sunday, windows crossing midnight, local days in a time zone."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from vigil.control.analytics import WeeklySchedule


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


BUSINESS = WeeklySchedule.parse({"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "18:00", "timezone": "UTC"})


@pytest.mark.parametrize("moment, inside", [
    (utc(2025, 3, 7, 8, 0), True),  # Friday, opening minute
    (utc(2025, 3, 7, 17, 59, 59), True),
    (utc(2025, 3, 7, 18, 0), False),  # end is exclusive
    (utc(2025, 3, 7, 7, 59, 59), False),
    (utc(2025, 3, 8, 12, 0), False),  # Saturday
    (utc(2025, 3, 9, 12, 0), False),  # Sunday is day 0, not listed
])
def test_business_hours(moment, inside):
    assert BUSINESS.contains(moment) is inside


NIGHT_SHIFT = WeeklySchedule.parse({"days": [5], "start": "22:00", "end": "06:00", "timezone": "UTC"})


@pytest.mark.parametrize("moment, inside", [
    (utc(2025, 3, 7, 21, 59), False),  # Friday before it opens
    (utc(2025, 3, 7, 22, 0), True),  # Friday 22:00 opens
    (utc(2025, 3, 8, 0, 0), True),  # Saturday after midnight: Friday's window runs on
    (utc(2025, 3, 8, 5, 59, 59), True),
    (utc(2025, 3, 8, 6, 0), False),  # Saturday 06:00 closes
    (utc(2025, 3, 8, 22, 30), False),  # Saturday's own evening: Saturday not listed
    (utc(2025, 3, 7, 3, 0), False),  # Friday early morning belongs to Thursday's (absent) window
])
def test_window_crossing_midnight_belongs_to_the_day_it_opens(moment, inside):
    assert NIGHT_SHIFT.contains(moment) is inside


def test_days_are_local_days_of_the_time_zone():
    tokyo = WeeklySchedule.parse({"days": [1], "start": "09:00", "end": "18:00", "timezone": "Asia/Tokyo"})
    # Sunday 23:30 UTC is Monday 08:30 in Tokyo: before opening
    assert not tokyo.contains(utc(2025, 3, 9, 23, 30))
    # Monday 00:30 UTC is Monday 09:30 in Tokyo: open (in UTC it would be Monday night-time)
    assert tokyo.contains(utc(2025, 3, 10, 0, 30))
    # Monday 10:00 UTC is Monday 19:00 in Tokyo: closed
    assert not tokyo.contains(utc(2025, 3, 10, 10, 0))


def test_daylight_saving_follows_the_zone():
    london = WeeklySchedule.parse({"days": [1], "start": "09:00", "end": "17:00", "timezone": "Europe/London"})
    assert london.contains(utc(2025, 3, 24, 9, 30))  # Monday, GMT: 09:30 local
    assert london.contains(utc(2025, 3, 31, 8, 30))  # Monday after the change, BST: 09:30 local
    assert not london.contains(utc(2025, 3, 31, 16, 30))  # 17:30 BST


def test_equal_start_and_end_is_the_whole_day_and_no_days_is_every_day():
    whole_sunday = WeeklySchedule.parse({"days": [0], "start": "07:00", "end": "07:00", "timezone": "UTC"})
    assert whole_sunday.contains(utc(2025, 3, 9, 0, 0)) and whole_sunday.contains(utc(2025, 3, 9, 23, 59))
    assert not whole_sunday.contains(utc(2025, 3, 10, 0, 0))
    every_day = WeeklySchedule.parse({"start": "00:00", "end": "24:00", "timezone": "UTC"})
    assert every_day.days == frozenset(range(7)) and every_day.contains(utc(2025, 3, 8, 23, 59, 59))


def test_a_schedule_without_time_zone_is_read_in_the_sites():
    document = {"days": [1], "start": "09:00", "end": "18:00"}
    assert WeeklySchedule.parse(document, site_timezone="Asia/Tokyo").timezone == "Asia/Tokyo"
    assert WeeklySchedule.parse({**document, "timezone": "UTC"}, site_timezone="Asia/Tokyo").timezone == "UTC"


def test_alert_rule_spelling_is_accepted():
    schedule = WeeklySchedule.parse({"days": [5], "start_time": "08:00", "end_time": "18:00", "timezone": "UTC"})
    assert schedule.describe() == {"days": [5], "start": "08:00", "end": "18:00", "timezone": "UTC"}


@pytest.mark.parametrize("value, message", [
    ({"days": [7], "start": "08:00", "end": "18:00", "timezone": "UTC"}, r"allowed_hours\.days: a list of days 0"),
    ({"days": [1, 1], "start": "08:00", "end": "18:00", "timezone": "UTC"},
     r"allowed_hours\.days: each day at most once"),
    ({"start": "8", "end": "18:00", "timezone": "UTC"}, r"allowed_hours\.start: must be \"HH:MM\""),
    ({"start": "24:00", "end": "18:00", "timezone": "UTC"}, r"allowed_hours\.start: must be within 00:00\.\.23:59"),
    ({"start": "08:00", "end": "24:30", "timezone": "UTC"}, r"allowed_hours\.end: must be within 00:00\.\.24:00"),
    ({"start": "08:00", "timezone": "UTC"}, r"allowed_hours\.end: required"),
    ({"start": "08:00", "end": "18:00"}, r"allowed_hours\.timezone: required"),
    ({"start": "08:00", "end": "18:00", "timezone": "Mars/Olympus"}, r"allowed_hours\.timezone: unknown time zone"),
])
def test_schedule_is_validated(value, message):
    with pytest.raises(ValueError, match=message):
        WeeklySchedule.parse(value, field="allowed_hours")
