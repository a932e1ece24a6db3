"""The life of a stream's tracks, whatever tracker produced them: START on the first sighting,
an UPDATE every update interval (zones, loitering and crowding need positions) or when the
track's best face improves, END once the tracker has not seen it for `lost_after` and for at
least `lost_after_looks` processed frames of the stream (a node that falls behind looks at a
stream only now and then; time alone would end tracks that are merely between looks).

Both backends feed it tracker output frame by frame (ByteTrack ids on the portable backend,
nvtracker object ids on DeepStream) and publish what it returns, so the cadence of messages,
and so the control plane's view, is the same whichever backend ran.

A vehicle track carries the detector's label ("car", "truck", ...). A detector may call one
vehicle a car in one frame and a truck in the next: the track's label is the one most of its
sightings gave, kept on a tie, so it settles instead of flickering.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vigil.api.v1 import ingest_pb2 as pb
from vigil.models.objects import VEHICLE_LABELS as DETECTED_VEHICLES
from vigil.pipeline.messages import Box, FaceSample, SnapshotRef, box_message, timestamp

PERSON, FACE, VEHICLE = pb.OBJECT_CLASS_PERSON, pb.OBJECT_CLASS_FACE, pb.OBJECT_CLASS_VEHICLE
_CLASS_TAG = {PERSON: "p", FACE: "f", VEHICLE: "v"}
# TrackUpdate.label of a VEHICLE track must be one of these (ingest.proto).
VEHICLE_LABELS = frozenset(DETECTED_VEHICLES.values())
# Sending a face again only pays when it is clearly better (quality is stored to 3 decimals).
FACE_IMPROVEMENT = 0.02


@dataclass(frozen=True)
class Sighting:
    """One tracked object in one frame, as a tracker reports it."""

    tracker_id: int
    object_class: int  # pb.ObjectClass
    box: Box
    confidence: float
    face: FaceSample | None = None  # an embedded face of this object in this frame
    snapshot: SnapshotRef | None = None  # a JPEG of the object, when the caller made one
    parent_tracker_id: int | None = None  # for a face: the person whose body holds it
    label: str = ""  # the detector's class name: required for a vehicle ("car", "truck", ...)

    def __post_init__(self) -> None:
        if self.object_class not in _CLASS_TAG:
            raise ValueError(f"object_class: not a tracked class: {self.object_class!r}")
        if self.object_class == VEHICLE and self.label not in VEHICLE_LABELS:
            raise ValueError(f"label: a vehicle needs one of {', '.join(sorted(VEHICLE_LABELS))}, got {self.label!r}")


@dataclass
class Track:
    track_id: str
    object_class: int
    first_seen: datetime
    last_seen: datetime
    last_look: int  # the stream's processed-frame count when the track was last seen
    last_frame: int
    box: Box
    confidence: float
    last_sent: datetime | None = None
    best_quality: float = -1.0
    snapshot_sent: bool = False
    parent_track_id: str = ""
    sightings: int = field(default=0)
    labels: Counter[str] = field(default_factory=Counter)  # sightings per label
    label: str = ""  # the label most sightings gave; changes only when another overtakes it


class TrackBook:
    def __init__(self, epoch: str, *, update_interval: timedelta = timedelta(milliseconds=200),
                 lost_after: timedelta = timedelta(seconds=1.5), lost_after_looks: int = 5):
        self.epoch = epoch
        self.update_interval = update_interval
        self.lost_after = lost_after
        self.lost_after_looks = lost_after_looks
        self._looks = 0  # frames observed
        self._tracks: dict[tuple[int, int], Track] = {}
        # a tracker may re-find an object after we ended its track (its buffer outlasted
        # lost_after): the sighting then starts a new track id, never continues an ended one
        self._generations: dict[tuple[int, int], int] = {}

    def __len__(self) -> int:
        return len(self._tracks)

    def best_quality(self, object_class: int, tracker_id: int) -> float:
        """The quality a new face of this object must beat to be worth embedding (-1: none yet)."""
        track = self._tracks.get((object_class, tracker_id))
        return track.best_quality + FACE_IMPROVEMENT if track and track.best_quality >= 0 else -1.0

    def wants_snapshot(self, object_class: int, tracker_id: int) -> bool:
        track = self._tracks.get((object_class, tracker_id))
        return track is None or not track.snapshot_sent

    def track_id(self, object_class: int, tracker_id: int) -> str:
        """The id of the object's open track, or of the track its next sighting starts."""
        generation = self._generations.get((object_class, tracker_id), 0)
        suffix = f".{generation}" if generation else ""
        return f"{self.epoch}-{_CLASS_TAG[object_class]}{tracker_id}{suffix}"

    def observe(self, frame_number: int, capture_time: datetime,
                sightings: Iterable[Sighting]) -> list[pb.TrackUpdate]:
        """The updates this frame produces: STARTs, UPDATEs that are due, ENDs of lost tracks."""
        updates: list[pb.TrackUpdate] = []
        seen = set()
        self._looks += 1
        for s in sightings:
            key = (s.object_class, s.tracker_id)
            seen.add(key)
            track = self._tracks.get(key)
            if track is None:
                track = self._tracks[key] = Track(self.track_id(*key), s.object_class, capture_time, capture_time,
                                                  self._looks, frame_number, s.box, s.confidence)
                kind = pb.TRACK_UPDATE_KIND_START
            else:
                kind = pb.TRACK_UPDATE_KIND_UPDATE
            track.last_seen, track.last_look, track.last_frame, track.box, track.confidence = (
                capture_time, self._looks, frame_number, s.box, s.confidence)
            track.sightings += 1
            if s.label:
                track.labels[s.label] += 1
                if track.labels[s.label] > track.labels[track.label]:
                    track.label = s.label
            if s.parent_tracker_id is not None:
                track.parent_track_id = self.track_id(PERSON, s.parent_tracker_id)
            face = s.face if s.face is not None and s.face.quality > track.best_quality else None
            snapshot = s.snapshot if s.snapshot is not None and not track.snapshot_sent else None
            due = track.last_sent is None or capture_time - track.last_sent >= self.update_interval
            if kind == pb.TRACK_UPDATE_KIND_START or face or snapshot or due:
                updates.append(self._message(track, kind, frame_number, capture_time, face, snapshot))
        lost = [k for k, t in self._tracks.items() if k not in seen and capture_time - t.last_seen > self.lost_after
                and self._looks - t.last_look >= self.lost_after_looks]
        for key in lost:
            updates.append(self._end(self._tracks.pop(key)))
            self._generations[key] = self._generations.get(key, 0) + 1
        return updates

    def close_all(self) -> list[pb.TrackUpdate]:
        """ENDs for every open track (the stream stops)."""
        ends = [self._end(t) for t in self._tracks.values()]
        for key in self._tracks:
            self._generations[key] = self._generations.get(key, 0) + 1
        self._tracks.clear()
        return ends

    def _message(self, track: Track, kind: int, frame_number: int, capture_time: datetime,
                 face: FaceSample | None, snapshot: SnapshotRef | None) -> pb.TrackUpdate:
        update = pb.TrackUpdate(track_id=track.track_id, kind=kind, object_class=track.object_class,
                                box=box_message(track.box), confidence=min(max(track.confidence, 0.0), 1.0),
                                frame_number=frame_number, capture_time=timestamp(capture_time),
                                label=track.label)
        if track.object_class == FACE and track.parent_track_id:
            update.parent_track_id = track.parent_track_id
        if face is not None:
            update.best_face.CopyFrom(face.message())
            track.best_quality = face.quality
        if snapshot is not None:
            update.snapshot.CopyFrom(snapshot.message())
            track.snapshot_sent = True
        track.last_sent = capture_time
        return update

    @staticmethod
    def _end(track: Track) -> pb.TrackUpdate:
        update = pb.TrackUpdate(track_id=track.track_id, kind=pb.TRACK_UPDATE_KIND_END,
                                object_class=track.object_class, box=box_message(track.box),
                                confidence=min(max(track.confidence, 0.0), 1.0), frame_number=track.last_frame,
                                capture_time=timestamp(track.last_seen), label=track.label)
        if track.object_class == FACE and track.parent_track_id:
            update.parent_track_id = track.parent_track_id
        return update
