"""A daily time window on chosen weekdays, read on the local wall clock: the one piece of schedule
logic that alert rules (schedules, quiet hours) and the after-hours analytic share. Pure: no
database, no time zones (callers convert to local time first)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

MINUTES_PER_DAY = 24 * 60


def sunday_based_weekday(local: datetime) -> int:
    return (local.weekday() + 1) % 7  # Python counts from Monday = 0


@dataclass(frozen=True)
class DailyWindow:
    start: int  # minutes after midnight, 0..1439
    end: int  # 0..1440 (24:00), exclusive

    def covers(self, local: datetime, days: frozenset[int]) -> bool:
        """Whether the wall-clock time lies in a window opening on one of `days` (0 = Sunday;
        empty = every day). Equal start and end mean the whole day; an end before the start
        crosses midnight, and the early morning then belongs to the previous day's window."""
        weekday = sunday_based_weekday(local)
        minute = local.hour * 60 + local.minute  # start and end are whole minutes: seconds cannot matter

        def opens_on(day: int) -> bool:
            return not days or day in days

        if self.start == self.end:
            return opens_on(weekday)
        if self.start < self.end:
            return opens_on(weekday) and self.start <= minute < self.end
        return (opens_on(weekday) and minute >= self.start) or (opens_on((weekday - 1) % 7) and minute < self.end)
