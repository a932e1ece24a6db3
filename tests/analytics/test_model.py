"""Input validation of the analytics types: zone polygons, boxes, observations."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.analytics.scripts import SQUARE, T0, at, person, zone
from vigil.control.analytics import ActivityType, Box, Detection, Severity, ZoneType


def test_zone_from_points_or_stored_mappings():
    pairs = zone(points=SQUARE)
    stored = zone(points=[{"x": x, "y": y} for x, y in SQUARE])
    assert pairs == stored
    assert pairs.zone_type is ZoneType.INTEREST
    assert pairs.polygon.area == pytest.approx(0.16)


def test_zone_closing_point_is_allowed():
    assert zone(points=[(0.1, 0.1), (0.9, 0.1), (0.5, 0.9), (0.1, 0.1)]).polygon.area > 0


def test_zone_contains_uses_the_polygon_with_its_boundary():
    triangle = zone(points=[(0.1, 0.1), (0.9, 0.1), (0.1, 0.9)])
    assert triangle.contains((0.2, 0.2))
    assert triangle.contains((0.5, 0.1))  # on an edge
    assert not triangle.contains((0.8, 0.8))  # inside the bounding box, outside the triangle


@pytest.mark.parametrize("points, message", [
    ([(0.1, 0.1), (0.9, 0.1)], "polygon: needs at least 3 points, got 2"),
    ([(0.1, 0.1), (0.9, 0.1), (0.1, 0.1)], "polygon: needs at least 3 points, got 2"),
    ([(0.0, 0.0)] * 101 + [(1.0, 1.0)], "polygon: at most 100 points"),
    ([(0.1, 0.1), (1.2, 0.1), (0.5, 0.9)], r"polygon\[1\]\.x: must be in \[0, 1\], got 1.2"),
    ([(0.1, 0.1), (0.9, -0.1), (0.5, 0.9)], r"polygon\[1\]\.y: must be in \[0, 1\]"),
    ([(0.1, 0.1), (0.9, float("nan")), (0.5, 0.9)], r"polygon\[1\]\.y: must be in \[0, 1\]"),
    ([(0.1, 0.1), (0.9, "0.1"), (0.5, 0.9)], r"polygon\[1\]\.y: must be a number"),
    ([(0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9)], "polygon: .*does not intersect itself .*Self-intersection"),
    ([(0.1, 0.1), (0.5, 0.5), (0.9, 0.9)], "polygon: .*encloses an area"),
])
def test_zone_polygon_is_validated(points, message):
    with pytest.raises(ValueError, match=message):
        zone(points=points)


def test_zone_type_is_validated():
    with pytest.raises(ValueError, match="zone_type: must be one of restricted, interest, entry, exit"):
        zone(zone_type="forbidden")


def test_box_feet_are_the_bottom_centre():
    assert Box(0.2, 0.3, 0.1, 0.4).feet == pytest.approx((0.25, 0.7))
    assert Box(0.2, 0.3, 0.1, 0.4).centre == pytest.approx((0.25, 0.5))


@pytest.mark.parametrize("box, message", [
    ((0.2, 0.3, 0.0, 0.4), "box: width and height must be > 0"),
    ((0.9, 0.3, 0.2, 0.4), "box: must lie inside the frame"),
    ((0.2, 1.3, 0.1, 0.4), r"box.y: must be in \[0, 1\]"),
])
def test_box_is_validated(box, message):
    with pytest.raises(ValueError, match=message):
        Box(*box)


def test_box_tolerates_float32_rounding_at_the_frame_edge():
    assert Box(0.7, 0.6, 0.3000001, 0.4).feet[1] == pytest.approx(1.0)


def test_observation_needs_an_aware_capture_time():
    with pytest.raises(ValueError, match="capture_time: must be timezone-aware"):
        person("t1", (0.5, 0.5), datetime(2025, 3, 7, 12, 0))


def test_observation_identity_prefers_the_recognised_person():
    assert person("t1", (0.5, 0.5), 0, person_id="p1", cluster_id="c1").identity == ("person", "p1")
    assert person("t1", (0.5, 0.5), 0, cluster_id="c1").identity == ("cluster", "c1")
    assert person("t1", (0.5, 0.5), 0).identity is None


def test_observation_aspect_comes_from_the_frame_size():
    assert person("t1", (0.5, 0.5), 0).aspect == pytest.approx(16 / 9)
    assert person("t1", (0.5, 0.5), 0, frame=None).aspect == 1.0


def test_detection_details_are_json_ready():
    detection = Detection(
        ActivityType.DWELL_TIME, Severity.HIGH, 0.9, "cam-1", "zone-1", ("t1",), "p1", None,
        started_at=T0, detected_at=at(60), evidence={"analytic": "dwell_time@1", "duration_seconds": 60.0},
        config_id="cfg-1")
    assert detection.details() == {
        "analytic": "dwell_time@1", "duration_seconds": 60.0, "config_id": "cfg-1", "track_ids": ["t1"],
        "person_ids": ["p1"], "cluster_id": None, "started_at": T0.isoformat(),
    }
