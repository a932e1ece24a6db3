"""The engine: configuration per camera, batches, stream time, and bounded state."""

from __future__ import annotations

import pytest

from tests.analytics.scripts import CAMERA, INSIDE, OUTSIDE, at, in_time_order, person, stay, zone
from vigil.control.analytics import (
    ActivityType,
    AnalyticsConfig,
    AnalyticsEngine,
    ObjectClass,
    Severity,
    TrackKind,
    ZoneThresholds,
)


def engine_with(*configs: AnalyticsConfig, **kwargs) -> AnalyticsEngine:
    engine = AnalyticsEngine(**kwargs)
    engine.configure_camera(CAMERA, configs)
    return engine


def run_batches(engine: AnalyticsEngine, observations, batch_size: int = 25):
    fired = []
    for i in range(0, len(observations), batch_size):
        fired += engine.observe_batch(CAMERA, observations[i:i + batch_size])
    return fired


RESTRICTED = zone("restricted", zone_id="zone-r", name="Server room")
LOBBY = zone("interest", zone_id="zone-l", thresholds=ZoneThresholds(dwell_threshold=5.0))


def test_each_config_raises_its_own_activity():
    engine = engine_with(
        AnalyticsConfig("cfg-intrusion", ActivityType.INTRUSION, RESTRICTED, Severity.CRITICAL),
        AnalyticsConfig("cfg-dwell", "dwell_time", LOBBY),
    )
    fired = run_batches(engine, stay("t1", 0.0, 8.0))
    assert [(d.config_id, d.activity_type, d.severity, d.detected_at) for d in fired] == [
        ("cfg-intrusion", ActivityType.INTRUSION, Severity.CRITICAL, at(0.0)),
        ("cfg-dwell", ActivityType.DWELL_TIME, Severity.MEDIUM, at(5.0)),  # the zone's dwell threshold
    ]
    assert all(d.camera_id == CAMERA for d in fired)


def test_schedules_without_time_zone_follow_the_cameras_site():
    allowed = {"days": [1, 2, 3, 4, 5], "start_time": "09:00", "end_time": "18:00"}  # alert_rules spelling
    engine = engine_with(AnalyticsConfig("cfg", ActivityType.AFTER_HOURS, parameters={"allowed_hours": allowed},
                                         site_timezone="Asia/Tokyo"))
    # Friday 12:00 UTC is Friday 21:00 in Tokyo: after hours there, though midday in UTC
    fired = run_batches(engine, stay("t1", 0.0, 2.0))
    assert len(fired) == 1 and fired[0].evidence["local_time"] == "2025-03-07T21:00:00+09:00"


def test_face_observations_are_ignored():
    engine = engine_with(AnalyticsConfig("cfg", ActivityType.INTRUSION, RESTRICTED))
    faces = stay("f1", 0.0, 3.0, object_class=ObjectClass.FACE, height=0.05)
    assert run_batches(engine, faces) == []
    assert engine.state_size(CAMERA) == 0


def test_an_observation_older_than_its_track_is_skipped():
    engine = engine_with(AnalyticsConfig("cfg", ActivityType.DWELL_TIME, LOBBY, parameters={"min_duration": 5}))
    sequence = stay("t1", 0.0, 4.0)
    late = person("t1", OUTSIDE, 1.0)  # would otherwise look like leaving the zone at 1.0
    assert run_batches(engine, sequence + [late] + stay("t1", 4.2, 6.0))[0].detected_at == at(5.0)


def test_unconfigured_cameras_raise_nothing_and_keep_nothing():
    engine = AnalyticsEngine()
    assert engine.observe_batch(CAMERA, stay("t1", 0.0, 3.0)) == []
    assert engine.state_size(CAMERA) == 0


def test_a_batch_for_another_camera_is_refused():
    engine = engine_with(AnalyticsConfig("cfg", ActivityType.INTRUSION, RESTRICTED))
    with pytest.raises(ValueError, match=r"observations\[0\]\.camera_id: 'cam-1' is not camera 'cam-2'"):
        engine.observe_batch("cam-2", stay("t1", 0.0, 1.0))


@pytest.mark.parametrize("config, message", [
    (AnalyticsConfig("c", ActivityType.FALL), r"configs\[1\]\.activity_type: no analytic detects fall"),
    (AnalyticsConfig("c", ActivityType.INTRUSION), r"configs\[1\]\.zone: required by intrusion"),
    (AnalyticsConfig("c", ActivityType.CROWDING, parameters={"min_persons": 0}),
     r"configs\[1\]\.parameters\.min_persons: must be >= 2"),
])
def test_bad_configs_name_the_field_and_change_nothing(config, message):
    engine = engine_with(AnalyticsConfig("kept", ActivityType.INTRUSION, RESTRICTED))
    with pytest.raises(ValueError, match=message):
        engine.configure_camera(CAMERA, [AnalyticsConfig("kept", ActivityType.INTRUSION, RESTRICTED), config])
    assert len(engine.observe_batch(CAMERA, stay("t1", 0.0, 0.0))) == 1


