"""The registry: units by "name@version", versions side by side, and configurations resolving the
version they name (else the latest)."""

from __future__ import annotations

import pytest

from tests.analytics.scripts import CAMERA, stay, zone
from tests.analytics.versions import VERSIONED as REGISTRY
from tests.analytics.versions import LoiteringV2
from vigil.control.analytics import ActivityType, AnalyticsConfig, AnalyticsEngine, AnalyticsRegistry
from vigil.control.analytics.dwell import DwellTime, Loitering


def test_two_versions_of_a_unit_coexist_and_the_latest_is_the_default():
    assert REGISTRY.refs() == ["crowding@1", "loitering@1", "loitering@2"]
    assert REGISTRY.latest_for(ActivityType.LOITERING) is LoiteringV2
    assert REGISTRY.resolve(None, ActivityType.LOITERING) is LoiteringV2
    assert REGISTRY.resolve("loitering@1", ActivityType.LOITERING) is Loitering
    assert REGISTRY.latest_for(ActivityType.DWELL_TIME) is None


@pytest.mark.parametrize("ref, activity, message", [
    ("loitering@3", ActivityType.LOITERING, r"analytic: no analytic unit 'loitering@3' \(known: crowding@1, "),
    ("crowding@1", ActivityType.LOITERING, "analytic: crowding@1 does not detect loitering"),
    (None, ActivityType.DWELL_TIME, "activity_type: no analytic detects dwell_time"),
])
def test_a_reference_that_does_not_resolve_names_the_field(ref, activity, message):
    with pytest.raises(ValueError, match=message):
        REGISTRY.resolve(ref, activity)


def test_a_registry_refuses_duplicates_and_two_units_raising_one_activity():
    with pytest.raises(ValueError, match="loitering@1 registered twice"):
        AnalyticsRegistry((Loitering, Loitering))

    class Lingering(DwellTime):
        name = "lingering"
    with pytest.raises(ValueError, match="dwell_time is raised by both dwell_time and lingering"):
        AnalyticsRegistry((DwellTime, Lingering))


def test_each_configuration_runs_the_version_it_names():
    engine = AnalyticsEngine(REGISTRY)
    lobby = zone("interest")
    engine.configure_camera(CAMERA, [
        AnalyticsConfig("v1", ActivityType.LOITERING, lobby, analytic="loitering@1", parameters={"min_duration": 4}),
        AnalyticsConfig("v2", ActivityType.LOITERING, lobby, analytic="loitering@2"),
        AnalyticsConfig("latest", ActivityType.LOITERING, lobby, parameters={"min_persons_nearby": 2}),
    ])
    fired = engine.observe_batch(CAMERA, stay("t1", 0.0, 10.0))
    assert [(d.config_id, d.evidence["analytic"], (d.detected_at - fired[0].detected_at).total_seconds())
            for d in fired] == [("v2", "loitering@2", 0.0), ("latest", "loitering@2", 0.0), ("v1", "loitering@1", 1.0)]


def test_a_parameter_of_another_version_is_refused_naming_it():
    message = r"configs\[0\]\.parameters\.min_persons_nearby: not a parameter of loitering@1"
    with pytest.raises(ValueError, match=message):
        AnalyticsEngine(REGISTRY).configure_camera(CAMERA, [AnalyticsConfig(
            "v1", ActivityType.LOITERING, analytic="loitering@1", parameters={"min_persons_nearby": 2})])
