"""Self-describing analytic parameters: their schema (the one place a parameter's type, unit, bounds,
default and zone fallback live: RuleService validates and ListAnalytics describes from it), and
resolving a config's values against it.

A value left unset falls back to the zone's threshold (where the parameter names one), then to
the parameter's default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any

from vigil.control.analytics.model import VEHICLE_LABELS, ZoneGeometry
from vigil.control.schedule import Schedule, ScheduleError

EXCERPT_CHARS = 40


class ParameterType(str, Enum):
    DURATION = "duration"  # seconds (a number or a timedelta)
    INTEGER = "integer"
    NUMBER = "number"
    SCHEDULE = "schedule"  # control/schedule.py Schedule or its stored JSON form
    OBJECTS = "objects"  # a list of ParameterSpec.choices (tuple in canonical form, list stored)


class ParameterError(ValueError):
    """A parameter value that the manifest refuses; field is the path below "parameters" ("window",
    "allowed_hours.start_time")."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"parameters.{field}: {reason}")
        self.field, self.reason = field, reason


def excerpt(value: Any) -> str:
    """A short repr of a refused value: enough to recognise it, never a whole document."""
    text = repr(value)
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 3] + "..."


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter of an analytic. default None means the parameter is required."""

    name: str
    type: ParameterType
    description: str
    unit: str | None = None
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    zone_threshold: str | None = None  # field of ZoneThresholds used when the config leaves it unset
    choices: tuple[str, ...] = ()  # OBJECTS: the values an item may take

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.value,
            "choices": list(self.choices),
            "default": list(self.default) if isinstance(self.default, tuple) else self.default,
            "required": self.required,
            "unit": self.unit,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "exclusive_minimum": self.exclusive_minimum,
            "zone_threshold": self.zone_threshold,
            "description": self.description,
        }

    @property
    def required(self) -> bool:
        """Whether a config must give it: no default and no zone threshold to fall back to."""
        return self.default is None and self.zone_threshold is None

    def coerce(self, value: Any) -> Any:
        """The value in its canonical form (durations as float seconds, schedules as Schedule),
        range-checked; ParameterError otherwise."""
        if self.type is ParameterType.SCHEDULE:
            if isinstance(value, Schedule):
                return value
            try:
                return Schedule.from_json(value, field=self.name)
            except ScheduleError as exc:
                raise ParameterError(exc.field, exc.reason) from None
        if self.type is ParameterType.OBJECTS:
            return self._objects(value)
        if self.type is ParameterType.DURATION and isinstance(value, timedelta):
            value = value.total_seconds()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ParameterError(self.name, f"must be a finite number, got {excerpt(value)}")
        if self.type is ParameterType.INTEGER:
            if value != int(value):
                raise ParameterError(self.name, f"must be a whole number, got {excerpt(value)}")
            value = int(value)
        else:
            value = float(value)
        self._check_range(value)
        return value

    def stored(self, value: Any) -> Any:
        """The JSON form of a coerced value, as analytics_configs.parameters holds it."""
        if isinstance(value, tuple):
            return list(value)
        return value.to_json() if isinstance(value, Schedule) else value

    def _objects(self, value: Any) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
            raise ParameterError(self.name, f"must be a non-empty list of {', '.join(self.choices)}; "
                                            f"got {excerpt(value)}")
        for index, item in enumerate(value):
            if item not in self.choices:
                raise ParameterError(f"{self.name}[{index}]", f"must be one of {', '.join(self.choices)}, "
                                                              f"got {excerpt(item)}")
            if item in value[:index]:
                raise ParameterError(f"{self.name}[{index}]", f"lists {item!r} twice")
        return tuple(value)

    def _check_range(self, value: float) -> None:
        unit = f" {self.unit}" if self.unit else ""
        if self.minimum is not None:
            below = value <= self.minimum if self.exclusive_minimum else value < self.minimum
            if below:
                relation = ">" if self.exclusive_minimum else ">="
                raise ParameterError(self.name, f"must be {relation} {self.minimum:g}{unit}, got {value:g}")
        if self.maximum is not None and value > self.maximum:
            raise ParameterError(self.name, f"must be <= {self.maximum:g}{unit}, got {value:g}")


def check_names(specs: tuple[ParameterSpec, ...], given: Mapping[str, Any], analytic: str) -> None:
    known = {spec.name for spec in specs}
    for name in given:
        if name not in known:
            raise ParameterError(name, f"not a parameter of {analytic} (known: {', '.join(sorted(known)) or 'none'})")


def stored_parameters(specs: tuple[ParameterSpec, ...], given: Mapping[str, Any], *, analytic: str) -> dict[str, Any]:
    """The given values checked against the manifest and in their stored form (what RuleService
    writes); unset ones stay unset, so they fall back at run time. ParameterError names the first
    bad one; a required parameter left out is one."""
    check_names(specs, given, analytic)
    stored = {}
    for spec in specs:
        value = given.get(spec.name)
        if value is None:
            if spec.required:
                raise ParameterError(spec.name, f"is required by {analytic}")
            continue
        stored[spec.name] = spec.stored(spec.coerce(value))
    return stored


def resolve_parameters(specs: tuple[ParameterSpec, ...], given: Mapping[str, Any], zone: ZoneGeometry | None,
                       *, analytic: str, site_timezone: str | None = None) -> dict[str, Any]:
    """Every parameter of specs with its effective value: the config's, else the zone's threshold,
    else the default. Schedules without a time zone get the site's. ParameterError names the bad one."""
    check_names(specs, given, analytic)
    resolved = {}
    for spec in specs:
        value = given.get(spec.name)
        if value is None and zone is not None and spec.zone_threshold is not None:
            value = getattr(zone.thresholds, spec.zone_threshold)
        if value is None:
            value = spec.default
        if value is None:
            raise ParameterError(spec.name, f"is required by {analytic}")
        value = spec.coerce(value)
        if isinstance(value, Schedule):
            try:
                value = value.in_zone(site_timezone, spec.name)
            except ScheduleError as exc:
                raise ParameterError(exc.field, exc.reason) from None
        resolved[spec.name] = value
    return resolved


# The gap tolerance shared by the presence-based analytics. At most 10 s so that it stays well
# below the engine's stale-track timeout.
MAX_GAP = ParameterSpec(
    "max_gap", ParameterType.DURATION, unit="s", default=2.0, minimum=0.0, maximum=10.0,
    description="Longest interruption of a stay (occlusion, missed detections, the feet jittering "
                "across the zone edge) that still counts as continuous presence.")


# What a zone analytic watches (its version 2 on): persons by default, so a configuration that
# names no objects behaves as version 1 did.
OBJECTS = ParameterSpec(
    "objects", ParameterType.OBJECTS, default=("person",), choices=("person", "vehicle", *VEHICLE_LABELS),
    description='The tracked objects it watches: "person", "vehicle" (any vehicle) or vehicle labels '
                '("car", "truck", ...).')
