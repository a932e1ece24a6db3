"""What a notification sends: one alert with what the message templates and the webhook body need.
(How a channel is configured and the record of attempts are storage/repositories/notifications.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class Notification:
    """One alert, with what the message templates and the webhook body need."""

    alert_id: UUID
    alert_type: str
    severity: str
    message: str
    created_at: datetime
    camera_name: str
    location: str | None
    site_name: str
    person_name: str | None
    confidence: float | None  # in [0, 1]; None when the triggering event is gone
    document: dict[str, Any] = field(default_factory=dict)  # the alert in proto3 JSON form (webhook body)
