"""Repeated entry: the same person (recognised person, else unknown-face cluster) enters the zone
at least min_entries times within a sliding window.

An entry is the start of a stay (presence.py), counted at the time the stay began, as soon as the
track's identity is known (recognition may come a few seconds after the person walked in). A stay
of the same identity that begins within max_gap of its previous inside observation is the same
visit continued on a new track (tracker fragmentation, or a duplicate box), not a new entry.
Episodes: it fires when the count within the window reaches min_entries, and again only after an
entry found the count below min_entries.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vigil.control.analytics.base import Analytic, rounded_point
from vigil.control.analytics.model import ActivityType, Detection, TrackObservation
from vigil.control.analytics.parameters import MAX_GAP, ParameterSpec, ParameterType
from vigil.control.analytics.presence import INSIDE_STEPS, Visit, ZonePresence

# Identities remembered per camera and config; beyond it the least recently seen are forgotten,
# so a week-long window at a busy site cannot grow without bound.
MAX_IDENTITIES = 10_000

Identity = tuple[str, str]  # ("person" | "cluster", id)


@dataclass(slots=True)
class _Entries:
    last_inside: datetime
    times: deque[tuple[datetime, str]] = field(default_factory=deque)  # (entered_at, track_id), oldest first
    in_episode: bool = False


@dataclass(slots=True)
class RepeatedEntryState:
    tracks: dict[str, ZonePresence] = field(default_factory=dict)  # tracks with an open stay
    identities: OrderedDict[Identity, _Entries] = field(default_factory=OrderedDict)  # least recently inside first


class RepeatedEntry(Analytic[RepeatedEntryState]):
    name = "repeated_entry"
    version = "1"
    activity_types = (ActivityType.REPEATED_ENTRY,)
    summary = ("The same recognised person (else unknown-face cluster) enters the zone at least "
               "min_entries times within window. Once per run of entries; again only after an "
               "entry found fewer than min_entries in the window.")
    parameters = (
        ParameterSpec("min_entries", ParameterType.INTEGER, unit="entries", default=3, minimum=2,
                      maximum=1000, description="Number of entries within the window that is suspicious."),
        ParameterSpec("window", ParameterType.DURATION, unit="s", default=3600.0, minimum=60.0,
                      maximum=7 * 86400.0, description="Sliding window in which entries are counted."),
        MAX_GAP,
    )
    zone_required = True

    def new_state(self) -> RepeatedEntryState:
        return RepeatedEntryState()

    def end_track(self, track_id: str, state: RepeatedEntryState) -> None:
        state.tracks.pop(track_id, None)

    def state_size(self, state: RepeatedEntryState) -> int:
        return len(state.tracks) + len(state.identities)

    def observe(self, obs: TrackObservation, state: RepeatedEntryState, now: datetime) -> list[Detection]:
        max_gap = self.params["max_gap"]
        presence = state.tracks.setdefault(obs.track_id, ZonePresence())
        feet = obs.box.feet
        step, visit = presence.step(self.inside(feet), feet, obs.capture_time, max_gap)
        if presence.visit is None:
            del state.tracks[obs.track_id]  # only tracks with an open stay are kept
        identity = obs.identity
        detections = []
        if step in INSIDE_STEPS and identity is not None:
            entries = state.identities.get(identity)
            if not visit.handled:
                visit.handled = True
                if entries is None or (visit.entered_at - entries.last_inside).total_seconds() > max_gap:
                    entries = entries or _Entries(last_inside=obs.capture_time)
                    detections = self._count_entry(obs, identity, entries, visit)
            if entries is not None:
                entries.last_inside = max(entries.last_inside, obs.capture_time)
                state.identities[identity] = entries
                state.identities.move_to_end(identity)
        self._forget_idle_identities(state, now)
        return detections

    def _count_entry(self, obs: TrackObservation, identity: Identity, entries: _Entries,
                     visit: Visit) -> list[Detection]:
        entries.times.append((visit.entered_at, obs.track_id))
        cutoff = obs.capture_time - timedelta(seconds=self.params["window"])
        while entries.times[0][0] < cutoff:
            entries.times.popleft()
        if len(entries.times) < self.params["min_entries"]:
            entries.in_episode = False
            return []
        if entries.in_episode:
            return []
        entries.in_episode = True
        kind, identity_id = identity
        track_ids = list(dict.fromkeys(track_id for _, track_id in entries.times))
        return [self.detection(
            ActivityType.REPEATED_ENTRY, camera_id=obs.camera_id, track_ids=track_ids,
            confidence=obs.confidence, started_at=entries.times[0][0], detected_at=obs.capture_time,
            person_id=identity_id if kind == "person" else None,
            cluster_id=identity_id if kind == "cluster" else None,
            evidence={
                "entry_count": len(entries.times),
                "min_entries": self.params["min_entries"],
                "window_seconds": self.params["window"],
                "entry_times": [at.isoformat() for at, _ in entries.times],
                "location": rounded_point(obs.box.feet),
            })]

    def _forget_idle_identities(self, state: RepeatedEntryState, now: datetime) -> None:
        # an identity last inside before the window began has no entry left to count
        cutoff = now - timedelta(seconds=self.params["window"])
        identities = state.identities
        while identities and (next(iter(identities.values())).last_inside < cutoff
                              or len(identities) > MAX_IDENTITIES):
            identities.popitem(last=False)
