"""Intrusion and zone breach: the feet entering a restricted zone, and forbidden crossings."""

from __future__ import annotations

from tests.analytics.scripts import INSIDE, OUTSIDE, at, feed, path, person, stay, zone
from vigil.control.analytics import ActivityType, Severity, TrackKind
from vigil.control.analytics.zone_entry import Intrusion, ZoneBreach


def walk_in(track_id: str, cross_at: float, end: float, **kwargs):
    """Outside until cross_at, inside from then on."""
    return path(track_id, 0.0, end, lambda t: INSIDE if t >= cross_at else OUTSIDE, **kwargs)


def test_intrusion_fires_once_when_the_feet_cross_into_a_restricted_zone():
    intrusion = Intrusion(zone=zone("restricted"), severity=Severity.HIGH, config_id="cfg-1")
    fired = feed(intrusion, walk_in("t1", 1.2, 6.0, person_id="p1"))
    assert [f.seconds for f in fired] == [1.2]
    detection = fired[0].detection
    assert detection.activity_type is ActivityType.INTRUSION
    assert detection.severity is Severity.HIGH and detection.config_id == "cfg-1"
    assert detection.zone_id == "zone-1" and detection.track_ids == ("t1",) and detection.person_id == "p1"
    assert detection.started_at == detection.detected_at == at(1.2)
    assert detection.evidence == {"analytic": "intrusion@1", "zone_name": "Lobby",
                                  "entry_point": {"x": 0.6, "y": 0.6}, "walked_in": True}


def test_intrusion_fires_for_a_track_that_appears_inside():
    fired = feed(Intrusion(zone=zone("restricted")), stay("t1", 0.0, 5.0))
    assert [f.seconds for f in fired] == [0.0]
    assert fired[0].detection.evidence["walked_in"] is False


def test_intrusion_judges_the_feet_not_the_box():
    # the body overlaps the zone (box from y 0.25 to 0.85 at x 0.6) but the feet stand below it
    feet_below = (0.6, 0.85)
    assert feed(Intrusion(zone=zone("restricted")), stay("t1", 0.0, 5.0, feet=feet_below, height=0.6)) == []


def test_intrusion_ignores_jitter_and_short_excursions_but_not_a_return():
    jitter = path("t1", 0.0, 4.0, lambda t: INSIDE if round(t / 0.2) % 2 else OUTSIDE)
    assert len(feed(Intrusion(zone=zone("restricted")), jitter)) == 1
    # out for 1.8 s (< max_gap 2 s), back: the same stay
    short = path("t2", 0.0, 8.0, lambda t: OUTSIDE if 2.0 < t <= 3.8 else INSIDE)
    assert [f.seconds for f in feed(Intrusion(zone=zone("restricted")), short)] == [0.0]
    # out for 3 s: a new stay, a new intrusion
    long = path("t3", 0.0, 8.0, lambda t: OUTSIDE if 2.0 < t <= 5.0 else INSIDE)
    assert [f.seconds for f in feed(Intrusion(zone=zone("restricted")), long)] == [0.0, 5.2]


def test_intrusion_never_fires_outside_the_zone():
    assert feed(Intrusion(zone=zone("restricted")), stay("t1", 0.0, 10.0, feet=OUTSIDE)) == []


def test_breach_of_a_restricted_zone_needs_an_observed_crossing():
    breach = ZoneBreach(zone=zone("restricted"))
    fired = feed(breach, walk_in("t1", 1.2, 6.0))
    assert [f.seconds for f in fired] == [1.2]
    assert fired[0].detection.activity_type is ActivityType.ZONE_BREACH
    assert fired[0].detection.evidence["direction"] == "in"
    assert feed(ZoneBreach(zone=zone("restricted")), stay("t2", 0.0, 6.0)) == []


def test_breach_of_an_entry_zone_is_walking_into_it_from_the_scene():
    assert [f.seconds for f in feed(ZoneBreach(zone=zone("entry")), walk_in("t1", 2.0, 6.0))] == [2.0]
    # appearing at the entrance and walking into the scene is how an entry zone is used
    arrives = path("t2", 0.0, 6.0, lambda t: INSIDE if t < 2.0 else OUTSIDE)
    assert feed(ZoneBreach(zone=zone("entry")), arrives) == []


def test_breach_of_an_exit_zone_is_walking_out_of_it_into_the_scene():
    comes_in = path("t1", 0.0, 6.0, lambda t: INSIDE if t <= 2.0 else OUTSIDE)
    fired = feed(ZoneBreach(zone=zone("exit")), comes_in)
    # confirmed once outside for longer than max_gap: last inside 2.0, first outside beyond 4.0
    assert [f.seconds for f in fired] == [4.2]
    detection = fired[0].detection
    assert detection.started_at == at(2.0)
    assert detection.evidence["direction"] == "out"
    assert detection.evidence["last_inside_point"] == {"x": 0.6, "y": 0.6}
    assert detection.evidence["location"] == {"x": 0.2, "y": 0.6}


def test_leaving_through_an_exit_zone_is_no_breach():
    leaves = walk_in("t1", 2.0, 5.0)
    leaves.append(person("t1", INSIDE, 5.2, kind=TrackKind.END))
    assert feed(ZoneBreach(zone=zone("exit")), leaves) == []
    # stepping out of the exit zone for less than max_gap is no crossing either
    hesitates = path("t2", 0.0, 8.0, lambda t: OUTSIDE if 3.0 < t <= 4.8 else INSIDE)
    assert feed(ZoneBreach(zone=zone("exit")), hesitates) == []
