"""One batch of frames from any streams through the portable stages:

  detect faces (YuNet in Triton, the whole batch in one request) and persons (HOG, every
  n-th frame) → track each class per stream (ByteTrack) → attach faces to bodies → face quality
  gate (size, sharpness, pose) → align → embed the faces that beat their track's best (SFace in
  Triton, one request) → snapshots → Sightings for each stream's TrackBook.

Runs on one worker thread; the backend calls it with frames in capture order per stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from vigil.models.detection import DetectedFace
from vigil.models.faces import FaceAnalyzer
from vigil.models.quality import face_quality
from vigil.pipeline.messages import FaceSample, normalised_box
from vigil.pipeline.portable.persons import HogPersonDetector
from vigil.pipeline.portable.source import Frame
from vigil.pipeline.portable.tracking import ObjectTracker, Tracked
from vigil.pipeline.snapshots import SnapshotWriter, crop, snapshot_key
from vigil.pipeline.streams import StreamSpec
from vigil.pipeline.tracks import FACE, PERSON, Sighting, TrackBook

DETECTOR_FLOOR = 0.3  # faces below this never reach the tracker; ByteTrack uses the 0.3..threshold band


@dataclass
class StreamAnalysis:
    """What the stages keep per stream between batches."""

    spec: StreamSpec
    book: TrackBook
    faces: ObjectTracker
    persons: ObjectTracker
    person_every: int
    frames_seen: int = 0
    last_persons: list[Tracked] = field(default_factory=list)


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
                 persons: HogPersonDetector | None = None):
        self.analyzer = analyzer
        self.snapshots = snapshots
        self.model_version = model_version
        self.person_detector = persons or HogPersonDetector()

    def run(self, batch: list[tuple[StreamAnalysis, Frame]]) -> list[AnalysedFrame]:
        started = time.perf_counter()
        active = [(s, f) for s, f in batch if s.spec.settings.detection_enabled]
        detected = self.analyzer.detect_many([f.image for _, f in active]) if active else []
        faces_of = {id(f): found for (_, f), found in zip(active, detected)}
        per_frame: list[tuple[StreamAnalysis, Frame, list[Tracked], list[DetectedFace], list[Tracked]]] = []
        candidates: list[_Candidate] = []
        for stream, frame in batch:
            if not stream.spec.settings.detection_enabled:
                per_frame.append((stream, frame, [], [], []))
                continue
            faces = [f for f in faces_of[id(frame)] if f.score >= DETECTOR_FLOOR]
            tracked_faces = stream.faces.update([_xyxy(f) for f in faces], [min(f.score, 1.0) for f in faces])
            persons = self._persons(stream, frame)
            per_frame.append((stream, frame, tracked_faces, faces, persons))
            candidates += self._candidates(stream, frame, tracked_faces, faces)
        samples = self._embed(candidates)
        results = []
        share = (time.perf_counter() - started) / max(len(batch), 1)
        for stream, frame, tracked_faces, _faces, persons in per_frame:
            sightings = self._person_sightings(stream, frame, persons)
            for t in tracked_faces:
                sightings.append(Sighting(
                    t.tracker_id, FACE, normalised_box(t.xyxy, frame.width, frame.height), t.confidence,
                    face=samples.get((id(stream), frame.number, t.tracker_id)),
                    parent_tracker_id=_parent(t.xyxy, persons)))
            results.append(AnalysedFrame(stream, frame, sightings, share))
        return results

    # --- persons -----------------------------------------------------------------------------

    def _persons(self, stream: StreamAnalysis, frame: Frame) -> list[Tracked]:
        stream.frames_seen += 1
        if (stream.frames_seen - 1) % stream.person_every:
            return stream.last_persons  # between detections the bodies stay where they were last seen
        found = self.person_detector.detect(frame.image, stream.spec.settings.min_detection_confidence)
        stream.last_persons = stream.persons.update([p.xyxy for p in found], [p.confidence for p in found])
        return stream.last_persons

    def _person_sightings(self, stream: StreamAnalysis, frame: Frame, persons: list[Tracked]) -> list[Sighting]:
        sightings = []
        for t in persons:
            snapshot = None
            if self.snapshots and stream.spec.settings.snapshots_enabled and stream.book.wants_snapshot(
                    PERSON, t.tracker_id):
                key = snapshot_key(stream.spec.camera_id, frame.capture_time,
                                   stream.book.track_id(PERSON, t.tracker_id), frame.number, "person")
                snapshot = self.snapshots.write(crop(frame.image, t.xyxy, margin=0.05), key)
            sightings.append(Sighting(t.tracker_id, PERSON, normalised_box(t.xyxy, frame.width, frame.height),
                                      t.confidence, snapshot=snapshot))
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
