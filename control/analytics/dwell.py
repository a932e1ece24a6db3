"""Dwell time and loitering: a person stays in a zone longer than allowed.

The stay is continuous presence with gaps up to max_gap forgiven (presence.py); it is measured
from the first to the latest inside observation. Each fires once per stay, when the stay first
satisfies its condition. Version 2 of each watches the objects its `objects` parameter names
(persons by default): loitering@2 over vehicles is "a vehicle stopped in the zone".
"""

from __future__ import annotations

from vigil.control.analytics.base import rounded_point
from vigil.control.analytics.model import ActivityType, Detection, TrackObservation, ZoneType
from vigil.control.analytics.motion import frame_height_distance
from vigil.control.analytics.parameters import MAX_GAP, OBJECTS, ParameterSpec, ParameterType
from vigil.control.analytics.presence import INSIDE_STEPS, PresenceAnalytic, Step, Visit


def _unfired_stay_seconds(step: Step, visit: Visit | None) -> float | None:
    """How long the current stay has lasted, or None when there is nothing left to judge."""
    if step not in INSIDE_STEPS or visit.handled:
        return None
    return (visit.last_inside - visit.entered_at).total_seconds()


class DwellTime(PresenceAnalytic):
    name = "dwell_time"
    version = "1"
    activity_types = (ActivityType.DWELL_TIME,)
    summary = "A person stays in the zone at least min_duration, however much they move. Once per stay."
    parameters = (
        ParameterSpec("min_duration", ParameterType.DURATION, unit="s", default=60.0, minimum=1.0,
                      maximum=86400.0, zone_threshold="dwell_threshold",
                      description="Minimum continuous stay in the zone."),
        MAX_GAP,
    )
    zone_required = True

    def on_step(self, obs: TrackObservation, step: Step, visit: Visit | None) -> list[Detection]:
        stay = _unfired_stay_seconds(step, visit)
        if stay is None or stay < self.params["min_duration"]:
            return []
        visit.handled = True
        return [self.track_detection(ActivityType.DWELL_TIME, obs, started_at=visit.entered_at, evidence={
            "duration_seconds": round(stay, 3),
            "min_duration_seconds": self.params["min_duration"],
            "location": rounded_point(visit.last_point),
        })]


class Loitering(PresenceAnalytic):
    """Passing through a zone slowly is not loitering: the net speed (straight-line distance from
    where the stay began to where the person is now, per second, in person heights of the current
    box) must be at most max_net_speed. Someone who walks in and then waits, or paces, has a net
    speed that falls towards zero; someone crossing the zone keeps walking speed (about 0.8)."""

    name = "loitering"
    version = "1"
    activity_types = (ActivityType.LOITERING,)
    summary = ("A person stays in the zone (or the frame) at least min_duration without passing "
               "through: their net speed since entering is at most max_net_speed. Once per stay.")
    parameters = (
        ParameterSpec("min_duration", ParameterType.DURATION, unit="s", default=120.0, minimum=1.0,
                      maximum=86400.0, zone_threshold="loiter_threshold",
                      description="Minimum continuous stay in the zone."),
        ParameterSpec("max_net_speed", ParameterType.NUMBER, unit="person_heights/s", default=0.2,
                      minimum=0.0, maximum=5.0, exclusive_minimum=True,
                      description="Largest net speed since entering that still counts as lingering "
                                  "rather than passing through (frame-relative, see running)."),
        MAX_GAP,
    )
    zone_required = False
    zone_types = frozenset({ZoneType.RESTRICTED, ZoneType.INTEREST})

    def on_step(self, obs: TrackObservation, step: Step, visit: Visit | None) -> list[Detection]:
        stay = _unfired_stay_seconds(step, visit)
        if stay is None or stay < self.params["min_duration"]:
            return []
        net_distance = frame_height_distance(visit.entry_point, visit.last_point, obs.aspect) / obs.box.height
        net_speed = net_distance / stay
        if net_speed > self.params["max_net_speed"]:
            return []
        visit.handled = True
        return [self.track_detection(ActivityType.LOITERING, obs, started_at=visit.entered_at, evidence={
            "duration_seconds": round(stay, 3),
            "min_duration_seconds": self.params["min_duration"],
            "net_speed": round(net_speed, 4),
            "max_net_speed": self.params["max_net_speed"],
            "location": rounded_point(visit.last_point),
        })]


class DwellTimeV2(DwellTime):
    version = "2"
    summary = ("A watched object (a person by default; vehicles, or some kinds of them, per objects) stays "
               "in the zone at least min_duration, however much it moves. Once per stay.")
    parameters = (OBJECTS, *DwellTime.parameters)


class LoiteringV2(Loitering):
    version = "2"
    summary = ("A watched object (a person by default; vehicles, or some kinds of them, per objects) stays "
               "in the zone (or the frame) at least min_duration without passing through: its net speed "
               "since entering, in heights of its box per second, is at most max_net_speed. Once per stay. "
               "Over vehicles: a vehicle stopped (or parked) in the zone.")
    parameters = (OBJECTS, *Loitering.parameters)
