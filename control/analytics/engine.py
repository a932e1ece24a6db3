"""The analytics engine: which analytics run on which camera, fed with the ingest path's batches.

Time is the stream's own: each camera's clock is the latest capture time it has sent, so a batch
replayed from a node's spool after an outage is judged exactly as it would have been live.
Memory stays bounded: a track is forgotten when it ends, or when the camera's clock has moved
stale_after seconds past its last observation (an END lost with a crashed node).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from vigil.control.analytics.base import Analytic
from vigil.control.analytics.model import (
    ActivityType,
    Detection,
    ObjectClass,
    Severity,
    TrackKind,
    TrackObservation,
    ZoneGeometry,
)
from vigil.control.analytics.parameters import MAX_GAP
from vigil.control.analytics.registry import REGISTRY, AnalyticsRegistry

# Well beyond any analytic's max_gap, so a track is never forgotten while an analytic would
# still bridge its gap.
DEFAULT_STALE_AFTER = 30.0


@dataclass(frozen=True)
class AnalyticsConfig:
    """One analytics configuration of a camera (rule.proto AnalyticsConfig) with its zone
    resolved; zone None is the whole frame. Parameters left out fall back to the zone's
    thresholds, then to the analytic's defaults (see describe()). site_timezone (the camera's
    site) is the time zone of schedules that name none. analytic: the unit that runs it,
    "name@version"; None = the latest version detecting activity_type."""

    id: str
    activity_type: ActivityType
    zone: ZoneGeometry | None = None
    severity: Severity = Severity.MEDIUM
    parameters: Mapping[str, Any] = field(default_factory=dict)
    site_timezone: str | None = None
    analytic: str | None = None

    def __post_init__(self) -> None:
        for name, enum in (("activity_type", ActivityType), ("severity", Severity)):
            try:
                object.__setattr__(self, name, enum(getattr(self, name)))
            except ValueError:
                allowed = ", ".join(member.value for member in enum)
                raise ValueError(f"{name}: must be one of {allowed}, got {getattr(self, name)!r}") from None


@dataclass
class _Bound:
    config: AnalyticsConfig
    analytic: Analytic
    state: Any


@dataclass
class _Camera:
    bound: list[_Bound]
    clock: datetime | None = None  # latest capture time seen
    tracks: OrderedDict[str, datetime] = field(default_factory=OrderedDict)  # open tracks, least recently seen first


class AnalyticsEngine:
    def __init__(self, registry: AnalyticsRegistry = REGISTRY, *,
                 stale_after: float = DEFAULT_STALE_AFTER) -> None:
        self._registry = registry
        if stale_after <= MAX_GAP.maximum:
            raise ValueError(f"stale_after: must exceed the longest max_gap ({MAX_GAP.maximum} s)")
        self._stale_after = timedelta(seconds=stale_after)
        self._cameras: dict[str, _Camera] = {}

    def describe(self) -> list[dict[str, Any]]:
        """Every registered analytic: name, version, activity types, zone needs, parameters."""
        return [cls.describe() for cls in self._registry]

    def configure_camera(self, camera_id: str, configs: Iterable[AnalyticsConfig]) -> None:
        """Replaces the camera's configurations (all or nothing; ValueError names the bad field).

        A configuration that did not change keeps its state, so reloading configs does not
        restart dwell timers or re-fire episodes. No configurations (a camera deleted, or moved to
        another replica) drops the camera and all its state.
        """
        configs = list(configs)
        camera = self._cameras.get(camera_id)
        previous = {bound.config.id: bound for bound in camera.bound} if camera else {}
        bound, seen = [], set()
        for index, config in enumerate(configs):
            if config.id in seen:
                raise ValueError(f"configs[{index}].id: duplicate {config.id!r}")
            seen.add(config.id)
            kept = previous.get(config.id)
            bound.append(kept if kept is not None and kept.config == config else self._bind(index, config))
        if not bound:
            self._cameras.pop(camera_id, None)
        elif camera is None:
            self._cameras[camera_id] = _Camera(bound)
        else:
            camera.bound = bound

    def observe_batch(self, camera_id: str, observations: Iterable[TrackObservation]) -> list[Detection]:
        """Runs the camera's analytics over a batch in capture order; returns what they raised.

        FACE observations are skipped (a face box does not say where the person stands; the
        ingest path puts a face track's identity on its parent person track); each analytic sees
        the PERSON and VEHICLE observations it watches (Analytic.watches). An observation older
        than its track's previous one is skipped, as it would rewind the track's state.
        """
        observations = list(observations)
        for index, obs in enumerate(observations):
            if obs.camera_id != camera_id:
                raise ValueError(f"observations[{index}].camera_id: {obs.camera_id!r} is not camera {camera_id!r}")
        camera = self._cameras.get(camera_id)
        if camera is None:
            return []
        detections: list[Detection] = []
        for obs in observations:
            if obs.object_class is ObjectClass.FACE:
                continue
            last_seen = camera.tracks.get(obs.track_id)
            if last_seen is not None and obs.capture_time < last_seen:
                continue
            camera.clock = obs.capture_time if camera.clock is None else max(camera.clock, obs.capture_time)
            for bound in camera.bound:
                if bound.analytic.watches(obs):
                    detections.extend(bound.analytic.observe(obs, bound.state, camera.clock))
            if obs.kind is TrackKind.END:
                camera.tracks.pop(obs.track_id, None)
                self._end_track(camera, obs.track_id)
            else:
                camera.tracks[obs.track_id] = obs.capture_time
                camera.tracks.move_to_end(obs.track_id)
        self._forget_stale_tracks(camera)
        return detections

    def state_size(self, camera_id: str) -> int:
        """Tracks and identities held for the camera, across its analytics (a memory gauge)."""
        camera = self._cameras.get(camera_id)
        if camera is None:
            return 0
        return len(camera.tracks) + sum(b.analytic.state_size(b.state) for b in camera.bound)

    def _bind(self, index: int, config: AnalyticsConfig) -> _Bound:
        try:
            cls = self._registry.resolve(config.analytic, config.activity_type)
            analytic = cls(zone=config.zone, parameters=config.parameters, severity=config.severity,
                           config_id=config.id, site_timezone=config.site_timezone)
        except ValueError as error:
            raise ValueError(f"configs[{index}].{error}") from None
        return _Bound(config, analytic, analytic.new_state())

    def _end_track(self, camera: _Camera, track_id: str) -> None:
        for bound in camera.bound:
            bound.analytic.end_track(track_id, bound.state)

    def _forget_stale_tracks(self, camera: _Camera) -> None:
        if camera.clock is None:
            return
        cutoff = camera.clock - self._stale_after
        while camera.tracks and next(iter(camera.tracks.values())) < cutoff:
            track_id, _ = camera.tracks.popitem(last=False)
            self._end_track(camera, track_id)
