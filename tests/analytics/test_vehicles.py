"""Vehicles in the zone analytics: version 2 of intrusion, zone breach, dwell time and loitering
watch what their `objects` parameter names (persons by default, as version 1 did); version 1 and
the other analytics stay with persons."""

from __future__ import annotations

import pytest

from tests.analytics.scripts import CAMERA, INSIDE, OUTSIDE, at, in_time_order, stay, ticks, vehicle, zone
from vigil.control.analytics import ActivityType, AnalyticsConfig, AnalyticsEngine, TrackKind

RESTRICTED = zone("restricted", zone_id="zone-r", name="Loading bay")
KERB = zone("interest", zone_id="zone-k", name="Kerb")


def engine_with(*configs: AnalyticsConfig) -> AnalyticsEngine:
    engine = AnalyticsEngine()
    engine.configure_camera(CAMERA, configs)
    return engine


def parked(track_id: str, start: float, end: float, label: str = "car", feet=INSIDE):
    return [vehicle(track_id, feet, t, label) for t in ticks(start, end)]


def driven_in(track_id: str, cross_at: float, end: float, label: str = "car"):
    return [vehicle(track_id, INSIDE if t >= cross_at else OUTSIDE, t, label) for t in ticks(0.0, end)]


def test_intrusion_2_watching_vehicles_fires_for_a_car_and_says_which():
    engine = engine_with(AnalyticsConfig("cfg", ActivityType.INTRUSION, RESTRICTED, analytic="intrusion@2",
                                         parameters={"objects": ["vehicle"]}))
    fired = engine.observe_batch(CAMERA, in_time_order(driven_in("v1", 1.0, 3.0), stay("p1", 0.0, 3.0)))
    assert [(d.track_ids, d.detected_at) for d in fired] == [(("v1",), at(1.0))]  # the person is not watched
    assert fired[0].evidence["analytic"] == "intrusion@2"
    assert (fired[0].evidence["object_class"], fired[0].evidence["object_label"]) == ("vehicle", "car")
    assert fired[0].details()["object_class"] == "vehicle"


@pytest.mark.parametrize("config", [
    AnalyticsConfig("latest", ActivityType.INTRUSION, RESTRICTED),  # intrusion@2, objects by default: persons
    AnalyticsConfig("v1", ActivityType.INTRUSION, RESTRICTED, analytic="intrusion@1"),
])
def test_without_vehicles_among_their_objects_analytics_see_persons_only(config):
    engine = engine_with(config)
    assert engine.observe_batch(CAMERA, parked("v1", 0.0, 5.0)) == []
    fired = engine.observe_batch(CAMERA, stay("p1", 5.2, 8.0))
    assert [d.track_ids for d in fired] == [("p1",)]
    assert "object_class" not in fired[0].evidence  # a person's activity, as before vehicles


def test_vehicles_never_make_a_crowd():
    engine = engine_with(AnalyticsConfig("crowd", ActivityType.CROWDING, KERB,
                                         parameters={"min_persons": 2, "min_duration": 1}))
    cars = [parked(f"v{i}", 0.0, 4.0, feet=(0.45 + 0.1 * i, 0.6)) for i in range(3)]
    assert engine.observe_batch(CAMERA, in_time_order(stay("p1", 0.0, 4.0), *cars)) == []
    assert len(engine.observe_batch(CAMERA, in_time_order(stay("p1", 4.2, 8.0), stay("p2", 4.2, 8.0)))) == 1


def test_loitering_2_over_trucks_is_a_truck_stopped_in_the_zone():
    engine = engine_with(AnalyticsConfig("stopped", ActivityType.LOITERING, KERB, analytic="loitering@2",
                                         parameters={"objects": ["truck", "bus"], "min_duration": 10}))
    fired = engine.observe_batch(CAMERA, in_time_order(parked("car", 0.0, 20.0, "car"),
                                                       parked("truck", 0.0, 20.0, "truck", feet=(0.5, 0.7))))
    assert [(d.track_ids, d.detected_at) for d in fired] == [(("truck",), at(10.0))]
    assert fired[0].evidence["object_label"] == "truck" and fired[0].evidence["net_speed"] == 0.0


def test_a_vehicle_driving_through_is_not_stopped():
    engine = engine_with(AnalyticsConfig("stopped", ActivityType.LOITERING, KERB, analytic="loitering@2",
                                         parameters={"objects": ["vehicle"], "min_duration": 5}))
    # crosses the zone (x 0.4 .. 0.8) slowly but steadily: 0.04 of the frame per second, over 10 s
    driving = [vehicle("v1", (0.4 + 0.04 * t, 0.6), t) for t in ticks(0.0, 10.0)]
    assert engine.observe_batch(CAMERA, driving) == []


def test_dwell_time_2_counts_persons_and_vehicles_it_watches_alike():
    engine = engine_with(AnalyticsConfig("dwell", ActivityType.DWELL_TIME, KERB, analytic="dwell_time@2",
                                         parameters={"objects": ["person", "motorcycle"], "min_duration": 3}))
    fired = engine.observe_batch(CAMERA, in_time_order(parked("m1", 0.0, 5.0, "motorcycle"),
                                                       parked("c1", 0.0, 5.0, "car"), stay("p1", 0.0, 5.0)))
    assert sorted(d.track_ids[0] for d in fired) == ["m1", "p1"]


def test_a_vehicle_track_ending_is_forgotten_like_a_persons():
    engine = engine_with(AnalyticsConfig("cfg", ActivityType.INTRUSION, RESTRICTED, analytic="intrusion@2",
                                         parameters={"objects": ["vehicle"]}))
    engine.observe_batch(CAMERA, parked("v1", 0.0, 1.0))
    assert engine.state_size(CAMERA) == 2  # the engine's open track, and the unit's presence of it
    engine.observe_batch(CAMERA, [vehicle("v1", INSIDE, 1.2, kind=TrackKind.END)])
    assert engine.state_size(CAMERA) == 0


@pytest.mark.parametrize("objects, field, reason", [
    (["boat"], "objects[0]", "must be one of person, vehicle, bicycle, bus, car, motorcycle, truck, got 'boat'"),
    (["car", "car"], "objects[1]", "lists 'car' twice"),
    ([], "objects", "must be a non-empty list"),
    ("vehicle", "objects", "must be a non-empty list"),
])
def test_objects_outside_the_manifest_are_refused_naming_the_item(objects, field, reason):
    with pytest.raises(ValueError) as refused:
        engine_with(AnalyticsConfig("cfg", ActivityType.INTRUSION, RESTRICTED, parameters={"objects": objects}))
    assert str(refused.value).startswith(f"configs[0].parameters.{field}: {reason}")


def test_version_1_has_no_objects_parameter():
    with pytest.raises(ValueError, match=r"parameters\.objects: not a parameter of intrusion@1"):
        engine_with(AnalyticsConfig("cfg", ActivityType.INTRUSION, RESTRICTED, analytic="intrusion@1",
                                    parameters={"objects": ["vehicle"]}))
