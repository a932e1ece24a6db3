"""Rules and facts for the evaluator tests: everything unset (matching anything) unless given."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from vigil.control.rules import Fact, PersonFacts
from vigil.storage.repositories.alerts import ALL_WEEK, DEFAULT_COOLDOWN, AlertRule

CAMERA = uuid.UUID("00000000-0000-4000-8000-00000000ca01")
OTHER_CAMERA = uuid.UUID("00000000-0000-4000-8000-00000000ca02")
ZONE = uuid.UUID("00000000-0000-4000-8000-0000000020e1")
WATCHLIST = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
# Sunday 1 March 2026, 12:00 UTC
NOON_SUNDAY = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def rule(**conditions) -> AlertRule:
    values = {"id": uuid.uuid4(), "name": "rule", "camera_id": None, "person_id": None, "person_role": None,
              "watchlist_id": None, "zone_id": None, "event_type": None, "activity_type": None, "schedule": ALL_WEEK,
              "confidence_threshold": 0.75, "severity": None, "is_active": True, "quiet_hours": None,
              "cooldown": DEFAULT_COOLDOWN, "notification_channel_ids": [], "created_by": None,
              "created_at": NOON_SUNDAY, "updated_at": NOON_SUNDAY}
    return AlertRule(**{**values, **conditions})


def person(status: str = "known", **details) -> PersonFacts:
    return PersonFacts(id=details.pop("id", uuid.uuid4()), status=status, **details)


def event(event_type: str = "person_recognized", **details) -> Fact:
    values = {"camera_id": CAMERA, "observed_at": NOON_SUNDAY, "confidence": 0.9, "track_id": "t-1",
              "event_type": event_type, "event_id": uuid.uuid4()}
    return Fact(**{**values, **details})


def activity(activity_type: str = "loitering", **details) -> Fact:
    values = {"camera_id": CAMERA, "observed_at": NOON_SUNDAY, "confidence": 0.9, "track_id": "t-1",
              "activity_type": activity_type, "activity_severity": "medium", "suspicious_activity_id": uuid.uuid4()}
    return Fact(**{**values, **details})
