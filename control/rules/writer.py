"""Turns firings into alerts, inside the caller's transaction (the one that stores the event or
activity), so that an event, its alerts and their queued notifications commit together or not at
all (the notification dispatcher's next sweep sends them).

Each firing first claims its rule's cooldown for the camera and subject at the fact's capture
time (AlertRepository.claim_cooldown); a firing whose cooldown is still running, or whose rule was
deactivated or deleted since it was evaluated, writes nothing. Concurrent writers of the same
firing raise one alert: the second waits on the first's claim and then finds it running.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from vigil.control.rules.evaluator import Firing
from vigil.storage.repositories.alerts import Alert, AlertRepository
from vigil.storage.repositories.notifications import DeliveryRepository


def trigger_evidence(firing: Firing) -> dict[str, Any]:
    """What the rule was compared with (alerts.trigger_evidence; AlertTrigger in the API)."""
    fact = firing.fact
    return {"rule_name": firing.rule.name, "event_type": fact.event_type, "activity_type": fact.activity_type,
            "zone_id": None if firing.rule.zone_id is None else str(firing.rule.zone_id),
            "confidence": fact.compared_confidence, "similarity": fact.similarity,
            "frame_number": fact.frame_number, "capture_time": fact.observed_at.isoformat()}


async def write_alerts(conn: psycopg.AsyncConnection, firings: Iterable[Firing]) -> list[Alert]:
    """The alerts created for these firings (none for those in cooldown), in firing order; each
    queued for its rule's notification channels."""
    alerts, deliveries = AlertRepository(conn), DeliveryRepository(conn)
    created = []
    for firing in firings:
        fact = firing.fact
        if (fact.event_id is None) == (fact.suspicious_activity_id is None):
            raise ValueError("a firing's fact names its stored event or its stored activity, not both or neither")
        if not await alerts.claim_cooldown(firing.rule.id, fact.camera_id, firing.subject, fact.observed_at):
            continue
        alert = await alerts.insert(
            fact.event_id, fact.camera_id, firing.alert_type, firing.severity, firing.message,
            alert_rule_id=firing.rule.id, person_id=None if firing.person is None else firing.person.id,
            suspicious_activity_id=fact.suspicious_activity_id, trigger_rule_id=firing.rule.id,
            trigger_clause=firing.clause.value, track_id=fact.track_id or None,
            trigger_evidence=trigger_evidence(firing))
        if firing.rule.notification_channel_ids:
            await deliveries.enqueue(alert.id, firing.rule.notification_channel_ids)
        created.append(alert)
    return created
