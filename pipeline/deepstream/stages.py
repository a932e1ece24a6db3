"""What the probes do, on metadata only: detector tensors → objects, the choice of faces worth
embedding, snapshots through the object encoder, and each frame's objects → a FrameRecord of
plain values. GStreamer-free (meta.py does every pyds access), so the tests drive it with
pyds-shaped structures. Sightings (and uploads) are made from FrameRecords off the streaming
thread by `sightings()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import numpy as np

from vigil.api.v1 import ingest_pb2 as pb
from vigil.pipeline.deepstream import decode
from vigil.pipeline.deepstream.graph import (
    CLASS_FACE,
    CLASS_FACE_CROP,
    CLASS_PERSON,
    EMBEDDER_ID,
    FACE_DETECTOR_ID,
    PERSON_DETECTOR_ID,
    SELECTOR_ID,
    GraphSettings,
)
from vigil.pipeline.deepstream.meta import Box, Meta
from vigil.pipeline.messages import FaceSample, SnapshotRef, normalised_box
from vigil.pipeline.snapshots import snapshot_key
from vigil.pipeline.streams import ProcessingSettings, StreamCounters
from vigil.pipeline.tracks import Sighting, TrackBook

MATCH_IOU = 0.8  # a tracked face and the detection it came from in the same frame
EMBEDDING_LAYER = "fc1"


@dataclass
class StreamContext:
    """What the probes need of one stream, looked up by the muxer pad index."""

    camera_id: UUID
    settings: ProcessingSettings
    book: TrackBook
    counters: StreamCounters
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class ObjectRecord:
    object_class: int  # pb.ObjectClass
    tracker_id: int
    xyxy: tuple[float, float, float, float]  # frame pixels
    confidence: float
    jpeg: bytes | None = None
    embedding: np.ndarray | None = None
    landmarks: np.ndarray | None = None  # (5, 2) frame pixels
    quality: float = 0.0


@dataclass(frozen=True)
class FrameRecord:
    pad_index: int
    frame_number: int
    capture_time: datetime
    frame_size: tuple[int, int]
    objects: list[ObjectRecord]


def capture_time(ntp_timestamp_ns: int) -> datetime:
    """The muxer's attach-sys-ts (or RTCP) time of the frame; now when the source gave none."""
    if ntp_timestamp_ns > 0:
        return datetime.fromtimestamp(ntp_timestamp_ns / 1e9, tz=UTC)
    return datetime.now(UTC)


