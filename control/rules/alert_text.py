"""The human-readable message of an alert: who was seen where and when, under which rule.

Names come from operators and may hold anything: they are cleaned (no control characters, one
line, bounded length) and only ever inserted as values, never used as a format string.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from uuid import UUID

from vigil.control.rules.facts import Fact, PersonFacts

NAME_LIMIT = 100
MESSAGE_LIMIT = 1000

_EVENT_WORDING = {
    "person_recognized": "recognised",
    "face_detected": "seen",
    "human_detected": "detected",
    "motion_detected": "detected",
    "object_detected": "detected",
}
_SUBJECT_OF_EVENT = {"motion_detected": "Motion", "object_detected": "An object"}
_STATUS_WORDING = {"blacklisted": "Blacklisted person", "vip": "VIP", "known": "Person", "unknown": "Person"}


def clean(text: str, limit: int = NAME_LIMIT) -> str:
    """One line of printable text of at most `limit` characters."""
    printable = "".join(" " if unicodedata.category(ch).startswith(("C", "Z")) else ch for ch in text)
    single = " ".join(printable.split())
    return single if len(single) <= limit else single[: limit - 1] + "…"


def person_wording(person: PersonFacts) -> str:
    status = _STATUS_WORDING.get(person.status, "Person")
    return f'{status} "{clean(person.name)}"' if person.name else f"{status} {person.id}"


def who(fact: Fact, person: PersonFacts | None) -> str:
    if person is not None:
        return person_wording(person)
    if fact.object_class == "vehicle":
        label = clean(fact.object_label) if fact.object_label else "vehicle"
        return f"A {label}"
    if fact.event_type in _SUBJECT_OF_EVENT:
        return _SUBJECT_OF_EVENT[fact.event_type]
    if fact.event_type == "human_detected":
        return "A person"
    return "An unknown person"


def alert_text(rule_name: str, fact: Fact, person: PersonFacts | None, zone_id: UUID | None,
               local_time: datetime) -> str:
    camera = clean(fact.camera_name) if fact.camera_name else str(fact.camera_id)
    where = f'on camera "{camera}"'
    if zone_id is not None:
        zone = fact.zone_names.get(zone_id)
        where += f' in zone "{clean(zone)}"' if zone else f" in zone {zone_id}"
    when = local_time.strftime("%Y-%m-%d %H:%M:%S %Z")
    if fact.is_activity:
        what = clean(fact.activity_type.replace("_", " ")).capitalize()
        if person is not None:
            what += f" by {person_wording(person)}"
        elif fact.object_class == "vehicle":
            what += f" by a {clean(fact.object_label) if fact.object_label else 'vehicle'}"
    else:
        what = f"{who(fact, person)} {_EVENT_WORDING.get(fact.event_type, 'detected')}"
    confidence = round(fact.compared_confidence * 100)
    text = f'{what} {where} at {when} (rule "{clean(rule_name)}", confidence {confidence}%)'
    return clean(text, MESSAGE_LIMIT)
