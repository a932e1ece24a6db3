"""The rule evaluator on its own: conditions (unset = any), the deciding clause and its precedence,
confidence thresholds, severity defaults, watchlists, activities and the alert message."""

from __future__ import annotations

import uuid

import pytest

from tests.rules.builders import CAMERA, OTHER_CAMERA, WATCHLIST, ZONE, activity, event, person, rule
from vigil.control.rules import Clause, RuleEvaluator

evaluate = RuleEvaluator().evaluate


def fires(r, fact) -> bool:
    return bool(evaluate([r], fact))


def test_a_rule_without_conditions_fires_on_any_event_with_clause_any():
    for event_type in ("human_detected", "face_detected", "person_recognized"):
        [firing] = evaluate([rule()], event(event_type, persons=()))
        assert firing.clause is Clause.ANY and firing.alert_type == event_type


def test_unset_conditions_match_anything_and_set_ones_must_hold():
    someone = person(role="Guard", watchlist_ids=frozenset({WATCHLIST}))
    seen = event(persons=(someone,), zone_ids=frozenset({ZONE}))
    holding = {"camera_id": CAMERA, "person_id": someone.id, "person_role": "guard", "watchlist_id": WATCHLIST,
               "zone_id": ZONE, "event_type": "person_recognized"}
    failing = {"camera_id": OTHER_CAMERA, "person_id": uuid.uuid4(), "person_role": "cleaner",
               "watchlist_id": uuid.uuid4(), "zone_id": uuid.uuid4(), "event_type": "face_detected"}
    assert fires(rule(**holding), seen)
    for condition, value in failing.items():
        assert not fires(rule(**{**holding, condition: value}), seen), condition
        assert fires(rule(**{condition: holding[condition]}), seen), condition


@pytest.mark.parametrize(("conditions", "clause"), [
    ({"person_id": "P", "watchlist_id": WATCHLIST, "person_role": "guard", "zone_id": ZONE, "camera_id": CAMERA,
      "event_type": "person_recognized"}, Clause.PERSON),
    ({"watchlist_id": WATCHLIST, "person_role": "guard", "zone_id": ZONE, "camera_id": CAMERA}, Clause.WATCHLIST),
    ({"person_role": "guard", "zone_id": ZONE, "event_type": "person_recognized"}, Clause.PERSON_ROLE),
    ({"zone_id": ZONE, "event_type": "person_recognized", "camera_id": CAMERA}, Clause.ZONE),
    ({"event_type": "person_recognized", "camera_id": CAMERA}, Clause.EVENT_TYPE),
    ({"camera_id": CAMERA}, Clause.CAMERA),
    ({}, Clause.ANY),
])
def test_the_deciding_clause_is_the_most_specific_condition_set(conditions, clause):
    someone = person(role="Guard", watchlist_ids=frozenset({WATCHLIST}))
    if conditions.get("person_id") == "P":
        conditions = {**conditions, "person_id": someone.id}
    [firing] = evaluate([rule(**conditions)], event(persons=(someone,), zone_ids=frozenset({ZONE})))
    assert firing.clause is clause


def test_activity_type_clause_ranks_below_zone_and_above_camera():
    loitering = activity("loitering", zone_ids=frozenset({ZONE}))
    assert evaluate([rule(activity_type="loitering", camera_id=CAMERA)], loitering)[0].clause is Clause.ACTIVITY_TYPE
    assert evaluate([rule(activity_type="loitering", zone_id=ZONE)], loitering)[0].clause is Clause.ZONE


def test_the_object_condition_needs_the_tracks_class_and_a_vehicles_label():
    truck = event("object_detected", object_class="vehicle", object_label="truck")
    car = event("object_detected", object_class="vehicle", object_label="car")
    walker = event("human_detected", object_class="person")
    trucks = rule(object_class="vehicle", object_label="truck")
    assert [fires(trucks, f) for f in (truck, car, walker)] == [True, False, False]
    assert [fires(rule(object_class="vehicle"), f) for f in (truck, car, walker)] == [True, True, False]
    assert [fires(rule(object_class="person"), f) for f in (truck, car, walker)] == [False, False, True]
    assert fires(rule(), truck)  # no object condition: any class
    assert not fires(rule(object_class="person"), event("human_detected"))  # a fact of unknown class


def test_the_object_clause_ranks_below_zone_and_above_activity_type():
    stopped = activity("loitering", zone_ids=frozenset({ZONE}), object_class="vehicle", object_label="bus")
    assert evaluate([rule(activity_type="loitering", object_class="vehicle")], stopped)[0].clause is Clause.OBJECT
    assert evaluate([rule(object_class="vehicle", zone_id=ZONE, activity_type="loitering")],
                    stopped)[0].clause is Clause.ZONE
    car = event("object_detected", object_class="vehicle", object_label="car")
    assert evaluate([rule(object_class="vehicle", event_type="object_detected")], car)[0].clause is Clause.OBJECT


def test_the_message_names_the_vehicle():
    [firing] = evaluate([rule()], event("object_detected", object_class="vehicle", object_label="truck",
                                        camera_name="Dock"))
    assert firing.message.startswith('A truck detected on camera "Dock"')
    stopped = activity("loitering", object_class="vehicle", object_label="bus", camera_name="Dock")
    assert evaluate([rule(activity_type="loitering")], stopped)[0].message.startswith('Loitering by a bus on camera')


def test_rules_match_either_events_or_activities_of_their_type():
    assert not fires(rule(), activity())  # no activity_type: detection events only
    assert not fires(rule(activity_type="loitering"), event())
    assert not fires(rule(activity_type="crowding"), activity("loitering"))
    assert fires(rule(activity_type="loitering"), activity("loitering"))


