"""Which alert rules an observation satisfies, with the seed's semantics (fn_generate_alert_from_event)
and the conditions the API adds. Pure: no database, no clock; the ingest path supplies the rules
(AlertRuleRepository.active_for_camera) and the fact.

A rule fires when every condition it sets holds (an unset condition matches anything):
camera; source (events of event_type, or activities of activity_type); zone (the track is in it);
object (the track's class, and a vehicle's label); person, watchlist and person role, all
satisfied by one recognised person involved; confidence
at least the threshold; inside the schedule and outside the quiet hours. The firing names the
deciding clause: the most specific condition the rule sets, in the order PERSON, WATCHLIST,
PERSON_ROLE, ZONE, OBJECT, ACTIVITY_TYPE, EVENT_TYPE, CAMERA, else ANY.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from vigil.control.rules.alert_text import alert_text
from vigil.control.rules.facts import Fact, PersonFacts
from vigil.control.schedule import QuietHours, Schedule, ScheduleError
from vigil.logs import get_logger
from vigil.storage.repositories.alerts import AlertRule

log = get_logger("vigil.control.rules")

SEVERITIES = ("low", "medium", "high", "critical")  # lowest first
# Severity of a rule without one, by the status of the person seen (seed: fn_generate_alert_from_event).
SEVERITY_BY_STATUS = {"blacklisted": "critical", "vip": "medium"}
DEFAULT_SEVERITY = "low"


class Clause(str, Enum):
    """The deciding condition of a firing (schema: rule_clause_enum), most specific first."""

    PERSON = "person"
    WATCHLIST = "watchlist"
    PERSON_ROLE = "person_role"
    ZONE = "zone"
    OBJECT = "object"
    ACTIVITY_TYPE = "activity_type"
    EVENT_TYPE = "event_type"
    CAMERA = "camera"
    ANY = "any"


_CONDITION_OF_CLAUSE = (
    (Clause.PERSON, "person_id"), (Clause.WATCHLIST, "watchlist_id"), (Clause.PERSON_ROLE, "person_role"),
    (Clause.ZONE, "zone_id"), (Clause.OBJECT, "object_class"), (Clause.ACTIVITY_TYPE, "activity_type"),
    (Clause.EVENT_TYPE, "event_type"), (Clause.CAMERA, "camera_id"),
)


def deciding_clause(rule: AlertRule) -> Clause:
    return next((clause for clause, condition in _CONDITION_OF_CLAUSE if getattr(rule, condition) is not None),
                Clause.ANY)


def severity_of_person(person: PersonFacts | None) -> str:
    return SEVERITY_BY_STATUS.get(person.status, DEFAULT_SEVERITY) if person is not None else DEFAULT_SEVERITY


def default_severity(fact: Fact, person: PersonFacts | None) -> str:
    """For a rule without a severity: by the person's status; an activity is at least as severe as
    its analytics configuration made it."""
    candidates = [severity_of_person(person)]
    if fact.activity_severity in SEVERITIES:
        candidates.append(fact.activity_severity)
    return max(candidates, key=SEVERITIES.index)


@dataclass(frozen=True)
class Firing:
    rule: AlertRule
    fact: Fact
    clause: Clause
    severity: str
    message: str
    person: PersonFacts | None  # the recognised person concerned, if any

    @property
    def alert_type(self) -> str:
        if self.fact.is_activity:
            return f"suspicious_activity_{self.fact.activity_type}"
        return self.fact.event_type

    @property
    def subject(self) -> str:
        """Whom the rule's cooldown is about: the person, else the unknown-face cluster, else the track."""
        if self.person is not None:
            return f"person:{self.person.id}"
        if self.fact.cluster_id is not None:
            return f"cluster:{self.fact.cluster_id}"
        return f"track:{self.fact.track_id}"


def _takes_source(rule: AlertRule, fact: Fact) -> bool:
    if rule.camera_id is not None and rule.camera_id != fact.camera_id:
        return False
    if rule.activity_type is not None:
        return fact.activity_type == rule.activity_type
    return not fact.is_activity and rule.event_type in (None, fact.event_type)


def _takes_object(rule: AlertRule, fact: Fact) -> bool:
    return ((rule.object_class is None or fact.object_class == rule.object_class)
            and (rule.object_label is None or fact.object_label == rule.object_label))


def _satisfies_person_conditions(rule: AlertRule, person: PersonFacts) -> bool:
    return ((rule.person_id is None or person.id == rule.person_id)
            and (rule.watchlist_id is None or rule.watchlist_id in person.watchlist_ids)
            and (rule.person_role is None
                 or (person.role or "").casefold() == rule.person_role.casefold()))


_NOBODY = object()  # no involved person satisfies the rule's person conditions


def _person_concerned(rule: AlertRule, fact: Fact) -> PersonFacts | None | object:
    """The person the firing is about: the first to satisfy the person conditions (_NOBODY when
    none does), or without such conditions the most severe-status person involved (None if none)."""
    if rule.person_id is None and rule.watchlist_id is None and rule.person_role is None:
        return max(fact.persons, key=lambda p: SEVERITIES.index(severity_of_person(p)), default=None)
    return next((p for p in fact.persons if _satisfies_person_conditions(rule, p)), _NOBODY)


class RuleEvaluator:
    """Evaluates rules against facts; a rule whose stored schedule can no longer be read (e.g. a
    time zone removed from the tz database) is skipped and logged, never fails the others."""

    def evaluate(self, rules: Iterable[AlertRule], fact: Fact) -> list[Firing]:
        firings = []
        for rule in rules:
            try:
                firing = self._fire(rule, fact)
            except ScheduleError as exc:
                log.warning("alert rule skipped: unreadable schedule", rule_id=str(rule.id), error=str(exc))
                continue
            if firing is not None:
                firings.append(firing)
        return firings

    def _fire(self, rule: AlertRule, fact: Fact) -> Firing | None:
        if not rule.is_active or not _takes_source(rule, fact) or not _takes_object(rule, fact):
            return None
        if rule.zone_id is not None and rule.zone_id not in fact.zone_ids:
            return None
        person = _person_concerned(rule, fact)
        if person is _NOBODY or fact.compared_confidence < rule.confidence_threshold:
            return None
        schedule = Schedule.from_json(rule.schedule)
        local = fact.observed_at.astimezone(schedule.zone(fact.site_timezone))
        if not schedule.armed_at(local):
            return None
        if rule.quiet_hours is not None and QuietHours.from_json(rule.quiet_hours).silences(local):
            return None
        severity = rule.severity or default_severity(fact, person)
        message = alert_text(rule.name, fact, person, rule.zone_id, local)
        return Firing(rule, fact, deciding_clause(rule), severity, message, person)
