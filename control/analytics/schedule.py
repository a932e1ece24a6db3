"""A weekly time window in a time zone, with rule.proto Schedule semantics.

The window opens at start on each listed day (0 = Sunday) and closes at end (exclusive). An end
earlier than start crosses midnight and belongs to the day it opens on: days [5], 22:00-06:00 is
Friday 22:00 to Saturday 06:00. Equal start and end mean the whole day. Days are the local days
of the time zone, so daylight-saving changes follow the zone's rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vigil.control.daily_window import MINUTES_PER_DAY, DailyWindow

DAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


@dataclass(frozen=True)
class WeeklySchedule:
    days: frozenset[int]  # 0 = Sunday .. 6 = Saturday; all seven when the rule listed none
    start_minute: int  # minutes after local midnight, 0..1439
    end_minute: int  # 0..1440 (1440 = 24:00, the end of the day)
    timezone: str

    def __post_init__(self) -> None:
        # the zone is resolved once here, so an unknown name fails at configuration time
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))

    @classmethod
    def parse(cls, value: Mapping[str, Any], *, field: str = "schedule",
              site_timezone: str | None = None) -> WeeklySchedule:
        """From {"days": [0..6], "start": "HH:MM", "end": "HH:MM", "timezone": IANA name}.

        start_time / end_time (the alert_rules.schedule spelling) are accepted too. A schedule
        without a time zone is read in the camera's site time zone; with neither it is refused
        rather than guessed.
        """
        days = value.get("days") or list(range(7))
        if not isinstance(days, (list, tuple)) or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days):
            raise ValueError(f"{field}.days: a list of days 0 (Sunday) .. 6 (Saturday), got {days!r}")
        if len(set(days)) != len(days):
            raise ValueError(f"{field}.days: each day at most once, got {days!r}")
        start = _minutes(value.get("start", value.get("start_time")), f"{field}.start", allow_end_of_day=False)
        end = _minutes(value.get("end", value.get("end_time")), f"{field}.end", allow_end_of_day=True)
        timezone = value.get("timezone") or site_timezone
        if not timezone or not isinstance(timezone, str):
            raise ValueError(f"{field}.timezone: required when the camera's site time zone is not given")
        try:
            return cls(frozenset(days), start, end, timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{field}.timezone: unknown time zone {timezone!r}") from None

    def contains(self, moment: datetime) -> bool:
        """Whether the aware datetime falls inside the window."""
        return DailyWindow(self.start_minute, self.end_minute).covers(moment.astimezone(self._zone), self.days)

    def describe(self) -> dict[str, Any]:
        return {
            "days": sorted(self.days),
            "start": _hhmm(self.start_minute),
            "end": _hhmm(self.end_minute),
            "timezone": self.timezone,
        }

    def local_day_and_time(self, moment: datetime) -> tuple[str, str]:
        """The local weekday name and ISO local time of moment, for evidence."""
        local = moment.astimezone(self._zone)
        return DAY_NAMES[(local.weekday() + 1) % 7], local.isoformat()


def _minutes(value: Any, field: str, *, allow_end_of_day: bool) -> int:
    if not isinstance(value, str):
        raise ValueError(f"{field}: required, as \"HH:MM\"")
    hours, sep, minutes = value.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"{field}: must be \"HH:MM\", got {value!r}")
    total = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or total > MINUTES_PER_DAY or (total == MINUTES_PER_DAY and not allow_end_of_day):
        allowed = "00:00..24:00" if allow_end_of_day else "00:00..23:59"
        raise ValueError(f"{field}: must be within {allowed}, got {value!r}")
    return total


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
