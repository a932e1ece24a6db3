"""Crowding: at least N distinct persons in the zone at once, with hysteresis."""

from __future__ import annotations

from tests.analytics.scripts import INSIDE, OUTSIDE, at, feed, in_time_order, path, person, stay, zone
from vigil.control.analytics import ActivityType, TrackKind
from vigil.control.analytics.crowding import Crowding

SPOTS = [(0.5, 0.5), (0.6, 0.6), (0.7, 0.7), (0.5, 0.7)]


def crowding(**parameters) -> Crowding:
    return Crowding(zone=zone(), parameters={"min_persons": 3, "min_duration": 2, **parameters})


def group(count: int, start: float, end: float, **kwargs):
    """count persons standing in the zone, their updates staggered like independent tracks."""
    return [stay(f"t{i}", start + i * 0.05, end, feet=SPOTS[i], **kwargs) for i in range(count)]


def test_crowd_fires_once_after_it_persists():
    fired = feed(crowding(), in_time_order(*group(3, 0.0, 20.0, person_id="p0")))
    assert len(fired) == 1
    detection = fired[0].detection
    # the third person arrives at 0.1; two seconds later the crowd has persisted
    assert detection.started_at == at(0.1) and fired[0].seconds == 2.1
    assert detection.activity_type is ActivityType.CROWDING
    assert detection.track_ids == ("t0", "t1", "t2")
    assert detection.evidence["person_count"] == 3 and detection.evidence["min_persons"] == 3
    assert detection.evidence["duration_seconds"] == 2.0
    assert detection.evidence["cluster_center"] == {"x": 0.6, "y": 0.6}
    assert detection.evidence["person_ids"] == ["p0"]


def test_one_person_short_of_a_crowd_does_not_fire():
    assert feed(crowding(), in_time_order(*group(2, 0.0, 30.0))) == []


def test_a_crowd_shorter_than_min_duration_does_not_fire():
    two = group(2, 0.0, 10.0)
    brief = stay("t9", 3.0, 4.6) + [person("t9", INSIDE, 4.8, kind=TrackKind.END)]
    assert feed(crowding(), in_time_order(*two, brief)) == []


def test_persons_outside_the_zone_do_not_count():
    outside = stay("t9", 0.0, 10.0, feet=OUTSIDE)
    assert feed(crowding(), in_time_order(*group(2, 0.0, 10.0), outside)) == []


def test_a_member_stepping_out_briefly_does_not_refire():
    # t2 leaves the zone for 3 s: the count drops after max_gap, but the crowd is over only when
    # it stayed below min_persons for longer than max_gap as well
    t0, t1 = group(2, 0.0, 30.0)
    wanders = path("t2", 0.1, 30.0, lambda t: OUTSIDE if 10.0 < t < 13.0 else (0.7, 0.7))
    assert [f.seconds for f in feed(crowding(), in_time_order(t0, t1, wanders))] == [2.1]


def test_the_crowd_fires_again_after_it_dispersed():
    t0, t1 = group(2, 0.0, 40.0)
    away = path("t2", 0.1, 40.0, lambda t: OUTSIDE if 10.0 < t < 20.0 else (0.7, 0.7))
    fired = feed(crowding(), in_time_order(t0, t1, away))
    # back at 20.1, crowd again from then on, fires 2 s later
    assert [f.seconds for f in fired] == [2.1, 22.1]


def test_ended_tracks_leave_the_crowd():
    crowd = crowding()
    state = crowd.new_state()
    three = [seq + [person(seq[0].track_id, seq[-1].box.feet, 5.0, kind=TrackKind.END)]
             for seq in group(3, 0.0, 4.8)]
    assert len(feed(crowd, in_time_order(*three), state)) == 1
    assert crowd.state_size(state) == 0


def test_whole_frame_crowd_with_the_default_threshold():
    fired = feed(Crowding(), in_time_order(*[stay(f"t{i}", 0.0, 10.0, feet=(0.1 * i + 0.05, 0.9))
                                            for i in range(5)]))
    assert len(fired) == 1 and fired[0].detection.zone_id is None
    assert fired[0].detection.evidence["person_count"] == 5
