"""A track's stays in one zone, with short gaps forgiven.

A stay (visit) begins at the first observation with the feet inside the zone and lasts while
inside observations keep coming no more than max_gap apart. Outside observations and missing
observations shorter than max_gap (occlusion, a missed detection, the feet jittering across the
edge) do not end it; an outside observation more than max_gap after the last inside one does.
Each analytic fires at most once per visit, which makes "once per episode" hold without relying
on downstream cooldowns.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from vigil.control.analytics.base import Analytic
from vigil.control.analytics.model import Detection, Point, TrackObservation


class Step(Enum):
    ENTERED = "entered"  # a visit began; the track was not seen outside just before (it appeared inside)
    CROSSED_IN = "crossed_in"  # a visit began right after an observation outside the zone
    STAYED = "stayed"  # inside, continuing the current visit
    LEFT = "left"  # outside for longer than max_gap: the visit ended
    OUTSIDE = "outside"  # outside with no visit, or within max_gap of the last inside observation


INSIDE_STEPS = (Step.ENTERED, Step.CROSSED_IN, Step.STAYED)


@dataclass(slots=True)
class Visit:
    entered_at: datetime
    entry_point: Point
    last_inside: datetime
    last_point: Point
    handled: bool = False  # the analytic owning this visit has acted on it (fired, or counted it)


@dataclass(slots=True)
class ZonePresence:
    """One track's presence in one zone."""

    visit: Visit | None = None
    was_inside: bool | None = None  # side of the previous observation; None before the first

    def step(self, inside: bool, point: Point, at: datetime, max_gap: float) -> tuple[Step, Visit | None]:
        """Advances with one observation; returns what happened and the visit concerned (the
        current one, or for LEFT the one that ended)."""
        seen_outside_before = self.was_inside is False
        self.was_inside = inside
        visit = self.visit
        if inside:
            if visit is not None and (at - visit.last_inside).total_seconds() <= max_gap:
                visit.last_inside, visit.last_point = at, point
                return Step.STAYED, visit
            self.visit = Visit(at, point, at, point)
            return (Step.CROSSED_IN if seen_outside_before else Step.ENTERED), self.visit
        if visit is not None and (at - visit.last_inside).total_seconds() > max_gap:
            self.visit = None
            return Step.LEFT, visit
        return Step.OUTSIDE, visit

    def present_at(self, moment: datetime, max_gap: float) -> bool:
        """Whether the track's visit is still open at moment (its last inside observation at most
        max_gap earlier)."""
        return self.visit is not None and (moment - self.visit.last_inside).total_seconds() <= max_gap


class PresenceAnalytic(Analytic[dict[str, ZonePresence]]):
    """Base of the analytics that judge one track's stays in the zone (or the whole frame).

    The state is each open track's ZonePresence; subclasses decide what a step means.
    """

    def new_state(self) -> dict[str, ZonePresence]:
        return {}

    def observe(self, obs: TrackObservation, state: dict[str, ZonePresence], now: datetime) -> list[Detection]:
        presence = state.setdefault(obs.track_id, ZonePresence())
        feet = obs.box.feet
        step, visit = presence.step(self.inside(feet), feet, obs.capture_time, self.params["max_gap"])
        return self.on_step(obs, step, visit)

    def end_track(self, track_id: str, state: dict[str, ZonePresence]) -> None:
        state.pop(track_id, None)

    def state_size(self, state: dict[str, ZonePresence]) -> int:
        return len(state)

    @abstractmethod
    def on_step(self, obs: TrackObservation, step: Step, visit: Visit | None) -> list[Detection]:
        """Detections for one step of the track's presence."""
