"""One batch of frames from any streams through the portable stages:

  detect faces (YuNet in Triton, the whole batch in one request) and persons and vehicles
  (NanoDet in Triton on every n-th frame of a stream, the due frames of the batch in one
  request; HOG persons only where NanoDet is not served) → track each class per stream
  (ByteTrack) → attach faces to bodies → face quality gate (size, sharpness, pose) → align →
  embed the faces that beat their track's best (SFace in Triton, one request) → snapshots →
  Sightings for each stream's TrackBook.

Runs on one worker thread; the backend calls it with frames in capture order per stream.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from vigil.models.detection import DetectedFace
from vigil.models.faces import FaceAnalyzer
from vigil.models.objects import DetectedObject, ObjectKind
from vigil.models.quality import face_quality
from vigil.pipeline.messages import FaceSample, normalised_box
from vigil.pipeline.portable.source import Frame
from vigil.pipeline.portable.tracking import ObjectTracker, Tracked
from vigil.pipeline.snapshots import SnapshotWriter, crop, snapshot_key
from vigil.pipeline.streams import StreamSpec
from vigil.pipeline.tracks import FACE, PERSON, VEHICLE, Sighting, TrackBook

DETECTOR_FLOOR = 0.3  # faces below this never reach the tracker; ByteTrack uses the 0.3..threshold band
# Tracker tuning (tracking.py's buffered IoU: boxes enlarged around their centre before matching).
# A face may move a whole face width between two processed frames when frames are skipped. Bodies
# and vehicles: measured on the street video against walkers counted by hand (bench/fragmentation.py,
# BENCHMARKS.md): with 30 % of frames dropped at random, scale 1.5 and IoU >= 0.2 made 39 tracks of
# 21 visits, scale 2.5 and IoU >= 0.1 made 25; with every frame, 27 and 26.
FACE_ASSOCIATION_SCALE = 2.5
OBJECT_ASSOCIATION_SCALE = 2.5
OBJECT_MATCHING_THRESHOLD = 0.9  # ByteTrack's largest IoU distance of a match: IoU >= 0.1 (buffered)
LOST_SECONDS = 1.5


class ObjectSource(Protocol):
    """Persons (and vehicles, where the detector knows them) in a batch of frames."""

    name: str

    def detect_many(self, images_bgr: Sequence[np.ndarray], min_score: float) -> list[list[DetectedObject]]: ...


@dataclass(frozen=True)
class TrackedObject:
    tracked: Tracked
    label: str  # the detector's class of this sighting: "person", "car", ...


@dataclass
class StreamAnalysis:
    """What the stages keep per stream between batches."""

    spec: StreamSpec
    book: TrackBook
    faces: ObjectTracker
    persons: ObjectTracker
    vehicles: ObjectTracker
    object_every: int
    frames_seen: int = 0
    # between detections the objects stay where they were last seen
    last_persons: list[TrackedObject] = field(default_factory=list)
    last_vehicles: list[TrackedObject] = field(default_factory=list)

    @classmethod
    def start(cls, spec: StreamSpec, book: TrackBook, object_every: int) -> StreamAnalysis:
        """A stream's state before its first frame: its trackers, tuned for its processing rate."""
        rate = spec.settings.max_inference_fps or spec.fps or 25
        floor = spec.settings.min_detection_confidence

        def objects() -> ObjectTracker:
            return ObjectTracker(frame_rate=rate / object_every, activation_threshold=floor,
                                 lost_seconds=LOST_SECONDS, matching_threshold=OBJECT_MATCHING_THRESHOLD,
                                 association_scale=OBJECT_ASSOCIATION_SCALE)

        faces = ObjectTracker(frame_rate=rate, activation_threshold=floor, lost_seconds=LOST_SECONDS,
                              association_scale=FACE_ASSOCIATION_SCALE)
        return cls(spec=spec, book=book, faces=faces, persons=objects(), vehicles=objects(),
                   object_every=object_every)

    def objects_due(self) -> bool:
        """Counts the frame; whether the object detector runs on it."""
        self.frames_seen += 1
        return (self.frames_seen - 1) % self.object_every == 0


