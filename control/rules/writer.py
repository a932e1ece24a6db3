"""Turns firings into alerts, inside the caller's transaction (the one that stores the event or
activity), so that an event, its alerts and their queued notifications commit together or not at
all (the notification dispatcher's next sweep sends them).

A rule without a group window: each firing first claims its rule's cooldown for the camera and
subject at the fact's capture time (AlertRepository.claim_cooldown); a firing whose cooldown is
still running, or whose rule was deactivated or deleted since it was evaluated, writes nothing.
Concurrent writers of the same firing raise one alert: the second waits on the first's claim and
then finds it running.

A rule with a group window (incidents instead of alert storms): the firing belongs to an episode,
the rule's matches on one camera and zone (group_key). It joins the episode's open alert when it
comes at most the window after the episode's last match, adding its track, evidence and a count,
and notifies again only when it raises the alert's severity; otherwise it opens a new alert.
The episode replaces the cooldown, so no match is dropped. Concurrent writers of one episode
open one alert (AlertRepository.group).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg

from vigil.control.rules.evaluator import Firing
from vigil.storage.repositories.alerts import Alert, AlertMatch, AlertRepository
from vigil.storage.repositories.notifications import DeliveryRepository


def trigger_evidence(firing: Firing) -> dict[str, Any]:
    """What the rule was compared with (alerts.trigger_evidence; AlertTrigger in the API)."""
    fact = firing.fact
    return {"rule_name": firing.rule.name, "event_type": fact.event_type, "activity_type": fact.activity_type,
            "zone_id": None if firing.rule.zone_id is None else str(firing.rule.zone_id),
            "confidence": fact.compared_confidence, "similarity": fact.similarity,
            "frame_number": fact.frame_number, "capture_time": fact.observed_at.isoformat(),
            "object_class": fact.object_class, "object_label": fact.object_label}


def group_key(firing: Firing) -> str:
    """The episode of a grouping rule's firing: rule, camera, and zone (the rule's, else the
    activity's own zone), "*" for none."""
    fact = firing.fact
    zone = firing.rule.zone_id
    if zone is None and fact.is_activity and len(fact.zone_ids) == 1:
        (zone,) = fact.zone_ids
    return f"{firing.rule.id}/{fact.camera_id}/{zone or '*'}"


@dataclass(frozen=True)
class JoinedMatch:
    """A firing that joined its episode's open alert: the alert after it, its severity before."""

    alert: Alert
    previous_severity: str
    match: AlertMatch


@dataclass
class AlertWrites:
    created: list[Alert] = field(default_factory=list)  # new alerts, in firing order
    joined: list[JoinedMatch] = field(default_factory=list)  # firings that joined an open alert


async def write_alerts(conn: psycopg.AsyncConnection, firings: Iterable[Firing]) -> list[Alert]:
    """The alerts created for these firings (none for those in cooldown or joining an open alert),
    in firing order; each queued for its rule's notification channels."""
    return (await write_firings(conn, firings)).created


async def write_firings(conn: psycopg.AsyncConnection, firings: Iterable[Firing]) -> AlertWrites:
    """The alerts these firings created and the open alerts they joined (see the module docstring)."""
    alerts, deliveries = AlertRepository(conn), DeliveryRepository(conn)
    written = AlertWrites()
    for firing in firings:
        fact, rule = firing.fact, firing.rule
        if (fact.event_id is None) == (fact.suspicious_activity_id is None):
            raise ValueError("a firing's fact names its stored event or its stored activity, not both or neither")
        evidence = trigger_evidence(firing)
        trigger = dict(alert_rule_id=rule.id, person_id=None if firing.person is None else firing.person.id,
                       suspicious_activity_id=fact.suspicious_activity_id, trigger_rule_id=rule.id,
                       trigger_clause=firing.clause.value)
        if rule.group_window > timedelta(0):
            grouped = await alerts.group(
                group_key(firing), rule.group_window, fact.observed_at, fact.event_id, fact.camera_id,
                firing.alert_type, firing.severity, firing.message, track_id=fact.track_id or None,
                trigger_evidence=evidence, **trigger)
            if grouped.joined:
                if grouped.severity_rose and rule.notification_channel_ids:
                    await deliveries.enqueue(grouped.alert.id, rule.notification_channel_ids, new_round=True)
                match = AlertMatch(grouped.alert.id, fact.observed_at, fact.track_id or None, fact.event_id,
                                   fact.suspicious_activity_id, firing.severity, evidence)
                written.joined.append(JoinedMatch(grouped.alert, grouped.previous_severity, match))
                continue
            alert = grouped.alert
        else:
            if not await alerts.claim_cooldown(rule.id, fact.camera_id, firing.subject, fact.observed_at):
                continue
            alert = await alerts.insert(fact.event_id, fact.camera_id, firing.alert_type, firing.severity,
                                        firing.message, track_id=fact.track_id or None, trigger_evidence=evidence,
                                        **trigger)
        if rule.notification_channel_ids:
            await deliveries.enqueue(alert.id, rule.notification_channel_ids)
        written.created.append(alert)
    return written