class Stages:
    def __init__(self, meta: Meta, settings: GraphSettings, streams: Callable[[int], StreamContext | None]):
        self.meta = meta
        self.settings = settings
        self.streams = streams
        self._lock = threading.Lock()
        self._faces: dict[tuple[int, int], list[decode.Detection]] = {}
        self._candidates: dict[tuple[int, int, int], tuple[decode.Detection, float]] = {}
        self._encode: set[tuple[int, int, int, int]] = set()

    def frame_size(self, frame) -> tuple[int, int]:
        if self.settings.new_muxer:  # the new muxer does not scale: buffers keep the source size
            return int(frame.source_frame_width), int(frame.source_frame_height)
        return self.settings.muxer_size

    # --- after the detectors ---------------------------------------------------------------

    def on_faces(self, batch) -> int:
        added = 0
        for frame in self.meta.frames(batch):
            ctx = self.streams(int(frame.pad_index))
            tensors = self.meta.frame_tensors(frame, FACE_DETECTOR_ID)
            if ctx is None or tensors is None or not ctx.settings.detection_enabled:
                continue
            faces = decode.decode_faces(tensors, self.settings.face_network_size, self.frame_size(frame),
                                        score_threshold=ctx.settings.min_detection_confidence)
            for face in faces:
                self.meta.add_object(batch, frame, class_id=CLASS_FACE, component_id=FACE_DETECTOR_ID,
                                     box=_box(face.xyxy), confidence=face.score, label="face")
            with self._lock:
                self._faces[(int(frame.pad_index), int(frame.frame_num))] = faces
            added += len(faces)
        return added

    def on_persons(self, batch) -> int:
        added = 0
        for frame in self.meta.frames(batch):
            ctx = self.streams(int(frame.pad_index))
            tensors = self.meta.frame_tensors(frame, PERSON_DETECTOR_ID)  # None on skipped frames
            if ctx is None or tensors is None or not ctx.settings.detection_enabled:
                continue
            for person in decode.decode_persons(tensors["output0"], self.settings.person_network_size,
                                                self.frame_size(frame), ctx.settings.min_detection_confidence):
                self.meta.add_object(batch, frame, class_id=CLASS_PERSON, component_id=PERSON_DETECTOR_ID,
                                     box=_box(person.xyxy), confidence=person.score, label="person")
                added += 1
        return added

    # --- after the tracker: which faces the embedder sees ------------------------------------

    def on_tracked(self, batch) -> int:
        """Faces worth embedding get a face-crop child object (the aligned square region), the
        only class the embedder runs on: big and frontal enough for the camera's gate, and
        better than the best face their track has already sent."""
        chosen = 0
        for frame in self.meta.frames(batch):
            pad, number = int(frame.pad_index), int(frame.frame_num)
            ctx = self.streams(pad)
            with self._lock:
                faces = self._faces.get((pad, number), [])
            if ctx is None or not faces or not ctx.settings.face_embedding_enabled:
                continue
            size = self.frame_size(frame)
            for obj in list(self.meta.objects(frame)):
                tracker_id = self.meta.tracker_id(obj)
                if obj.class_id != CLASS_FACE or tracker_id is None:
                    continue
                detected = self.meta.detector_box(obj).xyxy
                match = max(faces, key=lambda f: decode.iou(f.xyxy, detected))
                if decode.iou(match.xyxy, detected) < MATCH_IOU:
                    continue  # carried by the tracker this frame, not detected: no landmarks
                quality = decode.landmark_quality(match)
                with ctx.lock:
                    to_beat = ctx.book.best_quality(pb.OBJECT_CLASS_FACE, tracker_id)
                if (min(match.width, match.height) < ctx.settings.min_face_size
                        or quality < ctx.settings.min_face_quality or quality <= to_beat):
                    continue
                region = decode.aligned_crop_box(match.landmarks, size)
                if region is None:
                    continue
                self.meta.add_object(batch, frame, class_id=CLASS_FACE_CROP, component_id=SELECTOR_ID,
                                     box=_box(region), confidence=match.score, label="face-crop", parent=obj)
                with self._lock:
                    self._candidates[(pad, number, tracker_id)] = (match, quality)
                chosen += 1
        return chosen

    # --- after the embedder: snapshots ---------------------------------------------------------

    def on_embedded(self, batch, gst_buffer, encoder) -> int:
        """JPEGs of new tracks (their first sighting) and of faces about to become a track's best."""
        if encoder is None:
            return 0
        queued = 0
        for frame in self.meta.frames(batch):
            pad, number = int(frame.pad_index), int(frame.frame_num)
            ctx = self.streams(pad)
            if ctx is None or not ctx.settings.snapshots_enabled:
                continue
            for obj in self.meta.objects(frame):
                tracker_id = self.meta.tracker_id(obj)
                if tracker_id is None or obj.class_id not in (CLASS_PERSON, CLASS_FACE):
                    continue
                object_class = _PB_CLASS[obj.class_id]
                with ctx.lock:
                    wanted = ctx.book.wants_snapshot(object_class, tracker_id)
                with self._lock:
                    wanted = wanted or (obj.class_id == CLASS_FACE and (pad, number, tracker_id) in self._candidates)
                if wanted:
                    self.meta.encode(encoder, gst_buffer, obj, frame)
                    with self._lock:
                        self._encode.add((pad, number, obj.class_id, tracker_id))
                    queued += 1
        if queued:
            self.meta.finish_encoding(encoder)
        return queued

    # --- at the sink: plain records ----------------------------------------------------------

    def on_collect(self, batch) -> list[FrameRecord]:
        records = []
        for frame in self.meta.frames(batch):
            pad, number = int(frame.pad_index), int(frame.frame_num)
            ctx = self.streams(pad)
            embeddings: dict[int, np.ndarray] = {}
            tracked = []
            for obj in self.meta.objects(frame):
                if obj.class_id == CLASS_FACE_CROP:
                    parent_id = self.meta.tracker_id(self.meta.parent(obj)) if self.meta.parent(obj) else None
                    tensors = self.meta.object_tensors(obj, EMBEDDER_ID)
                    if parent_id is not None and tensors and EMBEDDING_LAYER in tensors:
                        embeddings[parent_id] = np.asarray(tensors[EMBEDDING_LAYER], dtype=np.float32).reshape(-1)
                elif obj.class_id in (CLASS_PERSON, CLASS_FACE) and self.meta.tracker_id(obj) is not None:
                    tracked.append(obj)
            objects = []
            with self._lock:
                for obj in tracked:
                    tracker_id = self.meta.tracker_id(obj)
                    key = (pad, number, obj.class_id, tracker_id)
                    jpeg = self.meta.jpeg(obj) if key in self._encode else None
                    self._encode.discard(key)
                    candidate = self._candidates.pop((pad, number, tracker_id), None) \
                        if obj.class_id == CLASS_FACE else None
                    embedding = embeddings.get(tracker_id) if candidate else None
                    objects.append(ObjectRecord(
                        _PB_CLASS[obj.class_id], tracker_id, self.meta.box(obj).xyxy, self.meta.confidence(obj),
                        jpeg=jpeg, embedding=embedding,
                        landmarks=candidate[0].landmarks if candidate and embedding is not None else None,
                        quality=candidate[1] if candidate else 0.0))
                self._faces.pop((pad, number), None)
                for stale in [k for k in self._candidates if k[:2] == (pad, number)]:
                    del self._candidates[stale]
            if ctx is not None:
                records.append(FrameRecord(pad, number, capture_time(int(frame.ntp_timestamp)),
                                           self.frame_size(frame), objects))
        return records


