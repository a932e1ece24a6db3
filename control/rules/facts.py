"""What the rule evaluator is shown: one observation of a track, a detection event or a suspicious
activity, with everything its rules may ask about (built by the ingest path; see lookups.py for
the parts that come from the database)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

PERSON_RECOGNIZED = "person_recognized"


@dataclass(frozen=True)
class PersonFacts:
    """A recognised person as rules see them."""

    id: UUID
    status: str  # known | unknown | blacklisted | vip
    role: str | None = None
    name: str | None = None
    watchlist_ids: frozenset[UUID] = frozenset()  # the active watchlists they are on


@dataclass(frozen=True)
class Fact:
    """One event (event_type set) or suspicious activity (activity_type set) on a camera."""

    camera_id: UUID
    observed_at: datetime  # capture time of the observation (aware); schedules and cooldowns use it
    confidence: float  # detector or activity confidence, in [0, 1]
    track_id: str = ""
    event_type: str | None = None
    activity_type: str | None = None
    event_id: UUID | None = None  # the stored event or activity the alert will point at
    suspicious_activity_id: UUID | None = None
    activity_severity: str | None = None  # of the analytics configuration that raised the activity
    zone_ids: frozenset[UUID] = frozenset()  # zones the track is in
    persons: tuple[PersonFacts, ...] = ()  # the recognised person of an event; those involved in an activity
    cluster_id: UUID | None = None  # unknown-face cluster, when nobody was recognised
    similarity: float | None = None  # face match similarity of a recognition
    frame_number: int | None = None
    site_timezone: str = "UTC"  # time zone of the camera's site, for schedules without their own
    camera_name: str | None = None
    zone_names: Mapping[UUID, str] = field(default_factory=dict)
    object_class: str | None = None  # of the track: person | face | vehicle; None when not recorded
    object_label: str | None = None  # the detector's label ("car", "truck", ...), when known

    def __post_init__(self) -> None:
        if (self.event_type is None) == (self.activity_type is None):
            raise ValueError("a fact is either an event (event_type) or an activity (activity_type)")
        if self.observed_at.tzinfo is None:
            raise ValueError("observed_at must be timezone-aware")
        for name in ("confidence", "similarity"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")

    @property
    def is_activity(self) -> bool:
        return self.activity_type is not None

    @property
    def compared_confidence(self) -> float:
        """What confidence thresholds compare: the match similarity of a recognition, else the confidence."""
        if self.event_type == PERSON_RECOGNIZED and self.similarity is not None:
            return self.similarity
        return self.confidence
