"""Running: smoothed speed in person heights per second above a threshold, sustained."""

from __future__ import annotations

import math

import pytest

from tests.analytics.scripts import feed, path, zone
from vigil.control.analytics import ActivityType
from vigil.control.analytics.running import Running

HEIGHT = 0.05  # box height in frame heights: a person far enough away to run 9 s in view


def moving_down(track_id: str, start: float, end: float, heights_per_second, **kwargs):
    """Vertical motion (no aspect involved); heights_per_second(t) gives the speed at t."""
    def where(t: float) -> tuple[float, float]:
        # integrate the speed over 0.01 s steps: position in frame heights
        steps = round((t - start) / 0.01)
        travelled = sum(heights_per_second(start + i * 0.01) * 0.01 for i in range(steps)) * HEIGHT
        return (0.5, 0.1 + travelled)
    return path(track_id, start, end, where, height=HEIGHT, **kwargs)


def constant(speed: float):
    return lambda _t: speed


def running(**parameters) -> Running:
    return Running(parameters=parameters)


def test_sustained_running_fires_once_with_its_speed():
    fired = feed(running(), moving_down("t1", 0.0, 2.0, constant(2.5)))
    # speed is known once half the 1 s window is observed (0.6 s), then must hold 1 s
    assert [f.seconds for f in fired] == [1.6]
    detection = fired[0].detection
    assert detection.activity_type is ActivityType.RUNNING and detection.zone_id is None
    assert detection.evidence["speed"] == pytest.approx(2.5, abs=0.01)
    assert detection.evidence["speed_unit"] == "person_heights/s"
    assert detection.evidence["duration_seconds"] == 1.0
    assert detection.evidence["analytic"] == "running@1"


@pytest.mark.parametrize("speed", [0.8, 1.4])
def test_walking_and_just_below_the_threshold_do_not_fire(speed):
    assert feed(running(), moving_down("t1", 0.0, 3.0, constant(speed))) == []


def test_a_sprint_shorter_than_min_duration_does_not_fire():
    # 0.6 s at 3 heights/s: smoothed over 1 s it reads >= 1.5 for about 0.7 s, short of 1 s
    burst = moving_down("t1", 0.0, 4.0, lambda t: 3.0 if 1.0 <= t < 1.6 else 0.2)
    assert feed(running(), burst) == []


def test_box_jitter_of_a_standing_person_is_not_speed():
    jitter = path("t1", 0.0, 5.0, lambda t: (0.5 + 0.004 * math.sin(t * 31), 0.6 + 0.004 * math.cos(t * 17)),
                  height=HEIGHT)
    assert feed(running(), jitter) == []


def test_horizontal_motion_counts_in_the_frames_aspect():
    # 0.18 frame widths/s with a 0.2-high box: 1.6 heights/s on 16:9, only 0.9 on a square frame
    def across(t: float) -> tuple[float, float]:
        return (0.1 + 0.18 * t, 0.6)
    assert len(feed(running(), path("t1", 0.0, 3.0, across, height=0.2))) == 1
    assert feed(running(), path("t2", 0.0, 3.0, across, height=0.2, frame=(1080, 1080))) == []


def test_a_short_dip_does_not_end_the_run_but_a_long_one_does():
    short_dip = moving_down("t1", 0.0, 5.0, lambda t: 0.5 if 2.0 <= t < 2.6 else 2.5)
    assert len(feed(running(), short_dip)) == 1
    long_dip = moving_down("t2", 0.0, 9.0, lambda t: 0.5 if 2.0 <= t < 5.5 else 2.5)
    assert len(feed(running(), long_dip)) == 2


def test_running_is_judged_only_inside_the_zone():
    band = zone(points=[(0.0, 0.9), (1.0, 0.9), (1.0, 1.0), (0.0, 1.0)])  # the feet never get down there
    assert feed(Running(zone=band), moving_down("t1", 0.0, 2.0, constant(2.5))) == []


def test_observation_gaps_are_not_turned_into_speed():
    # two halves of a slow walk 3 s apart with a jump in between (re-identified after occlusion)
    before = path("t1", 0.0, 2.0, lambda t: (0.3, 0.5 + 0.01 * t), height=HEIGHT)
    after = path("t1", 5.0, 7.0, lambda t: (0.7, 0.5 + 0.01 * t), height=HEIGHT)
    assert feed(running(), before + after) == []


def test_speed_threshold_and_duration_are_configurable():
    fired = feed(running(min_speed=0.6, min_duration=0.4), moving_down("t1", 0.0, 2.0, constant(0.8)))
    assert [f.seconds for f in fired] == [1.0]