def test_person_conditions_need_a_recognised_person():
    unknown = event("face_detected", persons=(), cluster_id=uuid.uuid4())
    for condition in ({"person_id": uuid.uuid4()}, {"watchlist_id": WATCHLIST}, {"person_role": "guard"}):
        assert not fires(rule(**condition), unknown)
    assert fires(rule(event_type="face_detected"), unknown)


def test_person_role_is_a_case_insensitive_exact_match():
    guard = event(persons=(person(role="Night Guard"),))
    assert fires(rule(person_role="night guard"), guard)
    assert fires(rule(person_role="NIGHT GUARD"), guard)
    assert not fires(rule(person_role="guard"), guard)
    assert not fires(rule(person_role="guard"), event(persons=(person(role=None),)))


def test_a_person_on_an_active_watchlist_is_matched_by_the_watchlist_clause():
    listed = person(watchlist_ids=frozenset({WATCHLIST, uuid.uuid4()}))
    [firing] = evaluate([rule(watchlist_id=WATCHLIST)], event(persons=(listed,)))
    assert firing.clause is Clause.WATCHLIST and firing.person == listed
    # the fact carries only active watchlists: a person on an inactive one is not matched
    assert not fires(rule(watchlist_id=WATCHLIST), event(persons=(person(watchlist_ids=frozenset()),)))


def test_one_involved_person_must_satisfy_all_person_conditions_of_an_activity():
    guard = person(role="guard")
    listed = person(watchlist_ids=frozenset({WATCHLIST}))
    both = person(role="guard", watchlist_ids=frozenset({WATCHLIST}))
    r = rule(activity_type="loitering", person_role="guard", watchlist_id=WATCHLIST)
    assert not fires(r, activity(persons=(guard, listed)))
    [firing] = evaluate([r], activity(persons=(guard, listed, both)))
    assert firing.person == both


def test_confidence_threshold_is_inclusive_and_recognitions_compare_their_similarity():
    assert fires(rule(confidence_threshold=0.8), event("human_detected", confidence=0.8))
    assert not fires(rule(confidence_threshold=0.8), event("human_detected", confidence=0.79))
    # a recognition: the match similarity decides, not the detector's confidence
    assert not fires(rule(confidence_threshold=0.8), event(confidence=0.99, similarity=0.6, persons=(person(),)))
    assert fires(rule(confidence_threshold=0.8), event(confidence=0.5, similarity=0.85, persons=(person(),)))
    assert fires(rule(confidence_threshold=0.0), event("human_detected", confidence=0.0))


@pytest.mark.parametrize(("status", "severity"), [
    ("blacklisted", "critical"), ("vip", "medium"), ("known", "low"), ("unknown", "low"), (None, "low")])
def test_severity_defaults_from_the_persons_status(status, severity):
    persons = () if status is None else (person(status),)
    [firing] = evaluate([rule(severity=None)], event(persons=persons))
    assert firing.severity == severity


def test_a_rules_own_severity_wins_and_activities_are_at_least_as_severe_as_configured():
    assert evaluate([rule(severity="high")], event(persons=(person("blacklisted"),)))[0].severity == "high"
    r = rule(severity=None, activity_type="loitering")
    assert evaluate([r], activity(activity_severity="high", persons=(person("vip"),)))[0].severity == "high"
    assert evaluate([r], activity(activity_severity="low", persons=(person("blacklisted"),)))[0].severity == "critical"
    # among several persons involved, the most severe status counts
    crowd = activity(activity_severity="low", persons=(person("known"), person("vip"), person("known")))
    assert evaluate([r], crowd)[0].severity == "medium"


def test_inactive_rules_never_fire_and_each_active_match_fires_once():
    rules = [rule(name="a"), rule(name="b", is_active=False), rule(name="c", camera_id=CAMERA)]
    assert [f.rule.name for f in evaluate(rules, event())] == ["a", "c"]


def test_a_rule_with_an_unreadable_stored_schedule_is_skipped_not_fatal():
    broken = rule(name="broken", schedule={"days": [1], "start_time": "08:00", "end_time": "17:00",
                                           "timezone": "Mars/Olympus"})
    assert [f.rule.name for f in evaluate([broken, rule(name="fine")], event())] == ["fine"]


def test_the_cooldown_subject_is_the_person_else_the_cluster_else_the_track():
    someone, cluster = person(), uuid.uuid4()
    assert evaluate([rule()], event(persons=(someone,)))[0].subject == f"person:{someone.id}"
    assert evaluate([rule()], event("face_detected", cluster_id=cluster))[0].subject == f"cluster:{cluster}"
    assert evaluate([rule()], event("human_detected", track_id="t-9"))[0].subject == "track:t-9"


def test_the_message_says_who_where_and_when_and_is_safe_with_hostile_names():
    hostile = person("blacklisted", name="Eve {0} %s\n\x1b[31mred\u202e")
    fact = event(persons=(hostile,), camera_name="Gate\r\nInjected: header", zone_ids=frozenset({ZONE}),
                 zone_names={ZONE: "Dock " + "x" * 500})
    [firing] = evaluate([rule(name="Watch {rule.id}", zone_id=ZONE)], fact)
    message = firing.message
    assert message.startswith('Blacklisted person "Eve {0} %s [31mred" recognised on camera "Gate Injected: header"')
    assert "\n" not in message and "\x1b" not in message and "\u202e" not in message
    assert 'rule "Watch {rule.id}"' in message and "2026-03-01 12:00:00 UTC" in message
    assert "…" in message and len(message) < 400  # the zone name was cut at 100 characters
    crowding = evaluate([rule(activity_type="crowding")], activity("crowding", camera_name="Hall"))[0]
    assert crowding.message.startswith('Crowding on camera "Hall"')
    assert crowding.alert_type == "suspicious_activity_crowding"
