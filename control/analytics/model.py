"""Input and output types of the suspicious-activity analytics.

Coordinates are normalised to the frame (0..1, origin top-left), as in the ingest protocol.
Enum values are the database's enum labels (activity_type_enum, severity_enum, zone_type_enum).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

import shapely
from shapely.geometry import Polygon

from vigil.models.objects import VEHICLE_LABELS as DETECTED_VEHICLES

MAX_POLYGON_POINTS = 100  # camera.proto Zone.polygon: 3..100 points
_EDGE_TOLERANCE = 1e-6  # boxes arrive as float32; x + width may exceed 1 by rounding


class ActivityType(str, Enum):
    INTRUSION = "intrusion"
    LOITERING = "loitering"
    RUNNING = "running"
    CROWDING = "crowding"
    FALL = "fall"
    ABANDONED_OBJECT = "abandoned_object"
    AFTER_HOURS = "after_hours"
    ZONE_BREACH = "zone_breach"
    REPEATED_ENTRY = "repeated_entry"
    DWELL_TIME = "dwell_time"


class Severity(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ZoneType(str, Enum):
    RESTRICTED = "restricted"
    INTEREST = "interest"
    ENTRY = "entry"
    EXIT = "exit"


class ObjectClass(str, Enum):
    PERSON = "person"
    FACE = "face"
    VEHICLE = "vehicle"


# The detector labels of a VEHICLE track (ingest.proto TrackUpdate.label): the object detector's.
VEHICLE_LABELS = tuple(sorted(DETECTED_VEHICLES.values()))


class TrackKind(str, Enum):
    """Lifecycle step of a track update (ingest.proto TrackUpdateKind)."""

    START = "start"
    UPDATE = "update"
    END = "end"


Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Box:
    """Normalised box: left, top, width, height."""

    x: float
    y: float
    width: float
    height: float

    def __post_init__(self) -> None:
        for name in ("x", "y", "width", "height"):
            value = getattr(self, name)
            if not math.isfinite(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"box.{name}: must be in [0, 1], got {value!r}")
        if self.width <= 0.0 or self.height <= 0.0:
            raise ValueError("box: width and height must be > 0")
        if self.x + self.width > 1.0 + _EDGE_TOLERANCE or self.y + self.height > 1.0 + _EDGE_TOLERANCE:
            raise ValueError("box: must lie inside the frame (x + width <= 1, y + height <= 1)")

    @property
    def feet(self) -> Point:
        """Bottom centre: where a standing person touches the ground, the point zones are tested with."""
        return (self.x + self.width / 2.0, min(self.y + self.height, 1.0))

    @property
    def centre(self) -> Point:
        return (self.x + self.width / 2.0, self.y + self.height / 2.0)


@dataclass(frozen=True, slots=True)
class TrackObservation:
    """One observation of a tracked object, as the ingest path received it.

    person_id / cluster_id carry the identity the control plane has resolved for the track so far
    (a recognised person, else an unknown-face cluster); the ingest path copies a face track's
    identity onto its parent person track. frame_width / frame_height (pixels, from the batch)
    give the aspect ratio that converts horizontal motion into the same unit as vertical motion.
    label: the detector's class name ("car", "truck", ...; "person"), None when the node sent none.
    """

    camera_id: str
    track_id: str
    object_class: ObjectClass
    box: Box
    confidence: float
    capture_time: datetime
    kind: TrackKind = TrackKind.UPDATE
    person_id: str | None = None
    cluster_id: str | None = None
    frame_width: int | None = None
    frame_height: int | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if self.capture_time.tzinfo is None or self.capture_time.utcoffset() is None:
            raise ValueError("capture_time: must be timezone-aware")
        if not math.isfinite(self.confidence) or not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence: must be in [0, 1], got {self.confidence!r}")
        if (self.frame_width is None) != (self.frame_height is None):
            raise ValueError("frame_width, frame_height: give both or neither")
        if self.frame_width is not None and (self.frame_width <= 0 or self.frame_height <= 0):
            raise ValueError("frame_width, frame_height: must be > 0")

    @property
    def aspect(self) -> float:
        """Frame width over height; 1.0 when the frame size is unknown."""
        if self.frame_width is None or self.frame_height is None:
            return 1.0
        return self.frame_width / self.frame_height

    @property
    def identity(self) -> tuple[str, str] | None:
        """("person", id) or ("cluster", id): a recognised person wins over an unknown-face cluster."""
        if self.person_id:
            return ("person", self.person_id)
        if self.cluster_id:
            return ("cluster", self.cluster_id)
        return None


@dataclass(frozen=True, slots=True)
class ZoneThresholds:
    """A zone's own defaults for its analytics (camera.proto ZoneThresholds, same field names), used
    when a config leaves the parameter whose manifest names the field unset. Durations in seconds."""

    dwell_threshold: float | None = None
    loiter_threshold: float | None = None
    crowd_threshold: int | None = None


@dataclass(frozen=True)
class ZoneGeometry:
    """A camera zone (camera_zones row) with its polygon validated and prepared for fast tests.

    points: (x, y) pairs or {"x", "y"} mappings as stored in camera_zones.polygon_points.
    """

    id: str
    name: str
    zone_type: ZoneType
    points: tuple[Point, ...]
    thresholds: ZoneThresholds = ZoneThresholds()
    polygon: Polygon = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone_type = ZoneType(self.zone_type)
        except ValueError:
            allowed = ", ".join(t.value for t in ZoneType)
            raise ValueError(f"zone_type: must be one of {allowed}, got {self.zone_type!r}") from None
        points = _normalised_points(self.points)
        polygon = _validated_polygon(points)
        shapely.prepare(polygon)
        object.__setattr__(self, "zone_type", zone_type)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "polygon", polygon)

    def contains(self, point: Point) -> bool:
        """Whether the point lies inside the polygon; a point on the boundary counts as inside."""
        return bool(shapely.intersects_xy(self.polygon, point[0], point[1]))


def _normalised_points(raw: Sequence[Any]) -> tuple[Point, ...]:
    points = []
    for index, item in enumerate(raw):
        x, y = (item["x"], item["y"]) if isinstance(item, Mapping) else item
        for axis, value in (("x", x), ("y", y)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"polygon[{index}].{axis}: must be a number, got {value!r}")
            if not math.isfinite(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"polygon[{index}].{axis}: must be in [0, 1], got {value!r}")
        points.append((float(x), float(y)))
    return tuple(points)


def _validated_polygon(points: tuple[Point, ...]) -> Polygon:
    # a closing point equal to the first is allowed and not counted
    distinct = len(points) - (1 if len(points) > 1 and points[0] == points[-1] else 0)
    if distinct < 3:
        raise ValueError(f"polygon: needs at least 3 points, got {distinct}")
    if distinct > MAX_POLYGON_POINTS:
        raise ValueError(f"polygon: at most {MAX_POLYGON_POINTS} points, got {distinct}")
    polygon = Polygon(points)
    reason = shapely.is_valid_reason(polygon)
    if reason != "Valid Geometry":
        raise ValueError(f"polygon: must be a simple polygon that encloses an area and does not "
                         f"intersect itself ({reason})")
    return polygon


@dataclass(frozen=True, slots=True)
class Detection:
    """One suspicious activity, ready for suspicious_activity_events and the alert rules.

    started_at: capture time the episode began (entering the zone, the crowd forming, ...);
    detected_at: capture time of the observation at which the condition was met (the event's
    timestamp). zone_id is None for analytics on the whole frame. evidence holds the figures that
    triggered it and "analytic" (name@version).
    """

    activity_type: ActivityType
    severity: Severity
    confidence: float
    camera_id: str
    zone_id: str | None
    track_ids: tuple[str, ...]
    person_id: str | None
    cluster_id: str | None
    started_at: datetime
    detected_at: datetime
    evidence: Mapping[str, Any]
    config_id: str | None = None

    def details(self) -> dict[str, Any]:
        """JSON-ready suspicious_activity_events.details; person_ids is what alert rules with
        person conditions match (rule.proto AlertRule)."""
        person_ids = self.evidence.get("person_ids", [self.person_id] if self.person_id else [])
        return {
            **self.evidence,
            "config_id": self.config_id,
            "track_ids": list(self.track_ids),
            "person_ids": list(person_ids),
            "cluster_id": self.cluster_id,
            "started_at": self.started_at.isoformat(),
        }
