"""Weekly schedules and daily windows: the one schedule logic of alert rules (their schedule and quiet
hours) and of the analytics (after_hours' allowed_hours). Pure: no database.

Stored JSON forms (alert_rules.schedule / quiet_hours, analytics parameters):

    schedule:    {"days": [1, 2, 3, 4, 5], "start_time": "18:00", "end_time": "06:00", "timezone": "Asia/Singapore"}
    quiet_hours: {"start": "12:00", "end": "13:00", "enabled": true}

A schedule's "start"/"end" spelling is read too (the analytics engine's older one). Days count from
0 = Sunday; an empty or absent list means every day. A window opens at its start and closes at its
end (exclusive, "24:00" = the end of the day). An end earlier than the start crosses midnight, and
the window belongs to the day it opens on: days [5], 22:00-06:00 is Friday 22:00 to Saturday 06:00.
Equal start and end mean the whole day. Times are wall-clock times in the schedule's time zone
(else the camera site's), so daylight-saving changes follow the zone's rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MINUTES_PER_DAY = 24 * 60
DAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_TIME = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")


class ScheduleError(ValueError):
    """A schedule or quiet-hours document that cannot be used; `field` is the path of the bad part."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def parse_time(value: Any, field: str, *, end: bool = False) -> int:
    """Minutes after midnight of "HH:MM"; "24:00" only as an end."""
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise ScheduleError(field, f"must be a time HH:MM, got {value!r}")
    minutes = int(match[1]) * 60 + int(match[2])
    if minutes > MINUTES_PER_DAY or (minutes == MINUTES_PER_DAY and not end):
        raise ScheduleError(field, f"must be within 00:00..{'24:00' if end else '23:59'}, got {value!r}")
    return minutes


def format_time(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def time_zone(name: Any, field: str) -> ZoneInfo:
    """The IANA zone of that name; ScheduleError for anything else."""
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ScheduleError(field, f"must be an IANA time zone name, e.g. Asia/Singapore, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, malformed, or a directory of zones
        raise ScheduleError(field, f"unknown time zone {name!r}") from None


def sunday_based_weekday(local: datetime) -> int:
    return (local.weekday() + 1) % 7  # Python counts from Monday = 0


@dataclass(frozen=True)
class DailyWindow:
    start: int  # minutes after midnight, 0..1439
    end: int  # 0..1440 (24:00), exclusive

    def covers(self, local: datetime, days: frozenset[int]) -> bool:
        """Whether the wall-clock time lies in a window opening on one of `days` (0 = Sunday;
        empty = every day). The early morning of a window crossing midnight belongs to the
        previous day's window."""
        weekday = sunday_based_weekday(local)
        minute = local.hour * 60 + local.minute  # start and end are whole minutes: seconds cannot matter

        def opens_on(day: int) -> bool:
            return not days or day in days

        if self.start == self.end:
            return opens_on(weekday)
        if self.start < self.end:
            return opens_on(weekday) and self.start <= minute < self.end
        return (opens_on(weekday) and minute >= self.start) or (opens_on((weekday - 1) % 7) and minute < self.end)


@dataclass(frozen=True)
class Schedule:
    days: frozenset[int]  # 0 = Sunday .. 6 = Saturday; empty = every day
    window: DailyWindow
    timezone: str | None  # None: the camera site's time zone

    @classmethod
    def from_json(cls, document: Any, field: str = "schedule") -> Schedule:
        if not isinstance(document, Mapping):
            raise ScheduleError(field, "must be an object with days, start_time and end_time")
        days = document.get("days") or []
        if not isinstance(days, (list, tuple)):
            raise ScheduleError(f"{field}.days", "must be a list of days 0 (Sunday)..6 (Saturday)")
        for i, day in enumerate(days):
            if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
                raise ScheduleError(f"{field}.days[{i}]", f"must be a day 0 (Sunday)..6 (Saturday), got {day!r}")
            if day in days[:i]:
                raise ScheduleError(f"{field}.days[{i}]", f"lists day {day} twice")
        start_key = "start_time" if "start_time" in document else "start"
        end_key = "end_time" if "end_time" in document else "end"
        if "start_time" not in document and "start" not in document:
            start_key = "start_time"  # the spelling the API writes names a missing time
        if "end_time" not in document and "end" not in document:
            end_key = "end_time"
        window = DailyWindow(parse_time(document.get(start_key), f"{field}.{start_key}"),
                             parse_time(document.get(end_key), f"{field}.{end_key}", end=True))
        timezone = document.get("timezone") or None
        if timezone is not None:
            time_zone(timezone, f"{field}.timezone")
        return cls(frozenset(days), window, timezone)

    def in_zone(self, site_timezone: str | None, field: str = "schedule") -> Schedule:
        """This schedule with its time zone settled: its own, else the site's (refused with neither)."""
        if self.timezone is not None:
            return self
        if not site_timezone:
            raise ScheduleError(f"{field}.timezone", "required when the camera's site time zone is not given")
        time_zone(site_timezone, f"{field}.timezone")
        return replace(self, timezone=site_timezone)

    def zone(self, site_timezone: str) -> ZoneInfo:
        """The zone the schedule (and a rule's quiet hours) are read in."""
        if self.timezone is not None:
            return time_zone(self.timezone, "schedule.timezone")
        return time_zone(site_timezone, "site.timezone")

    def armed_at(self, local: datetime) -> bool:
        """Whether the wall-clock time (in zone()) is inside the window."""
        return self.window.covers(local, self.days)

    def contains(self, moment: datetime, site_timezone: str | None = None) -> bool:
        """Whether the aware datetime falls inside the window."""
        return self.armed_at(moment.astimezone(self.zone(site_timezone)))

    def local_day_and_time(self, moment: datetime, site_timezone: str | None = None) -> tuple[str, str]:
        """The local weekday name and ISO local time of moment, for evidence."""
        local = moment.astimezone(self.zone(site_timezone))
        return DAY_NAMES[sunday_based_weekday(local)], local.isoformat()

    def to_json(self) -> dict[str, Any]:
        """The stored form (alert_rules.schedule spelling); no timezone key when it is the site's."""
        document: dict[str, Any] = {"days": sorted(self.days), "start_time": format_time(self.window.start),
                                    "end_time": format_time(self.window.end)}
        if self.timezone is not None:
            document["timezone"] = self.timezone
        return document


@dataclass(frozen=True)
class QuietHours:
    enabled: bool
    window: DailyWindow

    @classmethod
    def from_json(cls, document: Any, field: str = "quiet_hours") -> QuietHours:
        if not isinstance(document, Mapping):
            raise ScheduleError(field, "must be an object with start, end and enabled")
        enabled = document.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ScheduleError(f"{field}.enabled", f"must be true or false, got {enabled!r}")
        return cls(enabled, DailyWindow(parse_time(document.get("start"), f"{field}.start"),
                                        parse_time(document.get("end"), f"{field}.end", end=True)))

    def silences(self, local: datetime) -> bool:
        return self.enabled and self.window.covers(local, frozenset())
