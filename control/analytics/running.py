"""Running: a person's speed stays at or above min_speed for min_duration.

Speed is the box centre's net displacement across the last `window` seconds divided by the
elapsed time and the mean box height: person heights per second (rule.proto SpeedParameters).
It is frame-relative, not calibrated: see motion.py. Walking is about 0.8 person heights/s,
running 2 and more; the default threshold 1.5 sits between.
Episodes: the speed must hold without a dip until min_duration; after firing, dips shorter than
max_gap do not end the run, and it fires again only after the speed stayed below the threshold
for longer than that. Judged only while the person's feet are in the zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vigil.control.analytics.base import Analytic, rounded_point
from vigil.control.analytics.model import ActivityType, Detection, TrackObservation
from vigil.control.analytics.motion import SpeedWindow
from vigil.control.analytics.parameters import MAX_GAP, ParameterSpec, ParameterType
from vigil.control.analytics.presence import INSIDE_STEPS, ZonePresence


@dataclass(slots=True)
class _Run:
    speeds: SpeedWindow
    presence: ZonePresence = field(default_factory=ZonePresence)
    fast_since: datetime | None = None
    last_fast: datetime | None = None
    fired: bool = False


class Running(Analytic[dict[str, _Run]]):
    name = "running"
    version = "1"
    activity_types = (ActivityType.RUNNING,)
    summary = ("A person in the zone (or the frame) moves at min_speed person heights per second "
               "or faster, smoothed over window, for min_duration. Frame-relative: no camera "
               "calibration. Once per run.")
    parameters = (
        ParameterSpec("min_speed", ParameterType.NUMBER, unit="person_heights/s", default=1.5,
                      minimum=0.0, maximum=20.0, exclusive_minimum=True,
                      description="Speed (box-centre displacement per second divided by the box "
                                  "height) at or above which a person counts as running."),
        ParameterSpec("min_duration", ParameterType.DURATION, unit="s", default=1.0, minimum=0.0,
                      maximum=60.0, description="How long the speed must be sustained."),
        ParameterSpec("window", ParameterType.DURATION, unit="s", default=1.0, minimum=0.2,
                      maximum=10.0, description="Span over which the speed is measured (smoothing); "
                                                "no speed is reported before half of it is observed."),
        MAX_GAP,
    )
    zone_required = False

    def new_state(self) -> dict[str, _Run]:
        return {}

    def end_track(self, track_id: str, state: dict[str, _Run]) -> None:
        state.pop(track_id, None)

    def state_size(self, state: dict[str, _Run]) -> int:
        return len(state)

    def observe(self, obs: TrackObservation, state: dict[str, _Run], now: datetime) -> list[Detection]:
        max_gap, at = self.params["max_gap"], obs.capture_time
        run = state.get(obs.track_id) or _Run(SpeedWindow(self.params["window"]))
        feet = obs.box.feet
        step, _ = run.presence.step(self.inside(feet), feet, at, max_gap)
        if run.presence.visit is None:
            state.pop(obs.track_id, None)  # out of the zone: the run is over
            return []
        state[obs.track_id] = run
        if step not in INSIDE_STEPS:
            return []  # briefly outside: keep the run, but do not measure there
        last = run.speeds.last_time()
        if last is not None and (at - last).total_seconds() > max_gap:
            run.speeds.clear()  # a displacement across a long gap is not a speed
        run.speeds.add(at, obs.box.centre, obs.box.height)
        speed = run.speeds.speed(obs.aspect)
        if speed is None:
            return []
        if speed < self.params["min_speed"]:
            if not (run.fired and (at - run.last_fast).total_seconds() <= max_gap):
                run.fast_since, run.fired = None, False
            return []
        run.last_fast = at
        run.fast_since = run.fast_since or at
        sustained = (at - run.fast_since).total_seconds()
        if run.fired or sustained < self.params["min_duration"]:
            return []
        run.fired = True
        return [self.track_detection(ActivityType.RUNNING, obs, started_at=run.fast_since, evidence={
            "speed": round(speed, 3),
            "min_speed": self.params["min_speed"],
            "speed_unit": "person_heights/s",
            "duration_seconds": round(sustained, 3),
            "window_seconds": self.params["window"],
            "location": rounded_point(obs.box.centre),
        })]
