"""Suspicious-activity analytics over track geometry: pure, database-free units that the ingest
path feeds with track observations and that return detections to store and alert on.

Each analytic (intrusion, zone_breach, loitering, dwell_time, crowding, after_hours,
repeated_entry, running) is a small, versioned, self-describing class (see base.Analytic);
AnalyticsEngine runs the ones configured for each camera.
"""

from vigil.control.analytics.base import Analytic
from vigil.control.analytics.engine import AnalyticsConfig, AnalyticsEngine
from vigil.control.analytics.model import (
    ActivityType,
    Box,
    Detection,
    ObjectClass,
    Severity,
    TrackKind,
    TrackObservation,
    ZoneGeometry,
    ZoneThresholds,
    ZoneType,
)
from vigil.control.analytics.parameters import ParameterError, ParameterSpec, ParameterType
from vigil.control.analytics.registry import REGISTRY, AnalyticsRegistry

__all__ = [
    "REGISTRY", "ActivityType", "Analytic", "AnalyticsConfig", "AnalyticsEngine", "AnalyticsRegistry", "Box",
    "Detection", "ObjectClass", "ParameterError", "ParameterSpec", "ParameterType", "Severity", "TrackKind",
    "TrackObservation", "ZoneGeometry", "ZoneThresholds", "ZoneType",
]