_PB_CLASS = {CLASS_PERSON: pb.OBJECT_CLASS_PERSON, CLASS_FACE: pb.OBJECT_CLASS_FACE}


def _box(xyxy) -> Box:
    x1, y1, x2, y2 = xyxy
    return Box(float(x1), float(y1), float(x2 - x1), float(y2 - y1))


Upload = Callable[[str, bytes], SnapshotRef]


def sightings(record: FrameRecord, ctx: StreamContext, *, model_version: str, upload: Upload | None) -> list[Sighting]:
    """One frame's Sightings for the stream's TrackBook: boxes normalised, faces with their
    embedding (L2-normalised) and landmarks, each face given the person whose box holds it, and
    JPEGs uploaded before the message naming them exists."""
    width, height = record.frame_size
    persons = {o.tracker_id: o.xyxy for o in record.objects if o.object_class == pb.OBJECT_CLASS_PERSON}
    result = []
    for o in record.objects:
        snapshot = None
        if o.jpeg and upload is not None:
            kind = "face" if o.object_class == pb.OBJECT_CLASS_FACE else "person"
            with ctx.lock:
                track_id = ctx.book.track_id(o.object_class, o.tracker_id)
            snapshot = upload(snapshot_key(ctx.camera_id, record.capture_time, track_id, record.frame_number, kind),
                              o.jpeg)
        box = normalised_box(o.xyxy, width, height)
        face = None
        if o.object_class == pb.OBJECT_CLASS_FACE and o.embedding is not None and o.landmarks is not None:
            norm = float(np.linalg.norm(o.embedding))
            if norm > 0:
                face = FaceSample(embedding=(o.embedding / norm).astype(np.float32), model_version=model_version,
                                  quality=o.quality, confidence=o.confidence, box=box,
                                  landmarks=np.asarray(o.landmarks, dtype=np.float32) / np.array([width, height],
                                                                                                 dtype=np.float32),
                                  frame_number=record.frame_number, capture_time=record.capture_time,
                                  snapshot=snapshot)
        parent = decode.holder(o.xyxy, persons) if o.object_class == pb.OBJECT_CLASS_FACE else None
        result.append(Sighting(tracker_id=o.tracker_id, object_class=o.object_class, box=box,
                               confidence=o.confidence, face=face, snapshot=snapshot, parent_tracker_id=parent))
    return result