def test_config_fields_are_validated():
    with pytest.raises(ValueError, match="activity_type: must be one of intrusion, "):
        AnalyticsConfig("c", "teleporting")
    with pytest.raises(ValueError, match="severity: must be one of low, medium, high, critical"):
        AnalyticsConfig("c", ActivityType.INTRUSION, RESTRICTED, "urgent")
    with pytest.raises(ValueError, match=r"configs\[1\]\.id: duplicate 'c'"):
        AnalyticsEngine().configure_camera(CAMERA, [AnalyticsConfig("c", "crowding")] * 2)


def test_reloading_unchanged_configs_keeps_episodes_and_timers():
    dwell = AnalyticsConfig("cfg-dwell", ActivityType.DWELL_TIME, LOBBY, parameters={"min_duration": 5})
    intrusion = AnalyticsConfig("cfg-intrusion", ActivityType.INTRUSION, RESTRICTED)
    engine = engine_with(dwell, intrusion)
    fired = run_batches(engine, stay("t1", 0.0, 3.0))
    engine.configure_camera(CAMERA, [dwell, AnalyticsConfig("cfg-intrusion", ActivityType.INTRUSION, RESTRICTED)])
    fired += run_batches(engine, stay("t1", 3.2, 6.0))
    # the intrusion was not raised again and the dwell timer kept running from 0.0
    assert [(d.config_id, d.detected_at) for d in fired] == [("cfg-intrusion", at(0.0)), ("cfg-dwell", at(5.0))]


def test_a_changed_config_starts_afresh():
    engine = engine_with(AnalyticsConfig("cfg", ActivityType.DWELL_TIME, LOBBY, parameters={"min_duration": 5}))
    run_batches(engine, stay("t1", 0.0, 3.0))
    engine.configure_camera(CAMERA, [AnalyticsConfig("cfg", ActivityType.DWELL_TIME, LOBBY,
                                                     parameters={"min_duration": 4})])
    assert [d.detected_at for d in run_batches(engine, stay("t1", 3.2, 8.0))] == [at(7.2)]


def test_no_configs_removes_the_camera():
    engine = engine_with(AnalyticsConfig("cfg", ActivityType.INTRUSION, RESTRICTED))
    engine.configure_camera(CAMERA, [])
    assert engine.observe_batch(CAMERA, stay("t1", 0.0, 1.0)) == []


ALL_ANALYTICS = (
    AnalyticsConfig("intrusion", ActivityType.INTRUSION, RESTRICTED),
    AnalyticsConfig("breach", ActivityType.ZONE_BREACH, RESTRICTED),
    AnalyticsConfig("loitering", ActivityType.LOITERING, LOBBY),
    AnalyticsConfig("dwell", ActivityType.DWELL_TIME, LOBBY),
    AnalyticsConfig("crowding", ActivityType.CROWDING, LOBBY, parameters={"min_persons": 3}),
    AnalyticsConfig("after_hours", ActivityType.AFTER_HOURS, parameters={"allowed_hours": {
        "start": "08:00", "end": "18:00", "timezone": "Europe/London"}}),
    AnalyticsConfig("repeated", ActivityType.REPEATED_ENTRY, LOBBY, parameters={"window": 60}),
    AnalyticsConfig("running", ActivityType.RUNNING),
)


def crowd_of_short_tracks(count: int, *, end_them: bool):
    """count tracks, ten at a time in the zone for 3 s each, recognised as 50 recurring people."""
    sequences = []
    for i in range(count):
        start = (i // 10) * 3.0
        track = stay(f"t{i}", start, start + 2.8, feet=(0.45 + 0.03 * (i % 10), 0.6), person_id=f"p{i % 50}")
        if end_them:
            track.append(person(f"t{i}", INSIDE, start + 2.8, kind=TrackKind.END, person_id=f"p{i % 50}"))
        sequences.append(track)
    return in_time_order(*sequences)


def test_state_is_released_when_tracks_end():
    engine = engine_with(*ALL_ANALYTICS)
    run_batches(engine, crowd_of_short_tracks(1000, end_them=True), batch_size=500)
    # nothing per track remains; repeated_entry remembers only the 50 people seen within its window
    assert engine.state_size(CAMERA) == 50


def test_state_is_released_when_tracks_go_stale_without_an_end():
    engine = engine_with(*ALL_ANALYTICS)
    observations = crowd_of_short_tracks(2000, end_them=False)
    half = len(observations) // 2
    # a track is forgotten 30 s of stream time after it was last seen: with 10 new tracks every
    # 3 s, at most 110 are held, by the engine and by each analytic, plus the 50 people
    bound = (1 + len(ALL_ANALYTICS)) * 110 + 50
    run_batches(engine, observations[:half], batch_size=500)
    assert engine.state_size(CAMERA) <= bound
    run_batches(engine, observations[half:], batch_size=500)
    assert engine.state_size(CAMERA) <= bound


def test_stale_after_must_exceed_the_gap_tolerance():
    with pytest.raises(ValueError, match="stale_after: must exceed the longest max_gap"):
        AnalyticsEngine(stale_after=5)


def test_describe_lists_every_registered_analytic():
    refs = [d["analytic"] for d in AnalyticsEngine().describe()]
    assert refs == ["after_hours@1", "crowding@1", "dwell_time@1", "dwell_time@2", "intrusion@1", "intrusion@2",
                    "loitering@1", "loitering@2", "repeated_entry@1", "running@1", "zone_breach@1", "zone_breach@2"]
