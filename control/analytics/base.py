"""The contract every analytic follows: a small, versioned, self-describing unit.

An analytic instance holds only its configuration (zone, resolved parameters, severity); all that
changes over time lives in the state object it creates, one per camera, so an instance can be
shared and a camera's state dropped without touching anything else. Analytics are given only the
observations they watch (the engine asks watches()): PERSON tracks, unless the unit has an
`objects` parameter naming vehicles too. Face boxes say nothing about where someone stands.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from vigil.control.analytics.model import (
    ActivityType,
    Detection,
    ObjectClass,
    Point,
    Severity,
    TrackObservation,
    ZoneGeometry,
    ZoneType,
)
from vigil.control.analytics.parameters import ParameterSpec, resolve_parameters

State = TypeVar("State")


class Analytic(ABC, Generic[State]):
    name: ClassVar[str]
    version: ClassVar[str]
    activity_types: ClassVar[tuple[ActivityType, ...]]
    summary: ClassVar[str]
    parameters: ClassVar[tuple[ParameterSpec, ...]]
    zone_required: ClassVar[bool]
    zone_types: ClassVar[frozenset[ZoneType]] = frozenset(ZoneType)

    def __init__(self, *, zone: ZoneGeometry | None = None, parameters: Mapping[str, Any] | None = None,
                 severity: Severity = Severity.MEDIUM, config_id: str | None = None,
                 site_timezone: str | None = None) -> None:
        if zone is None and self.zone_required:
            raise ValueError(f"zone: required by {self.name}")
        if zone is not None and zone.zone_type not in self.zone_types:
            allowed = ", ".join(sorted(t.value for t in self.zone_types))
            raise ValueError(f"zone: {self.name} needs a zone of type {allowed}, "
                             f"zone {zone.name!r} is {zone.zone_type.value}")
        self.zone = zone
        self.params = resolve_parameters(self.parameters, parameters or {}, zone, analytic=self.ref(),
                                         site_timezone=site_timezone)
        self.severity = Severity(severity)
        self.config_id = config_id

    @classmethod
    def ref(cls) -> str:
        """How a stored configuration names this unit: "name@version"."""
        return f"{cls.name}@{cls.version}"

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The manifest: everything a client needs to build a configuration form (RuleService.ListAnalytics)."""
        return {
            "analytic": cls.ref(),
            "name": cls.name,
            "version": cls.version,
            "activity_types": [t.value for t in cls.activity_types],
            "summary": cls.summary,
            "zone": {
                "required": cls.zone_required,
                "zone_types": sorted(t.value for t in cls.zone_types),
            },
            "parameters": [spec.describe() for spec in cls.parameters],
        }

    def watches(self, obs: TrackObservation) -> bool:
        """Whether the unit is shown this observation: persons, or what its `objects` parameter names
        ("person", "vehicle" for any vehicle, or a vehicle's label)."""
        objects = self.params.get("objects")
        if objects is None:
            return obs.object_class is ObjectClass.PERSON
        if obs.object_class is ObjectClass.VEHICLE:
            return "vehicle" in objects or obs.label in objects
        return obs.object_class is ObjectClass.PERSON and "person" in objects

    @abstractmethod
    def new_state(self) -> State:
        """Empty state for one camera."""

    @abstractmethod
    def observe(self, obs: TrackObservation, state: State, now: datetime) -> list[Detection]:
        """Advances state with one observation it watches. now is the camera's stream clock (the
        latest capture time seen, never earlier than obs.capture_time)."""

    @abstractmethod
    def end_track(self, track_id: str, state: State) -> None:
        """Forgets a track that ended or went stale."""

    @abstractmethod
    def state_size(self, state: State) -> int:
        """Tracks and identities the state holds (a memory gauge)."""

    def inside(self, point: Point) -> bool:
        return self.zone is None or self.zone.contains(point)

    def detection(self, activity_type: ActivityType, *, camera_id: str, track_ids: Sequence[str],
                  confidence: float, started_at: datetime, detected_at: datetime,
                  evidence: Mapping[str, Any], person_id: str | None = None,
                  cluster_id: str | None = None) -> Detection:
        return Detection(
            activity_type=activity_type,
            severity=self.severity,
            confidence=round(confidence, 3),  # suspicious_activity_events.confidence is DECIMAL(4,3)
            camera_id=camera_id,
            zone_id=self.zone.id if self.zone else None,
            track_ids=tuple(track_ids),
            person_id=person_id,
            cluster_id=cluster_id,
            started_at=started_at,
            detected_at=detected_at,
            evidence={
                "analytic": self.ref(),
                "zone_name": self.zone.name if self.zone else None,
                **evidence,
            },
            config_id=self.config_id,
        )

    def track_detection(self, activity_type: ActivityType, obs: TrackObservation, *,
                        started_at: datetime, evidence: Mapping[str, Any]) -> Detection:
        """A detection about the single track of obs, raised at its capture time. A vehicle's says so
        (object_class, object_label); one without them is about a person."""
        if obs.object_class is not ObjectClass.PERSON:
            evidence = {**evidence, "object_class": obs.object_class.value, "object_label": obs.label}
        return self.detection(activity_type, camera_id=obs.camera_id, track_ids=[obs.track_id],
                              confidence=obs.confidence, started_at=started_at,
                              detected_at=obs.capture_time, evidence=evidence,
                              person_id=obs.person_id, cluster_id=obs.cluster_id)


def rounded_point(point: Point) -> dict[str, float]:
    """A point for evidence, in the {"x", "y"} form of suspicious_activity_events.details. Every
    detection carries one under "location", "entry_point" or "cluster_center": where it happened."""
    return {"x": round(point[0], 4), "y": round(point[1], 4)}
