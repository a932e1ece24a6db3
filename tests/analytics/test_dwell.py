"""Dwell time and loitering: continuous presence beyond a threshold, gaps forgiven."""

from __future__ import annotations

from tests.analytics.scripts import INSIDE, OUTSIDE, at, feed, path, stay, zone
from vigil.control.analytics import ActivityType
from vigil.control.analytics.dwell import DwellTime, Loitering

WIDE = [(0.0, 0.3), (1.0, 0.3), (1.0, 1.0), (0.0, 1.0)]


def dwell(**parameters) -> DwellTime:
    return DwellTime(zone=zone(), parameters={"min_duration": 10, **parameters})


def loitering(**parameters) -> Loitering:
    return Loitering(zone=zone(points=WIDE), parameters={"min_duration": 10, **parameters})


def test_dwell_fires_once_when_the_stay_reaches_the_threshold():
    fired = feed(dwell(), stay("t1", 3.0, 60.0, person_id="p1"))
    assert [f.seconds for f in fired] == [13.0]
    detection = fired[0].detection
    assert detection.activity_type is ActivityType.DWELL_TIME
    assert detection.started_at == at(3.0) and detection.detected_at == at(13.0)
    assert detection.evidence == {"analytic": "dwell_time@1", "zone_name": "Lobby", "duration_seconds": 10.0,
                                  "min_duration_seconds": 10.0, "location": {"x": 0.6, "y": 0.6}}


def test_dwell_just_short_of_the_threshold_does_not_fire():
    assert feed(dwell(), stay("t1", 0.0, 9.8)) == []


def test_dwell_outside_the_zone_does_not_fire():
    assert feed(dwell(), stay("t1", 0.0, 30.0, feet=OUTSIDE)) == []


def test_dwell_tolerates_an_occlusion_shorter_than_max_gap():
    occluded = [obs for obs in stay("t1", 0.0, 12.0) if not 4.0 < (obs.capture_time - at(0)).total_seconds() < 5.8]
    assert [f.seconds for f in feed(dwell(), occluded)] == [10.0]


def test_dwell_restarts_after_leaving_for_longer_than_max_gap():
    # in 0..6, out 6.2..9.2 (3 s), in again 9.4..19.2: 9.8 s of the second stay
    sequence = path("t1", 0.0, 19.2, lambda t: OUTSIDE if 6.0 < t < 9.4 else INSIDE)
    assert feed(dwell(), sequence) == []
    # the same with a longer second stay fires once, for that stay
    fired = feed(dwell(), path("t2", 0.0, 25.0, lambda t: OUTSIDE if 6.0 < t < 9.4 else INSIDE))
    assert [f.seconds for f in fired] == [19.4]
    assert fired[0].detection.started_at == at(9.4)


def test_each_track_dwells_on_its_own():
    fired = feed(dwell(), sorted(stay("t1", 0.0, 15.0) + stay("t2", 2.0, 15.0), key=lambda o: o.capture_time))
    assert [(f.seconds, f.detection.track_ids) for f in fired] == [(10.0, ("t1",)), (12.0, ("t2",))]


def test_loitering_fires_for_someone_waiting():
    fired = feed(loitering(), stay("t1", 0.0, 30.0))
    assert [f.seconds for f in fired] == [10.0]
    evidence = fired[0].detection.evidence
    assert evidence["analytic"] == "loitering@1" and evidence["duration_seconds"] == 10.0
    assert evidence["net_speed"] == 0.0 and evidence["max_net_speed"] == 0.2


def test_loitering_fires_for_someone_pacing():
    # 0.3 of the frame width back and forth every 4 s: a lot of walking, little net progress
    def pacing(t: float) -> tuple[float, float]:
        phase = (t % 4.0) / 4.0
        return (0.3 + 0.3 * (2 * phase if phase < 0.5 else 2 - 2 * phase), 0.6)
    # at 10 s the person is at the far end (net 2.7 heights in 10 s: still too fast); on the way
    # back the net speed drops under 0.2 at 10.6 s
    assert [f.seconds for f in feed(loitering(), path("t1", 0.0, 20.0, pacing))] == [10.6]


def test_passing_through_slowly_is_dwell_but_not_loitering():
    # 0.8 person heights/s across a wide zone: box height 0.1 of the frame, so 0.08 frame
    # heights/s, which is 0.045 frame widths/s on a 16:9 frame; 12 s inside
    def walking(t: float) -> tuple[float, float]:
        return (0.2 + 0.045 * t, 0.6)
    walk = path("t1", 0.0, 12.0, walking, height=0.1)
    assert feed(loitering(), walk) == []
    assert len(feed(DwellTime(zone=zone(points=WIDE), parameters={"min_duration": 10}), walk)) == 1


def test_loitering_on_the_whole_frame():
    assert [f.seconds for f in feed(Loitering(parameters={"min_duration": 10}), stay("t1", 0.0, 12.0))] == [10.0]
