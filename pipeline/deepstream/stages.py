"""What the probes do: detector tensors → objects, the choice of faces worth embedding and their
aligned crops (cut on the GPU surface), snapshots through the object encoder, and each frame's
objects → a FrameRecord of plain values. GStreamer-free (meta.py does every pyds access), so the
tests drive it with pyds-shaped structures and numpy frames. Off the streaming threads, the
backend's worker embeds the records' crops (`embed_faces()`) and makes Sightings (and uploads)
of them (`sightings()`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import numpy as np

from vigil.api.v1 import ingest_pb2 as pb
from vigil.models.alignment import warp_faces
from vigil.models.objects import ObjectKind
from vigil.pipeline.deepstream import decode
from vigil.pipeline.deepstream.graph import (
    CLASS_FACE,
    CLASS_PERSON,
    CLASS_VEHICLE,
    FACE_DETECTOR_ID,
    OBJECT_DETECTOR_ID,
    GraphSettings,
)
from vigil.pipeline.deepstream.meta import Box, Meta
from vigil.pipeline.messages import FaceSample, SnapshotRef, normalised_box
from vigil.pipeline.snapshots import snapshot_key
from vigil.pipeline.streams import ProcessingSettings, StreamCounters
from vigil.pipeline.tracks import VEHICLE_LABELS, Sighting, TrackBook

MATCH_IOU = 0.8  # a tracked face and the detection it came from in the same frame

Surface = Callable[[Any], Any]  # frame meta → its pixels (H, W, 4 RGBA; CuPy on the GPU, numpy in tests)
Embed = Callable[[Sequence[np.ndarray]], np.ndarray]  # BGR 112x112 crops → (n, D) embeddings


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
    label: str = ""  # the detector's class: "person", "car", "bus", "face", ...
    jpeg: bytes | None = None
    crop: np.ndarray | None = None  # (112, 112, 3) BGR uint8: the aligned face, to embed
    embedding: np.ndarray | None = None  # set by embed_faces()
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
        self._candidates: dict[tuple[int, int, int], tuple[decode.Detection, float, np.ndarray]] = {}
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

    def on_objects(self, batch) -> int:
        added = 0
        for frame in self.meta.frames(batch):
            ctx = self.streams(int(frame.pad_index))
            tensors = self.meta.frame_tensors(frame, OBJECT_DETECTOR_ID)  # None on skipped frames
            if ctx is None or tensors is None or not ctx.settings.detection_enabled:
                continue
            for found in decode.decode_objects(tensors, self.settings.object_network_size, self.frame_size(frame),
                                               ctx.settings.min_detection_confidence):
                class_id = CLASS_PERSON if found.kind is ObjectKind.PERSON else CLASS_VEHICLE
                self.meta.add_object(batch, frame, class_id=class_id, component_id=OBJECT_DETECTOR_ID,
                                     box=_box(found.xyxy), confidence=found.score, label=found.label)
                added += 1
        return added

    # --- after the tracker, on RGBA frames: faces worth embedding, snapshots ---------------------

    def on_tracked(self, batch, surface: Surface) -> int:
        """Faces worth embedding are aligned and cropped where the frame is (the GPU surface):
        big and frontal enough for the camera's gate, and better than the best face their track
        has already sent. Only the 112x112 crops leave the GPU."""
        chosen = 0
        for frame in self.meta.frames(batch):
            pad, number = int(frame.pad_index), int(frame.frame_num)
            ctx = self.streams(pad)
            with self._lock:
                faces = self._faces.get((pad, number), [])
            if ctx is None or not faces or not ctx.settings.face_embedding_enabled:
                continue
            picked: list[tuple[int, decode.Detection, float]] = []
            landmarks: list[np.ndarray] = []
            for obj in self.meta.objects(frame):
                tracker_id = self.meta.tracker_id(obj)
                if obj.class_id != CLASS_FACE or tracker_id is None:
                    continue
                detected = self.meta.detector_box(obj).xyxy
                match = max(faces, key=lambda f: decode.iou(f.xyxy, detected))
                points = match.landmarks
                if decode.iou(match.xyxy, detected) < MATCH_IOU or points is None:
                    continue  # carried by the tracker this frame, not detected: no landmarks
                quality = decode.landmark_quality(match)
                with ctx.lock:
                    to_beat = ctx.book.best_quality(pb.OBJECT_CLASS_FACE, tracker_id)
                if (min(match.width, match.height) < ctx.settings.min_face_size
                        or quality < ctx.settings.min_face_quality or quality <= to_beat):
                    continue
                picked.append((tracker_id, match, quality))
                landmarks.append(points)
            if not picked:
                continue
            crops = _to_host_bgr(warp_faces(surface(frame), landmarks))
            with self._lock:
                for (tracker_id, match, quality), crop in zip(picked, crops):
                    self._candidates[(pad, number, tracker_id)] = (match, quality, crop)
            chosen += len(picked)
        return chosen

    def on_snapshots(self, batch, gst_buffer, encoder) -> int:
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
                if tracker_id is None or obj.class_id not in TRACKED_CLASSES:
                    continue
                with ctx.lock:
                    wanted = ctx.book.wants_snapshot(_pb_class(obj.class_id), tracker_id)
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

    # --- records ------------------------------------------------------------------------------

    def on_collect(self, batch) -> list[FrameRecord]:
        records = []
        for frame in self.meta.frames(batch):
            pad, number = int(frame.pad_index), int(frame.frame_num)
            ctx = self.streams(pad)
            tracked = [(obj, tracker_id) for obj in self.meta.objects(frame)
                       if obj.class_id in TRACKED_CLASSES and (tracker_id := self.meta.tracker_id(obj)) is not None]
            objects = []
            with self._lock:
                for obj, tracker_id in tracked:
                    key = (pad, number, obj.class_id, tracker_id)
                    jpeg = self.meta.jpeg(obj) if key in self._encode else None
                    self._encode.discard(key)
                    candidate = self._candidates.pop((pad, number, tracker_id), None) \
                        if obj.class_id == CLASS_FACE else None
                    objects.append(ObjectRecord(
                        _pb_class(obj.class_id), tracker_id, self.meta.box(obj).xyxy, self.meta.confidence(obj),
                        label=str(obj.obj_label or ""), jpeg=jpeg,
                        crop=candidate[2] if candidate else None,
                        landmarks=candidate[0].landmarks if candidate else None,
                        quality=candidate[1] if candidate else 0.0))
                self._faces.pop((pad, number), None)
                for stale in [k for k in self._candidates if k[:2] == (pad, number)]:
                    del self._candidates[stale]
            if ctx is not None:
                records.append(FrameRecord(pad, number, capture_time(int(frame.ntp_timestamp)),
                                           self.frame_size(frame), objects))
        return records


def _to_host_bgr(crops) -> list[np.ndarray]:
    """RGBA crops (numpy or CuPy) → BGR uint8 numpy arrays, the embedder client's input."""
    bgr = crops[..., 2::-1]
    host = bgr.get() if hasattr(bgr, "get") else bgr  # CuPy → numpy: the only copy to the host
    return [np.ascontiguousarray(crop) for crop in host]


