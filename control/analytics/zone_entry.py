"""Intrusion and zone breach: a person's feet entering (or leaving) a zone they must not.

A track is in a zone when the bottom centre of its box (the feet) lies inside the polygon; for a
vehicle that is where its wheels meet the ground. Version 2 of each watches the objects its
`objects` parameter names (persons by default), version 1 persons only.
"""

from __future__ import annotations

from vigil.control.analytics.base import rounded_point
from vigil.control.analytics.model import ActivityType, Detection, TrackObservation, ZoneType
from vigil.control.analytics.parameters import MAX_GAP, OBJECTS
from vigil.control.analytics.presence import PresenceAnalytic, Step, Visit


class Intrusion(PresenceAnalytic):
    name = "intrusion"
    version = "1"
    activity_types = (ActivityType.INTRUSION,)
    summary = ("A person is inside a restricted zone. Fires when a stay begins, whether the track "
               "walked in or first appeared inside; again only after the track was out of the zone "
               "for longer than max_gap.")
    parameters = (MAX_GAP,)
    zone_required = True
    zone_types = frozenset({ZoneType.RESTRICTED})

    def on_step(self, obs: TrackObservation, step: Step, visit: Visit | None) -> list[Detection]:
        if step not in (Step.ENTERED, Step.CROSSED_IN):
            return []
        return [self.track_detection(ActivityType.INTRUSION, obs, started_at=visit.entered_at, evidence={
            "entry_point": rounded_point(visit.entry_point),
            "walked_in": step is Step.CROSSED_IN,
        })]


class ZoneBreach(PresenceAnalytic):
    """Direction rules, from the way people are meant to use each zone type:

    - exit: people walk into it and leave the scene there, so walking OUT of it into the scene
      (coming in through the exit) is the breach;
    - entry: people appear in it and walk out into the scene, so walking INTO it from the scene
      (leaving through the entrance) is the breach;
    - restricted, interest: walking INTO it is the breach.

    Only an observed crossing counts: a track that first appears inside has not crossed (for
    restricted zones, Intrusion covers that). The outward crossing is confirmed once the track
    has been outside for longer than max_gap, so it is raised that much after the step out.
    """

    name = "zone_breach"
    version = "1"
    activity_types = (ActivityType.ZONE_BREACH,)
    summary = ("A person crosses the zone boundary in the forbidden direction: out of an exit "
               "zone, into any other zone. Once per crossing; jitter along the edge shorter than "
               "max_gap is not a crossing.")
    parameters = (MAX_GAP,)
    zone_required = True

    def on_step(self, obs: TrackObservation, step: Step, visit: Visit | None) -> list[Detection]:
        if self.zone.zone_type is ZoneType.EXIT:
            if step is not Step.LEFT:
                return []
            return [self.track_detection(ActivityType.ZONE_BREACH, obs, started_at=visit.last_inside, evidence={
                "direction": "out",
                "zone_type": self.zone.zone_type.value,
                "last_inside_point": rounded_point(visit.last_point),
                "location": rounded_point(obs.box.feet),
            })]
        if step is not Step.CROSSED_IN:
            return []
        return [self.track_detection(ActivityType.ZONE_BREACH, obs, started_at=visit.entered_at, evidence={
            "direction": "in",
            "zone_type": self.zone.zone_type.value,
            "entry_point": rounded_point(visit.entry_point),
        })]


class IntrusionV2(Intrusion):
    version = "2"
    summary = ("A watched object (a person by default; vehicles, or some kinds of them, per objects) is "
               "inside a restricted zone. Fires when a stay begins, whether the track moved in or first "
               "appeared inside; again only after the track was out of the zone for longer than max_gap.")
    parameters = (OBJECTS, MAX_GAP)


class ZoneBreachV2(ZoneBreach):
    version = "2"
    summary = ("A watched object (a person by default; vehicles, or some kinds of them, per objects) "
               "crosses the zone boundary in the forbidden direction: out of an exit zone, into any other "
               "zone. Once per crossing; jitter along the edge shorter than max_gap is not a crossing.")
    parameters = (OBJECTS, MAX_GAP)
