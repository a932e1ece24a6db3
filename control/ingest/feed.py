"""Messages of the event feed and the filters of EventService.Subscribe.

Whoever records something the feed carries (events here; suspicious activities, alerts and alert
changes elsewhere) builds a FeedItem and calls record() in the same transaction as the rows it
describes. The item lands in feed_outbox and, after commit, on the Redis stream (relay.py), as
a JSON payload: the kind, the attributes Subscribe filters on and the message itself, so that
delivering it needs no database.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from google.protobuf.message import Message

from vigil.api.v1 import event_pb2 as pb
from vigil.control.ingest.messages import event_message, suspicious_activity_message
from vigil.control.rules.alert_api import alert_message, status_update
from vigil.storage.repositories.alerts import Alert, AlertStatusChange
from vigil.storage.repositories.events import Event, FeedOutboxRepository, SuspiciousActivity

# SubscribeResponse's oneof fields, which are also the FeedItemKind labels (FEED_ITEM_KIND_EVENT → "event")
KINDS = ("event", "suspicious_activity", "alert", "alert_update")
_ATTRIBUTES = ("event_type", "activity_type", "severity", "person_ids", "object_class", "object_label")


@dataclass(frozen=True)
class FeedItem:
    """One feed message with what Subscribe filters on. An attribute left None does not apply to
    this message (e.g. severity of an event): filters on it let the message through. person_ids=()
    applies and names nobody, so a person or watchlist filter drops it. object_class set says the
    message is about tracked objects; its object_label "" names no label (several tracks, or none
    known), so a label filter drops it."""

    kind: str  # one of KINDS
    message: Message  # the SubscribeResponse field of that kind: Event, SuspiciousActivity, Alert, AlertUpdate
    camera_id: UUID
    site_id: UUID
    event_type: str | None = None  # schema labels: event_type_enum, activity_type_enum, severity_enum
    activity_type: str | None = None
    severity: str | None = None
    person_ids: tuple[UUID | str, ...] | None = None
    object_class: str | None = None  # ObjectClass label: person | face | vehicle
    object_label: str | None = None  # the detector's class name ("car", ...), "" for none

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    @classmethod
    def of_event(cls, event: Event) -> FeedItem:
        return cls("event", event_message(event), event.camera_id, event.site_id, event_type=event.event_type,
                   person_ids=(event.person_id,) if event.person_id else (), **_object(event.metadata))

    @classmethod
    def of_suspicious_activity(cls, activity: SuspiciousActivity) -> FeedItem:
        message = suspicious_activity_message(activity)
        return cls("suspicious_activity", message, activity.camera_id, activity.site_id,
                   activity_type=activity.activity_type, severity=activity.severity,
                   person_ids=tuple(message.details.person_ids), **_object(activity.details, "person"))

    @classmethod
    def of_alert(cls, alert: Alert) -> FeedItem:
        return cls("alert", alert_message(alert), alert.camera_id, alert.site_id, **_alert_attributes(alert))

    @classmethod
    def of_alert_update(cls, alert: Alert, update: pb.AlertUpdate) -> FeedItem:
        """A change of the alert (alert_api.status_update, match_update), filtered like the alert."""
        return cls("alert_update", update, alert.camera_id, alert.site_id, **_alert_attributes(alert))

    def payload(self) -> dict[str, Any]:
        payload = {"kind": self.kind, "camera_id": str(self.camera_id), "site_id": str(self.site_id),
                   "message": base64.b64encode(self.message.SerializeToString()).decode()}
        for name in _ATTRIBUTES:
            value = getattr(self, name)
            if value is not None:
                payload[name] = [str(v) for v in value] if name == "person_ids" else value
        return payload


_ACTIVITY_ALERT = "suspicious_activity_"


def _object(stored: Mapping[str, Any] | None, default: str | None = None) -> dict[str, str]:
    """The object attributes of a stored events.metadata, activity details or alert trigger_evidence:
    none when it names no class (a device alert, rows from before classes were stored)."""
    object_class = (stored or {}).get("object_class", default)
    if not isinstance(object_class, str):
        return {}
    return {"object_class": object_class, "object_label": str((stored or {}).get("object_label") or "")}


def _alert_attributes(alert: Alert) -> dict[str, Any]:
    """What Subscribe filters an alert (and its updates) on: the type of the event or activity
    that raised it (none for device alerts), its severity and person."""
    attributes: dict[str, Any] = {"severity": alert.severity,
                                  "person_ids": (alert.person_id,) if alert.person_id else (),
                                  **_object(alert.trigger_evidence)}
    if alert.alert_type.startswith(_ACTIVITY_ALERT) and alert.suspicious_activity_id is not None:
        attributes["activity_type"] = alert.alert_type.removeprefix(_ACTIVITY_ALERT)
    elif alert.event_id is not None:
        attributes["event_type"] = alert.alert_type
    return attributes


async def record(conn, items: Sequence[FeedItem]) -> None:
    """Queue the items for the feed, in order, as part of the caller's transaction."""
    await FeedOutboxRepository(conn).add([item.payload() for item in items])


async def record_status_change(conn, alert: Alert, change: AlertStatusChange) -> None:
    """An alert's status change (AlertRepository.transition) as an AlertUpdate, in the transaction
    that made it: every writer of a status change calls this."""
    await record(conn, [FeedItem.of_alert_update(alert, status_update(alert, change))])


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except (TypeError, ValueError):
        return False
    return True


def response_of(token: str, payload: Mapping[str, Any]) -> pb.SubscribeResponse:
    response = pb.SubscribeResponse(resume_token=token)
    getattr(response, payload["kind"]).MergeFromString(base64.b64decode(payload["message"]))
    return response


@dataclass(frozen=True)
class FeedFilter:
    """SubscribeRequest's filters as schema labels and id strings. Empty means no condition;
    visible_site_ids None means every site (the caller's row-level security, mirrored)."""

    kinds: frozenset[str] = frozenset()
    camera_ids: frozenset[str] = frozenset()
    site_ids: frozenset[str] = frozenset()
    event_types: frozenset[str] = frozenset()
    activity_types: frozenset[str] = frozenset()
    severities: frozenset[str] = frozenset()
    person_ids: frozenset[str] = frozenset()
    object_classes: frozenset[str] = frozenset()
    object_labels: frozenset[str] = frozenset()
    watchlist_ids: tuple[UUID, ...] = ()
    visible_site_ids: frozenset[str] | None = None

    @staticmethod
    def persons_named(payloads: Iterable[Mapping[str, Any]]) -> set[str]:
        """The person ids the payloads name (well-formed ones: they are looked up)."""
        return {p for payload in payloads for p in payload.get("person_ids") or () if _is_uuid(p)}

    def matches(self, payload: Mapping[str, Any], watched: set[str]) -> bool:
        """`watched`: the persons of the payload that are on the filter's watchlists now."""
        if payload.get("kind") not in KINDS or (self.kinds and payload["kind"] not in self.kinds):
            return False
        if self.visible_site_ids is not None and payload.get("site_id") not in self.visible_site_ids:
            return False
        for wanted, key in ((self.camera_ids, "camera_id"), (self.site_ids, "site_id"),
                            (self.event_types, "event_type"), (self.activity_types, "activity_type"),
                            (self.severities, "severity"), (self.object_classes, "object_class"),
                            (self.object_labels, "object_label")):
            if wanted and key in payload and payload[key] not in wanted:
                return False
        if "person_ids" in payload:
            persons = set(payload["person_ids"])
            if self.person_ids and not persons & self.person_ids:
                return False
            if self.watchlist_ids and not persons & watched:
                return False
        return True
