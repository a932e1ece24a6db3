"""A test-only second version of loitering, registered beside the real first one."""

from __future__ import annotations

from vigil.control.analytics import AnalyticsRegistry
from vigil.control.analytics.crowding import Crowding
from vigil.control.analytics.dwell import Loitering
from vigil.control.analytics.parameters import MAX_GAP, ParameterSpec, ParameterType


class LoiteringV2(Loitering):
    """Test-only second version: a shorter default stay, and a parameter version 1 does not have."""

    version = "2"
    parameters = (
        ParameterSpec("min_duration", ParameterType.DURATION, unit="s", default=3.0, minimum=1.0, maximum=600.0,
                      zone_threshold="loiter_threshold", description="Minimum continuous stay in the zone."),
        ParameterSpec("max_net_speed", ParameterType.NUMBER, unit="person_heights/s", default=0.2, minimum=0.0,
                      maximum=5.0, exclusive_minimum=True, description="Largest net speed that still lingers."),
        ParameterSpec("min_persons_nearby", ParameterType.INTEGER, unit="persons", default=0, minimum=0,
                      maximum=10, description="Test-only: a parameter only version 2 knows."),
        MAX_GAP,
    )


VERSIONED = AnalyticsRegistry((Loitering, LoiteringV2, Crowding))
