"""The analytic units the control plane knows, by "name@version" (what a stored configuration names).

Several versions of one unit may be registered side by side: a configuration keeps the version it
was created with, and one that names none gets the latest version of the unit detecting its
activity type. Each activity type belongs to one unit (one name), whatever its versions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from vigil.control.analytics.after_hours import AfterHours
from vigil.control.analytics.base import Analytic
from vigil.control.analytics.crowding import Crowding
from vigil.control.analytics.dwell import DwellTime, DwellTimeV2, Loitering, LoiteringV2
from vigil.control.analytics.model import ActivityType
from vigil.control.analytics.parameters import ParameterSpec
from vigil.control.analytics.repeated_entry import RepeatedEntry
from vigil.control.analytics.running import Running
from vigil.control.analytics.zone_entry import Intrusion, IntrusionV2, ZoneBreach, ZoneBreachV2


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


class AnalyticsRegistry:
    def __init__(self, units: Iterable[type[Analytic]]) -> None:
        self._units: dict[str, type[Analytic]] = {}
        owner: dict[ActivityType, str] = {}
        for unit in units:
            if not all(part.isdigit() for part in unit.version.split(".")):
                raise ValueError(f"{unit.name}: version must be dotted whole numbers, got {unit.version!r}")
            if unit.ref() in self._units:
                raise ValueError(f"registry: {unit.ref()} registered twice")
            for activity_type in unit.activity_types:
                other = owner.setdefault(activity_type, unit.name)
                if other != unit.name:
                    raise ValueError(f"registry: {activity_type.value} is raised by both {other} and {unit.name}")
            self._units[unit.ref()] = unit
        self._units = dict(sorted(self._units.items(), key=lambda item: (item[1].name, version_key(item[1].version))))

    def __iter__(self) -> Iterator[type[Analytic]]:
        """Every unit, by name, then version."""
        return iter(self._units.values())

    def __getitem__(self, ref: str) -> type[Analytic]:
        return self._units[ref]

    def refs(self) -> list[str]:
        return list(self._units)

    def falling_back_to(self, zone_threshold: str) -> list[tuple[type[Analytic], ParameterSpec]]:
        """The parameters (with their unit) that fall back to this ZoneThresholds field."""
        return [(unit, spec) for unit in self._units.values() for spec in unit.parameters
                if spec.zone_threshold == zone_threshold]

    def latest_for(self, activity_type: ActivityType) -> type[Analytic] | None:
        """The latest version of the unit detecting activity_type; None when none does."""
        detecting = [unit for unit in self._units.values() if activity_type in unit.activity_types]
        return detecting[-1] if detecting else None

    def resolve(self, ref: str | None, activity_type: ActivityType) -> type[Analytic]:
        """The unit a configuration runs: the one it names, which must detect its activity type, else
        the latest for that type. ValueError("analytic: ..." or "activity_type: ...") otherwise."""
        activity_type = ActivityType(activity_type)
        if not ref:
            unit = self.latest_for(activity_type)
            if unit is None:
                raise ValueError(f"activity_type: no analytic detects {activity_type.value}")
            return unit
        unit = self._units.get(ref)
        if unit is None:
            raise ValueError(f"analytic: no analytic unit {ref!r} (known: {', '.join(self._units)})")
        if activity_type not in unit.activity_types:
            raise ValueError(f"analytic: {ref} does not detect {activity_type.value}")
        return unit


# Version 2 of the zone units watches vehicles too (their `objects` parameter); version 1 stays
# for the configurations created with it.
REGISTRY = AnalyticsRegistry((Intrusion, IntrusionV2, ZoneBreach, ZoneBreachV2, Loitering, LoiteringV2, DwellTime,
                              DwellTimeV2, Crowding, AfterHours, RepeatedEntry, Running))
