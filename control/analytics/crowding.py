"""Crowding: at least min_persons distinct person tracks in the zone at once, for min_duration.

A track counts while its stay in the zone is open (presence.py: its last inside observation at
most max_gap ago), so one person's flicker does not change the count. Hysteresis: once formed,
the crowd is over only when the count has stayed below min_persons for longer than max_gap; it
fires once per crowd and can fire again only after that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vigil.control.analytics.base import Analytic, rounded_point
from vigil.control.analytics.model import ActivityType, Detection, Point, TrackObservation
from vigil.control.analytics.parameters import MAX_GAP, ParameterSpec, ParameterType
from vigil.control.analytics.presence import ZonePresence


@dataclass(slots=True)
class _Member:
    presence: ZonePresence = field(default_factory=ZonePresence)
    feet: Point = (0.0, 0.0)
    confidence: float = 0.0
    person_id: str | None = None


@dataclass(slots=True)
class CrowdState:
    members: dict[str, _Member] = field(default_factory=dict)  # tracks with an open stay
    forming_since: datetime | None = None  # when the count last reached min_persons
    last_crowded: datetime | None = None  # latest moment the count was at least min_persons
    fired: bool = False


class Crowding(Analytic[CrowdState]):
    name = "crowding"
    version = "1"
    activity_types = (ActivityType.CROWDING,)
    summary = ("At least min_persons person tracks are in the zone (or the frame) at once for "
               "min_duration. Once per crowd; again only after the count stayed below "
               "min_persons for longer than max_gap.")
    parameters = (
        ParameterSpec("min_persons", ParameterType.INTEGER, unit="persons", default=5, minimum=2,
                      maximum=1000, zone_threshold="crowd_threshold",
                      description="Number of persons present at once that counts as a crowd."),
        ParameterSpec("min_duration", ParameterType.DURATION, unit="s", default=5.0, minimum=0.0,
                      maximum=3600.0, description="How long the crowd must persist."),
        MAX_GAP,
    )
    zone_required = False

    def new_state(self) -> CrowdState:
        return CrowdState()

    def end_track(self, track_id: str, state: CrowdState) -> None:
        state.members.pop(track_id, None)

    def state_size(self, state: CrowdState) -> int:
        return len(state.members)

    def observe(self, obs: TrackObservation, state: CrowdState, now: datetime) -> list[Detection]:
        max_gap = self.params["max_gap"]
        self._update_member(obs, state, max_gap)
        present = {tid: m for tid, m in state.members.items() if m.presence.present_at(now, max_gap)}
        if len(present) < self.params["min_persons"]:
            if state.forming_since is not None and (now - state.last_crowded).total_seconds() > max_gap:
                state.forming_since, state.last_crowded, state.fired = None, None, False
            return []
        if state.forming_since is None:
            state.forming_since = now
        state.last_crowded = now
        lasted = (now - state.forming_since).total_seconds()
        if state.fired or lasted < self.params["min_duration"]:
            return []
        state.fired = True
        return [self._detection(obs, state, present, lasted, now)]

    def _update_member(self, obs: TrackObservation, state: CrowdState, max_gap: float) -> None:
        member = state.members.get(obs.track_id) or _Member()
        feet = obs.box.feet
        member.presence.step(self.inside(feet), feet, obs.capture_time, max_gap)
        if member.presence.visit is None:
            state.members.pop(obs.track_id, None)  # only tracks with an open stay are kept
            return
        member.feet, member.confidence, member.person_id = feet, obs.confidence, obs.person_id
        state.members[obs.track_id] = member

    def _detection(self, obs: TrackObservation, state: CrowdState, present: dict[str, _Member],
                   lasted: float, now: datetime) -> Detection:
        members = list(present.values())
        centre = (sum(m.feet[0] for m in members) / len(members), sum(m.feet[1] for m in members) / len(members))
        return self.detection(
            ActivityType.CROWDING, camera_id=obs.camera_id, track_ids=sorted(present),
            confidence=sum(m.confidence for m in members) / len(members),
            started_at=state.forming_since, detected_at=now, evidence={
                "person_count": len(members),
                "min_persons": self.params["min_persons"],
                "duration_seconds": round(lasted, 3),
                "cluster_center": rounded_point(centre),
                "person_ids": sorted({m.person_id for m in members if m.person_id}),
            })