@dataclass
class _Candidate:
    stream: StreamAnalysis
    frame: Frame
    tracked: Tracked
    face: DetectedFace
    quality: float
    crop: np.ndarray  # aligned 112x112


@dataclass(frozen=True)
class AnalysedFrame:
    stream: StreamAnalysis
    frame: Frame
    sightings: list[Sighting]
    seconds: float  # this frame's share of the batch's processing time


class FrameAnalysis:
    def __init__(self, analyzer: FaceAnalyzer, snapshots: SnapshotWriter | None, model_version: str,
                 objects: ObjectSource):
        self.analyzer = analyzer
        self.snapshots = snapshots
        self.model_version = model_version
        self.objects = objects

    def run(self, batch: list[tuple[StreamAnalysis, Frame]]) -> list[AnalysedFrame]:
        started = time.perf_counter()
        active = [(s, f) for s, f in batch if s.spec.settings.detection_enabled]
        detected = self.analyzer.detect_many([f.image for _, f in active]) if active else []
        faces_of = {id(f): found for (_, f), found in zip(active, detected)}
        objects_of = self._track_objects(active)
        per_frame: list[tuple[StreamAnalysis, Frame, list[Tracked], list[TrackedObject], list[TrackedObject]]] = []
        candidates: list[_Candidate] = []
        for stream, frame in batch:
            if not stream.spec.settings.detection_enabled:
                per_frame.append((stream, frame, [], [], []))
                continue
            faces = [f for f in faces_of[id(frame)] if f.score >= DETECTOR_FLOOR]
            tracked_faces = stream.faces.update([_xyxy(f) for f in faces], [min(f.score, 1.0) for f in faces])
            per_frame.append((stream, frame, tracked_faces, *objects_of[id(frame)]))
            candidates += self._candidates(stream, frame, tracked_faces, faces)
        samples = self._embed(candidates)
        results = []
        share = (time.perf_counter() - started) / max(len(batch), 1)
        for stream, frame, tracked_faces, persons, vehicles in per_frame:
            sightings = self._object_sightings(stream, frame, PERSON, persons)
            sightings += self._object_sightings(stream, frame, VEHICLE, vehicles)
            bodies = [p.tracked for p in persons]
            for t in tracked_faces:
                sightings.append(Sighting(
                    t.tracker_id, FACE, normalised_box(t.xyxy, frame.width, frame.height), t.confidence,
                    face=samples.get((id(stream), frame.number, t.tracker_id)),
                    parent_tracker_id=_parent(t.xyxy, bodies)))
            results.append(AnalysedFrame(stream, frame, sightings, share))
        return results

    # --- persons and vehicles ----------------------------------------------------------------

    def _track_objects(self, active: list[tuple[StreamAnalysis, Frame]]
                       ) -> dict[int, tuple[list[TrackedObject], list[TrackedObject]]]:
        """Per frame (by id): its tracked persons and vehicles. Objects are detected on the frames
        due (one request for the batch) and tracked in frame order per stream; a frame between
        detections keeps its stream's last objects."""
        due = [(s, f) for s, f in active if s.objects_due()]
        found = {}
        if due:
            # one threshold per request: the lowest any stream asks for; each stream filters to its own
            floor = min(s.spec.settings.min_detection_confidence for s, _ in due)
            detected = self.objects.detect_many([f.image for _, f in due], floor)
            found = {id(f): objects for (_, f), objects in zip(due, detected)}
        objects_of = {}
        for stream, frame in active:
            if id(frame) in found:
                wanted = [o for o in found[id(frame)] if o.score >= stream.spec.settings.min_detection_confidence]
                stream.last_persons = _track(stream.persons, [o for o in wanted if o.kind is ObjectKind.PERSON])
                stream.last_vehicles = _track(stream.vehicles, [o for o in wanted if o.kind is ObjectKind.VEHICLE])
            objects_of[id(frame)] = (stream.last_persons, stream.last_vehicles)
        return objects_of

    def _object_sightings(self, stream: StreamAnalysis, frame: Frame, object_class: int,
                          objects: list[TrackedObject]) -> list[Sighting]:
        sightings = []
        for o in objects:
            t = o.tracked
            snapshot = None
            if self.snapshots and stream.spec.settings.snapshots_enabled and stream.book.wants_snapshot(
                    object_class, t.tracker_id):
                key = snapshot_key(stream.spec.camera_id, frame.capture_time,
                                   stream.book.track_id(object_class, t.tracker_id), frame.number,
                                   "person" if object_class == PERSON else "vehicle")
                snapshot = self.snapshots.write(crop(frame.image, t.xyxy, margin=0.05), key)
            sightings.append(Sighting(t.tracker_id, object_class, normalised_box(t.xyxy, frame.width, frame.height),
                                      t.confidence, snapshot=snapshot, label=o.label))
        return sightings

    # --- faces -------------------------------------------------------------------------------

    def _candidates(self, stream: StreamAnalysis, frame: Frame, tracked: list[Tracked],
                    faces: list[DetectedFace]) -> list[_Candidate]:
        settings = stream.spec.settings
        if not settings.face_embedding_enabled:
            return []
        found = []
        for t in tracked:
            face = faces[t.index]
            if face.score < settings.min_detection_confidence or face.box[3] < settings.min_face_size:
                continue
            quality = face_quality(frame.image, face)
            if quality.score < settings.min_face_quality or quality.score <= stream.book.best_quality(
                FACE, t.tracker_id
            ):
                continue
            found.append(_Candidate(stream, frame, t, face, quality.score,
                                    self.analyzer.align(frame.image, face.landmarks)))
        # one face per track per batch: the best of it
        best: dict[tuple[int, int], _Candidate] = {}
        for c in found:
            key = (id(c.stream), c.tracked.tracker_id)
            if key not in best or c.quality > best[key].quality:
                best[key] = c
        return list(best.values())

    def _embed(self, candidates: list[_Candidate]) -> dict[tuple[int, int, int], FaceSample]:
        if not candidates:
            return {}
        vectors = self.analyzer.embed([c.crop for c in candidates])
        samples = {}
        for c, vector in zip(candidates, vectors):
            frame, stream = c.frame, c.stream
            snapshot = None
            if self.snapshots and stream.spec.settings.snapshots_enabled:
                key = snapshot_key(stream.spec.camera_id, frame.capture_time,
                                   stream.book.track_id(FACE, c.tracked.tracker_id), frame.number, "face")
                snapshot = self.snapshots.write(crop(frame.image, _xyxy(c.face)), key)
            samples[(id(stream), frame.number, c.tracked.tracker_id)] = FaceSample(
                embedding=vector, model_version=self.model_version, quality=c.quality,
                confidence=min(c.face.score, 1.0), box=tuple(c.face.box_normalized),
                landmarks=c.face.landmarks_normalized, frame_number=frame.number, capture_time=frame.capture_time,
                snapshot=snapshot)
        return samples


def _track(tracker: ObjectTracker, objects: list[DetectedObject]) -> list[TrackedObject]:
    tracked = tracker.update([o.xyxy for o in objects], [o.score for o in objects])
    return [TrackedObject(t, objects[t.index].label) for t in tracked]


def _xyxy(face: DetectedFace) -> tuple[float, float, float, float]:
    x, y, w, h = face.box
    return x, y, x + w, y + h


def _parent(face_xyxy: tuple[float, float, float, float], persons: list[Tracked]) -> int | None:
    """The body whose upper half holds the face's centre (the smallest such body, if several)."""
    cx, cy = (face_xyxy[0] + face_xyxy[2]) / 2, (face_xyxy[1] + face_xyxy[3]) / 2
    holders = [p for p in persons
               if p.xyxy[0] <= cx <= p.xyxy[2] and p.xyxy[1] <= cy <= (p.xyxy[1] + p.xyxy[3]) / 2]
    if not holders:
        return None
    return min(holders, key=lambda p: (p.xyxy[2] - p.xyxy[0]) * (p.xyxy[3] - p.xyxy[1])).tracker_id
