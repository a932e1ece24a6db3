"""Self-describing analytic parameters: their schema, and resolving a config's values against it.

A value left unset falls back to the zone's threshold (where the parameter names one), then to
the parameter's default, as rule.proto AnalyticsConfig specifies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any

from vigil.control.analytics.model import ZoneGeometry
from vigil.control.analytics.schedule import WeeklySchedule


class ParameterType(str, Enum):
    DURATION = "duration"  # seconds (a number or a timedelta)
    INTEGER = "integer"
    NUMBER = "number"
    SCHEDULE = "schedule"  # WeeklySchedule or its mapping form


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

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.value,
            "default": self.default,
            "required": self.default is None,
            "unit": self.unit,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "exclusive_minimum": self.exclusive_minimum,
            "zone_threshold": self.zone_threshold,
            "description": self.description,
        }

    def coerce(self, value: Any, *, site_timezone: str | None = None) -> Any:
        """The value in its canonical form (durations as float seconds), range-checked; schedules
        without a time zone are read in site_timezone."""
        field = f"parameters.{self.name}"
        if self.type is ParameterType.SCHEDULE:
            if isinstance(value, WeeklySchedule):
                return value
            if isinstance(value, Mapping):
                return WeeklySchedule.parse(value, field=field, site_timezone=site_timezone)
            raise ValueError(f"{field}: must be a schedule mapping, got {value!r}")
        if self.type is ParameterType.DURATION and isinstance(value, timedelta):
            value = value.total_seconds()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{field}: must be a number, got {value!r}")
        if self.type is ParameterType.INTEGER:
            if value != int(value):
                raise ValueError(f"{field}: must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        self._check_range(field, value)
        return value

    def _check_range(self, field: str, value: float) -> None:
        unit = f" {self.unit}" if self.unit else ""
        if self.minimum is not None:
            below = value <= self.minimum if self.exclusive_minimum else value < self.minimum
            if below:
                relation = ">" if self.exclusive_minimum else ">="
                raise ValueError(f"{field}: must be {relation} {self.minimum}{unit}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{field}: must be <= {self.maximum}{unit}, got {value}")


def resolve_parameters(specs: tuple[ParameterSpec, ...], given: Mapping[str, Any], zone: ZoneGeometry | None,
                       *, analytic: str, site_timezone: str | None = None) -> dict[str, Any]:
    """Every parameter of specs with its effective value; ValueError names the bad parameter."""
    known = {spec.name for spec in specs}
    for name in given:
        if name not in known:
            raise ValueError(f"parameters.{name}: not a parameter of {analytic} "
                             f"(known: {', '.join(sorted(known)) or 'none'})")
    resolved = {}
    for spec in specs:
        value = given.get(spec.name)
        if value is None and zone is not None and spec.zone_threshold is not None:
            value = getattr(zone.thresholds, spec.zone_threshold)
        if value is None:
            value = spec.default
        if value is None:
            raise ValueError(f"parameters.{spec.name}: required by {analytic}")
        resolved[spec.name] = spec.coerce(value, site_timezone=site_timezone)
    return resolved


# The gap tolerance shared by the presence-based analytics. At most 10 s so that it stays well
# below the engine's stale-track timeout.
MAX_GAP = ParameterSpec(
    "max_gap", ParameterType.DURATION, unit="s", default=2.0, minimum=0.0, maximum=10.0,
    description="Longest interruption of a stay (occlusion, missed detections, the feet jittering "
                "across the zone edge) that still counts as continuous presence.")
