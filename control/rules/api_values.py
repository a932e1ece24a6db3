"""Checks and conversions of the API's value types that rules, analytics and alerts share:
ids, durations, times of day, schedules and quiet hours in their stored JSON forms."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any
from uuid import UUID

from google.protobuf import duration_pb2

from vigil.api.v1 import rule_pb2 as pb
from vigil.control.schedule import QuietHours, Schedule, ScheduleError, format_time, time_zone
from vigil.errors import InvalidArgument
from vigil.storage.repositories.base import as_uuid

MAX_NANOS = 999_999_999


def optional_id(path: str, value: str) -> UUID | None:
    return as_uuid(path, value) if value else None


def unit_interval(path: str, value: float) -> float:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidArgument(path, f"must be within [0, 1], got {value}")
    return float(f"{value:.7g}")  # the float32 the client meant: 0.8, not 0.800000011920929


def duration_value(path: str, value: duration_pb2.Duration, low: timedelta, high: timedelta) -> timedelta:
    """A Duration within [low, high]; malformed ones (nanos out of range or of the other sign) refused."""
    seconds, nanos = value.seconds, value.nanos
    if abs(nanos) > MAX_NANOS or (seconds > 0 > nanos) or (seconds < 0 < nanos):
        raise InvalidArgument(path, "is not a valid duration")
    if not low.total_seconds() - 1 <= seconds <= high.total_seconds():  # checked before building a timedelta
        raise InvalidArgument(path, f"must be within {_seconds(low)}..{_seconds(high)}, got {seconds} s")
    result = timedelta(seconds=seconds, microseconds=nanos // 1000)
    if not low <= result <= high:
        raise InvalidArgument(path, f"must be within {_seconds(low)}..{_seconds(high)}, got {result.total_seconds()} s")
    return result


def duration_seconds(path: str, value: duration_pb2.Duration) -> float:
    """A well-formed Duration in seconds, unbounded (the caller's manifest bounds it)."""
    seconds, nanos = value.seconds, value.nanos
    if abs(nanos) > MAX_NANOS or (seconds > 0 > nanos) or (seconds < 0 < nanos):
        raise InvalidArgument(path, "is not a valid duration")
    return seconds + nanos / 1e9


def _seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g} s"


def duration_message(value: timedelta) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(value)
    return message


# --------------------------------------------------------------------------- times of day and windows


def time_text(path: str, value: pb.LocalTime, *, end: bool) -> str:
    """A LocalTime as "HH:MM"; 24:00 only as an end."""
    if not 0 <= value.minutes <= 59:
        raise InvalidArgument(f"{path}.minutes", f"must be within 0..59, got {value.minutes}")
    if value.hours == 24 and end:
        if value.minutes:
            raise InvalidArgument(f"{path}.minutes", "must be 0 when hours is 24")
    elif not 0 <= value.hours <= 23:
        raise InvalidArgument(f"{path}.hours", f"must be within 0..{24 if end else 23}, got {value.hours}")
    return format_time(value.hours * 60 + value.minutes)


def time_message(minutes: int) -> pb.LocalTime:
    return pb.LocalTime(hours=minutes // 60, minutes=minutes % 60)


def _required_time(path: str, window: Any, name: str, *, end: bool) -> str:
    if not window.HasField(name):
        raise InvalidArgument(f"{path}.{name}", "is required")
    return time_text(f"{path}.{name}", getattr(window, name), end=end)


def schedule_document(path: str, schedule: pb.Schedule) -> dict[str, Any]:
    """The stored form of a Schedule (alert_rules.schedule), checked."""
    seen = set()
    for i, day in enumerate(schedule.days):
        if not 0 <= day <= 6:
            raise InvalidArgument(f"{path}.days[{i}]", f"must be a day 0 (Sunday)..6 (Saturday), got {day}")
        if day in seen:
            raise InvalidArgument(f"{path}.days[{i}]", f"lists day {day} twice")
        seen.add(day)
    document = {"days": sorted(seen), "start_time": _required_time(path, schedule, "start", end=False),
                "end_time": _required_time(path, schedule, "end", end=True)}
    if schedule.timezone:
        try:
            time_zone(schedule.timezone, f"{path}.timezone")
        except ScheduleError as exc:
            raise InvalidArgument(f"{path}.timezone", exc.reason) from None
        document["timezone"] = schedule.timezone
    return document


def schedule_message(document: dict[str, Any]) -> pb.Schedule:
    schedule = Schedule.from_json(document)
    return pb.Schedule(days=sorted(schedule.days), start=time_message(schedule.window.start),
                       end=time_message(schedule.window.end), timezone=schedule.timezone or "")


def quiet_hours_document(path: str, quiet: pb.QuietHours) -> dict[str, Any]:
    """The stored form of QuietHours (alert_rules.quiet_hours), checked."""
    return {"start": _required_time(path, quiet, "start", end=False),
            "end": _required_time(path, quiet, "end", end=True), "enabled": quiet.enabled}


def quiet_hours_message(document: dict[str, Any]) -> pb.QuietHours:
    quiet = QuietHours.from_json(document)
    return pb.QuietHours(enabled=quiet.enabled, start=time_message(quiet.window.start),
                         end=time_message(quiet.window.end))
