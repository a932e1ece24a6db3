"""Repeated entry: the same identity entering a zone N times within a sliding window."""

from __future__ import annotations

from tests.analytics.scripts import INSIDE, OUTSIDE, at, feed, person, stay, zone
from vigil.control.analytics import ActivityType, TrackKind
from vigil.control.analytics.repeated_entry import RepeatedEntry


def repeated_entry(**parameters) -> RepeatedEntry:
    return RepeatedEntry(zone=zone("entry"), parameters={"min_entries": 3, "window": 600, **parameters})


def visit(track_id: str, start: float, *, inside_for: float = 4.0, **identity):
    """A track that walks up (outside), enters the zone for inside_for seconds, and ends inside."""
    walk_up = stay(track_id, start, start + 1.0, feet=OUTSIDE, **identity)
    inside = stay(track_id, start + 1.2, start + 1.2 + inside_for, **identity)
    end = person(track_id, INSIDE, start + 1.4 + inside_for, kind=TrackKind.END, **identity)
    return walk_up + inside + [end]


def test_third_entry_within_the_window_fires_once():
    sequence = visit("a", 0, person_id="p1") + visit("b", 100, person_id="p1") + visit("c", 200, person_id="p1")
    sequence += visit("d", 300, person_id="p1")  # a fourth in the same run does not fire again
    fired = feed(repeated_entry(), sequence)
    assert [f.seconds for f in fired] == [201.2]
    detection = fired[0].detection
    assert detection.activity_type is ActivityType.REPEATED_ENTRY
    assert detection.person_id == "p1" and detection.cluster_id is None
    assert detection.track_ids == ("a", "b", "c")
    assert detection.started_at == at(1.2) and detection.detected_at == at(201.2)
    assert detection.evidence["entry_count"] == 3 and detection.evidence["window_seconds"] == 600.0
    assert detection.evidence["entry_times"] == [at(1.2).isoformat(), at(101.2).isoformat(), at(201.2).isoformat()]
    assert detection.evidence["location"] == {"x": 0.6, "y": 0.6}


def test_entries_spread_wider_than_the_window_do_not_fire():
    sequence = visit("a", 0, person_id="p1") + visit("b", 350, person_id="p1") + visit("c", 700, person_id="p1")
    assert feed(repeated_entry(), sequence) == []


def test_different_people_do_not_add_up():
    sequence = visit("a", 0, person_id="p1") + visit("b", 100, person_id="p2") + visit("c", 200, cluster_id="c1")
    assert feed(repeated_entry(), sequence) == []


def test_tracks_without_identity_are_not_counted():
    assert feed(repeated_entry(), visit("a", 0) + visit("b", 100) + visit("c", 200)) == []


def test_unknown_faces_are_counted_by_cluster():
    sequence = visit("a", 0, cluster_id="c1") + visit("b", 100, cluster_id="c1") + visit("c", 200, cluster_id="c1")
    fired = feed(repeated_entry(), sequence)
    assert len(fired) == 1 and fired[0].detection.cluster_id == "c1" and fired[0].detection.person_id is None


def test_a_track_split_by_the_tracker_is_one_entry():
    # track a ends inside and track b picks the same person up 0.6 s later, still inside
    split = stay("a", 0.0, 5.0, person_id="p1") + stay("b", 5.6, 10.0, person_id="p1")
    sequence = split + visit("c", 100, person_id="p1")
    assert feed(repeated_entry(), sequence) == []
    assert len(feed(repeated_entry(), sequence + visit("d", 200, person_id="p1"))) == 1


def test_an_entry_counts_from_when_the_stay_began_once_recognised():
    # recognised only 3 s after walking in: the entry is still dated when the stay began
    late = stay("c", 200.0, 203.0) + stay("c", 203.2, 206.0, person_id="p1")
    fired = feed(repeated_entry(), visit("a", 0, person_id="p1") + visit("b", 100, person_id="p1") + late)
    assert [f.seconds for f in fired] == [203.2]
    assert fired[0].detection.evidence["entry_times"][-1] == at(200.0).isoformat()


def test_a_new_run_after_a_quiet_spell_fires_again():
    first = visit("a", 0, person_id="p1") + visit("b", 100, person_id="p1") + visit("c", 200, person_id="p1")
    second = visit("d", 1000, person_id="p1") + visit("e", 1100, person_id="p1") + visit("f", 1200, person_id="p1")
    assert [f.seconds for f in feed(repeated_entry(), first + second)] == [201.2, 1201.2]


def test_identities_are_forgotten_after_the_window():
    analytic = repeated_entry()
    state = analytic.new_state()
    feed(analytic, [obs for i in range(50) for obs in visit(f"t{i}", i * 10, person_id=f"p{i}")], state)
    assert analytic.state_size(state) == 50
    feed(analytic, visit("late", 2000, person_id="someone else"), state)
    assert analytic.state_size(state) == 1
