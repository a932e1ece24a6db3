"""After hours: presence outside a weekly schedule in the schedule's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.analytics.scripts import INSIDE, OUTSIDE, feed, person, zone
from vigil.control.analytics import ActivityType
from vigil.control.analytics.after_hours import AfterHours


def after_hours(days, start: str, end: str, tz: str = "UTC", **kwargs) -> AfterHours:
    schedule = {"days": days, "start": start, "end": end, "timezone": tz}
    return AfterHours(parameters={"allowed_hours": schedule}, **kwargs)


def stay_from(track_id: str, start: datetime, seconds: float, feet=INSIDE):
    return [person(track_id, feet, start + timedelta(seconds=i * 0.2)) for i in range(round(seconds / 0.2) + 1)]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


WEEKDAYS = [1, 2, 3, 4, 5]


def test_presence_inside_the_allowed_hours_does_not_fire():
    # Friday 17:59:50 .. 17:59:59.8: up to the last moment before closing
    assert feed(after_hours(WEEKDAYS, "08:00", "18:00"), stay_from("t1", utc(2025, 3, 7, 17, 59, 50), 9.8)) == []


def test_a_stay_running_past_closing_fires_once_at_closing():
    analytic = after_hours(WEEKDAYS, "08:00", "18:00", zone=zone("interest"))
    fired = feed(analytic, stay_from("t1", utc(2025, 3, 7, 17, 59, 50), 60.0))
    assert [f.detection.detected_at for f in fired] == [utc(2025, 3, 7, 18, 0)]
    detection = fired[0].detection
    assert detection.activity_type is ActivityType.AFTER_HOURS and detection.zone_id == "zone-1"
    assert detection.evidence["local_time"] == "2025-03-07T18:00:00+00:00"
    assert detection.evidence["local_weekday"] == "friday"
    assert detection.evidence["allowed_hours"] == {"days": WEEKDAYS, "start_time": "08:00", "end_time": "18:00",
                                                   "timezone": "UTC"}
    assert detection.evidence["entered_at"] == "2025-03-07T17:59:50+00:00"


def test_presence_outside_the_zone_does_not_fire():
    analytic = after_hours(WEEKDAYS, "08:00", "18:00", zone=zone("interest"))
    assert feed(analytic, stay_from("t1", utc(2025, 3, 8, 3, 0), 10.0, feet=OUTSIDE)) == []


def test_weekend_presence_fires():
    fired = feed(after_hours(WEEKDAYS, "08:00", "18:00"), stay_from("t1", utc(2025, 3, 8, 12, 0), 5.0))
    assert len(fired) == 1 and fired[0].detection.evidence["local_weekday"] == "saturday"


def test_allowed_window_crossing_midnight():
    night_shift = [5], "22:00", "06:00"  # Friday 22:00 to Saturday 06:00
    assert feed(after_hours(*night_shift), stay_from("t1", utc(2025, 3, 8, 5, 59, 50), 9.8)) == []
    fired = feed(after_hours(*night_shift), stay_from("t2", utc(2025, 3, 8, 5, 59, 50), 20.0))
    assert [f.detection.detected_at for f in fired] == [utc(2025, 3, 8, 6, 0)]
    # Friday just before the window opens
    assert len(feed(after_hours(*night_shift), stay_from("t3", utc(2025, 3, 7, 21, 59, 50), 5.0))) == 1


def test_local_day_differs_from_the_utc_day():
    tokyo_monday = [1], "09:00", "18:00", "Asia/Tokyo"
    # Monday 00:30 UTC is Monday 09:30 in Tokyo: allowed (in UTC it would be Monday night)
    assert feed(after_hours(*tokyo_monday), stay_from("t1", utc(2025, 3, 10, 0, 30), 10.0)) == []
    # Sunday 23:30 UTC is Monday 08:30 in Tokyo: before opening, though the UTC day is Sunday
    fired = feed(after_hours(*tokyo_monday), stay_from("t2", utc(2025, 3, 9, 23, 30), 10.0))
    assert len(fired) == 1
    assert fired[0].detection.evidence["local_weekday"] == "monday"
    assert fired[0].detection.evidence["local_time"] == "2025-03-10T08:30:00+09:00"


def test_each_stay_fires_once_and_a_new_stay_fires_again():
    sequence = stay_from("t1", utc(2025, 3, 8, 2, 0), 10.0)
    sequence += stay_from("t1", utc(2025, 3, 8, 2, 0, 10, 200000), 3.0, feet=OUTSIDE)
    sequence += stay_from("t1", utc(2025, 3, 8, 2, 0, 13, 400000), 10.0)
    fired = feed(after_hours(WEEKDAYS, "08:00", "18:00", zone=zone("interest")), sequence)
    assert [f.detection.detected_at for f in fired] == [utc(2025, 3, 8, 2, 0), utc(2025, 3, 8, 2, 0, 13, 400000)]
