"""Scripted track sequences for the analytics tests: people placed by their feet, moving on a
timeline in seconds from T0, sampled every STEP seconds like the pipeline's track updates."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vigil.control.analytics import (
    Analytic,
    Box,
    Detection,
    ObjectClass,
    TrackKind,
    TrackObservation,
    ZoneGeometry,
    ZoneThresholds,
)

T0 = datetime(2025, 3, 7, 12, 0, tzinfo=UTC)  # a Friday
STEP = 0.2  # seconds between a track's updates (PipelineSettings.track_update_interval)
CAMERA = "cam-1"
FRAME = (1920, 1080)

# a square zone in the middle of the frame; INSIDE and OUTSIDE are feet positions
SQUARE = [(0.4, 0.4), (0.8, 0.4), (0.8, 0.8), (0.4, 0.8)]
INSIDE = (0.6, 0.6)
OUTSIDE = (0.2, 0.6)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ticks(start: float, end: float, step: float = STEP) -> list[float]:
    """start, start + step, ... up to end inclusive, without float drift."""
    count = round((end - start) / step)
    return [round(start + i * step, 6) for i in range(count + 1)]


def zone(zone_type: str = "interest", points=SQUARE, *, zone_id: str = "zone-1", name: str = "Lobby",
         thresholds: ZoneThresholds | None = None) -> ZoneGeometry:
    return ZoneGeometry(zone_id, name, zone_type, points, thresholds or ZoneThresholds())


def person(track_id: str, feet: tuple[float, float], seconds: float | datetime, *, height: float = 0.2,
           width: float = 0.08, kind: TrackKind = TrackKind.UPDATE, person_id: str | None = None,
           cluster_id: str | None = None, confidence: float = 0.9, frame=FRAME,
           object_class: ObjectClass = ObjectClass.PERSON, label: str | None = None) -> TrackObservation:
    """A person (or another object) whose feet (bottom centre of the box) are at feet."""
    fx, fy = feet
    box = Box(max(fx - width / 2, 0.0), max(fy - height, 0.0), width, height)
    moment = seconds if isinstance(seconds, datetime) else at(seconds)
    return TrackObservation(CAMERA, track_id, object_class, box, confidence, moment, kind,
                            person_id=person_id, cluster_id=cluster_id,
                            frame_width=frame[0] if frame else None, frame_height=frame[1] if frame else None,
                            label=label)


def vehicle(track_id: str, feet: tuple[float, float], seconds: float | datetime, label: str = "car",
            **kwargs) -> TrackObservation:
    """A vehicle whose wheels touch the ground at feet; wider than tall, as vehicles are."""
    return person(track_id, feet, seconds, object_class=ObjectClass.VEHICLE, label=label,
                  **{"height": 0.15, "width": 0.25, **kwargs})


def path(track_id: str, start: float, end: float, where: Callable[[float], tuple[float, float]],
         **kwargs) -> list[TrackObservation]:
    """A track sampled every STEP from start to end; where(t) gives the feet at time t."""
    return [person(track_id, where(t), t, **kwargs) for t in ticks(start, end)]


def stay(track_id: str, start: float, end: float, feet=INSIDE, **kwargs) -> list[TrackObservation]:
    return path(track_id, start, end, lambda _t: feet, **kwargs)


def in_time_order(*sequences: Iterable[TrackObservation]) -> list[TrackObservation]:
    return sorted((obs for seq in sequences for obs in seq), key=lambda obs: obs.capture_time)


@dataclass
class Fired:
    detection: Detection
    seconds: float  # when it fired, in seconds from T0


def feed(analytic: Analytic, observations: Iterable[TrackObservation], state=None) -> list[Fired]:
    """Runs observations through one analytic the way the engine does (stream clock = latest
    capture time; END forgets the track) and returns what fired."""
    state = analytic.new_state() if state is None else state
    fired, clock = [], None
    for obs in observations:
        clock = obs.capture_time if clock is None else max(clock, obs.capture_time)
        fired.extend(Fired(detection, (detection.detected_at - T0).total_seconds())
                     for detection in analytic.observe(obs, state, clock))
        if obs.kind is TrackKind.END:
            analytic.end_track(obs.track_id, state)
    return fired