def embed_faces(record: FrameRecord, embed: Embed) -> FrameRecord:
    """The record with its face crops embedded (one Triton request per frame that has any)."""
    indices, crops = [], []
    for i, o in enumerate(record.objects):
        if o.crop is not None:
            indices.append(i)
            crops.append(o.crop)
    if not indices:
        return record
    vectors = embed(crops)
    objects = list(record.objects)
    for i, vector in zip(indices, vectors):
        objects[i] = dataclasses.replace(objects[i], embedding=np.asarray(vector, dtype=np.float32), crop=None)
    return dataclasses.replace(record, objects=objects)


TRACKED_CLASSES = (CLASS_PERSON, CLASS_FACE, CLASS_VEHICLE)  # what becomes tracks (everything the detectors add)


def _pb_class(class_id: int) -> int:
    """ingest.proto's ObjectClass of a pipeline class."""
    if class_id == CLASS_PERSON:
        return pb.OBJECT_CLASS_PERSON
    if class_id == CLASS_FACE:
        return pb.OBJECT_CLASS_FACE
    return pb.OBJECT_CLASS_VEHICLE


def _box(xyxy) -> Box:
    x1, y1, x2, y2 = xyxy
    return Box(float(x1), float(y1), float(x2 - x1), float(y2 - y1))


Upload = Callable[[str, bytes], SnapshotRef]
# the last word of a snapshot's key, as the portable backend names them
_SNAPSHOT_KIND: dict[int, str] = {pb.OBJECT_CLASS_FACE: "face", pb.OBJECT_CLASS_PERSON: "person",
                                  pb.OBJECT_CLASS_VEHICLE: "vehicle"}


def sightings(record: FrameRecord, ctx: StreamContext, *, model_version: str, upload: Upload | None) -> list[Sighting]:
    """One frame's Sightings for the stream's TrackBook: boxes normalised, faces with their
    embedding (L2-normalised) and landmarks, each face given the person whose box holds it, and
    JPEGs uploaded before the message naming them exists."""
    width, height = record.frame_size
    persons = {o.tracker_id: o.xyxy for o in record.objects if o.object_class == pb.OBJECT_CLASS_PERSON}
    result = []
    for o in record.objects:
        if o.object_class == pb.OBJECT_CLASS_VEHICLE and o.label not in VEHICLE_LABELS:
            continue  # a vehicle the tracker carries without the detector's label: nothing to name it by
        snapshot = None
        if o.jpeg and upload is not None:
            kind = _SNAPSHOT_KIND[o.object_class]
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
                               confidence=o.confidence, face=face, snapshot=snapshot, parent_tracker_id=parent,
                               label="" if o.object_class == pb.OBJECT_CLASS_FACE else o.label))
    return result
