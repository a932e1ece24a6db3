"""A PublishRequest checked field by field and turned into plain values.

Every rule of ingest.proto is enforced here, before anything is written; a violation is an
InvalidArgument whose field is the request path ("batch.updates[3].box.width"), which the node
receives as the reason of a REJECTED ack. The embedding's dimension depends on the model
version, which only the database knows: recognition checks it, naming BestFace.path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import numpy as np
from google.protobuf.message import Message

from vigil.api.v1 import ingest_pb2 as pb
from vigil.control.analytics.model import VEHICLE_LABELS, Box, ObjectClass, Point, TrackKind
from vigil.control.analytics.parameters import excerpt
from vigil.errors import InvalidArgument

MAX_UPDATES = 1000
MAX_TRACK_ID = 64
MAX_KEY = 128
MAX_MODEL_VERSION = 100
MAX_SNAPSHOT_KEY = 1024
MAX_LABEL = 32
LANDMARKS = 5
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
EDGE_TOLERANCE = 1e-6  # boxes arrive as float32: x + width may pass 1 by rounding (as the analytics allow)

KINDS = {pb.TRACK_UPDATE_KIND_START: TrackKind.START, pb.TRACK_UPDATE_KIND_UPDATE: TrackKind.UPDATE,
         pb.TRACK_UPDATE_KIND_END: TrackKind.END}
CLASSES = {pb.OBJECT_CLASS_PERSON: ObjectClass.PERSON, pb.OBJECT_CLASS_FACE: ObjectClass.FACE,
           pb.OBJECT_CLASS_VEHICLE: ObjectClass.VEHICLE}
# The labels each class accepts ("" = none sent); a vehicle must say which kind it is.
LABELS = {ObjectClass.PERSON: frozenset({"", "person"}), ObjectClass.FACE: frozenset({"", "face"}),
          ObjectClass.VEHICLE: frozenset(VEHICLE_LABELS)}
SNAPSHOT_CLASSES = (ObjectClass.PERSON, ObjectClass.VEHICLE)  # a face's snapshot is in best_face


@dataclass(frozen=True)
class Snapshot:
    """A JPEG the node uploaded: registered as media of the track's event."""

    key: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class BestFace:
    path: str  # request path of this face, e.g. "batch.updates[3].best_face"
    embedding: np.ndarray  # float32, finite, not all zeros; its length is checked against the model
    model_version: str
    quality: float
    confidence: float
    box: Box | None
    landmarks: tuple[Point, ...]  # empty or exactly 5
    snapshot_key: str | None
    frame_number: int
    capture_time: datetime
    snapshot: Snapshot | None = None  # with its checksum: registered in media_files


@dataclass(slots=True)  # not frozen: built hundreds of times per batch, and frozen init costs twice as much
class TrackUpdate:
    index: int  # position in the batch
    track_id: str
    kind: TrackKind
    object_class: ObjectClass
    box: Box
    confidence: float
    frame_number: int
    capture_time: datetime
    best_face: BestFace | None
    parent_track_id: str | None
    snapshot: Snapshot | None = None  # of a PERSON track's body or a VEHICLE
    label: str | None = None  # the detector's class name ("car", ...); None when none was sent


@dataclass(frozen=True)
class TrackBatch:
    node_id: UUID
    camera_id: UUID
    sequence: int
    idempotency_key: str
    frame_width: int
    frame_height: int
    updates: tuple[TrackUpdate, ...]


def parse_request(request: pb.PublishRequest) -> TrackBatch:
    if not request.HasField("batch"):
        raise InvalidArgument("batch", "is required")
    b = request.batch
    if not 1 <= len(b.updates) <= MAX_UPDATES:
        raise InvalidArgument("batch.updates", f"must hold 1 to {MAX_UPDATES} updates, got {len(b.updates)}")
    for field in ("frame_width", "frame_height"):
        if getattr(b, field) <= 0:
            raise InvalidArgument(f"batch.{field}", "must be > 0")
    if b.sequence < 1:
        raise InvalidArgument("batch.sequence", "must be >= 1")
    times: dict[tuple[int, int], datetime] = {}  # the updates of one frame share its capture time
    updates = tuple(_update(u, i, times) for i, u in enumerate(b.updates))
    _check_fixed_classes(updates)
    return TrackBatch(node_id=_uuid("batch.node_id", b.node_id), camera_id=_uuid("batch.camera_id", b.camera_id),
                      sequence=b.sequence, idempotency_key=_idempotency_key(b.idempotency_key),
                      frame_width=b.frame_width, frame_height=b.frame_height, updates=updates)


def _uuid(path: str, value: str) -> UUID:
    if not value:
        raise InvalidArgument(path, "is required")
    try:
        return UUID(value)
    except ValueError:
        raise InvalidArgument(path, f"not a UUID: {value!r}") from None


def _idempotency_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY or not all(" " <= c <= "~" for c in key):
        raise InvalidArgument("batch.idempotency_key", f"must be 1 to {MAX_KEY} printable ASCII characters")
    return key


def _text(path: str, value: str, max_chars: int, *, required: bool) -> str | None:
    if required and not value:
        raise InvalidArgument(path, "is required")
    if len(value) > max_chars:
        raise InvalidArgument(path, f"must be at most {max_chars} characters")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise InvalidArgument(path, "must not contain NUL characters")
    return value or None


def _unit(path: str, value: float) -> float:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidArgument(path, f"must be within [0, 1], got {value!r}")
    return float(value)


def _time(message: Message, path: str) -> datetime:
    field = path.rsplit(".", 1)[-1]
    if not message.HasField(field):
        raise InvalidArgument(path, "is required")
    try:
        return getattr(message, field).ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(path, "is not a valid timestamp") from None


def _box(message: Message, path: str) -> Box:
    if not message.HasField(path.rsplit(".", 1)[-1]):
        raise InvalidArgument(path, "is required")
    b = getattr(message, path.rsplit(".", 1)[-1])
    for name in ("x", "y", "width", "height"):
        _unit(f"{path}.{name}", getattr(b, name))
    for name in ("width", "height"):
        if getattr(b, name) <= 0:
            raise InvalidArgument(f"{path}.{name}", "must be > 0")
    if b.x + b.width > 1 + EDGE_TOLERANCE:
        raise InvalidArgument(f"{path}.width", "x + width must be <= 1")
    if b.y + b.height > 1 + EDGE_TOLERANCE:
        raise InvalidArgument(f"{path}.height", "y + height must be <= 1")
    return Box(b.x, b.y, b.width, b.height)


def _enum(path: str, value: int, known: dict, enum_type):
    if value not in known:
        raise InvalidArgument(path, f"must be one of {', '.join(enum_type.Name(k) for k in known)}")
    return known[value]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z, the last a Timestamp (and a datetime) can hold


def _update(u: pb.TrackUpdate, i: int, times: dict[tuple[int, int], datetime]) -> TrackUpdate:
    """The common case checked without building field paths (a batch holds hundreds of updates); an
    update that fails any of these checks, or carries a body snapshot, goes through _checked_update,
    which names the offending field."""
    object_class, kind = CLASSES.get(u.object_class), KINDS.get(u.kind)
    track_id, parent, b, ts, label = u.track_id, u.parent_track_id, u.box, u.capture_time, u.label
    x, y, width, height, confidence = b.x, b.y, b.width, b.height, u.confidence
    if (object_class is None or kind is None or not 0 < len(track_id) <= MAX_TRACK_ID or "\x00" in track_id
            or label not in LABELS[object_class]
            or (parent and (object_class is not ObjectClass.FACE or len(parent) > MAX_TRACK_ID or "\x00" in parent))
            or u.frame_number < 0 or u.HasField("snapshot") or not u.HasField("box")
            or (object_class is ObjectClass.VEHICLE and u.HasField("best_face"))
            or not u.HasField("capture_time") or not 0 <= ts.seconds <= _LAST_SECOND
            or not 0 <= ts.nanos < 1_000_000_000
            or not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 and 0.0 < width <= 1.0 and 0.0 < height <= 1.0)
            or x + width > 1 + EDGE_TOLERANCE or y + height > 1 + EDGE_TOLERANCE or not 0.0 <= confidence <= 1.0):
        return _checked_update(u, i)  # NaN fails every comparison above, infinity the range checks
    moment = (ts.seconds, ts.nanos)
    capture_time = times.get(moment)
    if capture_time is None:  # as Timestamp.ToDatetime
        capture_time = times[moment] = _EPOCH + timedelta(seconds=moment[0], microseconds=moment[1] // 1000)
    return TrackUpdate(
        index=i, track_id=track_id, kind=kind, object_class=object_class, box=Box(x, y, width, height),
        confidence=float(confidence), frame_number=u.frame_number, capture_time=capture_time,
        parent_track_id=parent or None, snapshot=None, label=label or None,
        best_face=_best_face(u, f"batch.updates[{i}].best_face", capture_time) if u.HasField("best_face") else None)


def _checked_update(u: pb.TrackUpdate, i: int) -> TrackUpdate:
    path = f"batch.updates[{i}]"
    object_class = _enum(f"{path}.object_class", u.object_class, CLASSES, pb.ObjectClass)
    label = _label(f"{path}.label", u.label, object_class)
    parent = _text(f"{path}.parent_track_id", u.parent_track_id, MAX_TRACK_ID, required=False)
    if parent is not None and object_class is not ObjectClass.FACE:
        raise InvalidArgument(f"{path}.parent_track_id", "is only allowed on FACE tracks")
    if u.frame_number < 0:
        raise InvalidArgument(f"{path}.frame_number", "must be >= 0")
    if object_class is ObjectClass.VEHICLE and u.HasField("best_face"):
        raise InvalidArgument(f"{path}.best_face", "is only allowed on FACE and PERSON tracks")
    capture_time = _time(u, f"{path}.capture_time")
    snapshot = None
    if u.HasField("snapshot"):
        if object_class not in SNAPSHOT_CLASSES:
            raise InvalidArgument(f"{path}.snapshot",
                                  "is only allowed on PERSON and VEHICLE tracks (a face's is in best_face)")
        s = u.snapshot
        snapshot = _snapshot(f"{path}.snapshot", s.key, s.sha256, s.size_bytes, key_field="key",
                             sha_field="sha256", size_field="size_bytes")
    return TrackUpdate(
        index=i, track_id=_text(f"{path}.track_id", u.track_id, MAX_TRACK_ID, required=True),
        kind=_enum(f"{path}.kind", u.kind, KINDS, pb.TrackUpdateKind), object_class=object_class,
        box=_box(u, f"{path}.box"),
        confidence=_unit(f"{path}.confidence", u.confidence), frame_number=u.frame_number,
        capture_time=capture_time, parent_track_id=parent, snapshot=snapshot, label=label,
        best_face=_best_face(u, f"{path}.best_face", capture_time) if u.HasField("best_face") else None)


def _label(path: str, label: str, object_class: ObjectClass) -> str | None:
    allowed = LABELS[object_class]
    if label in allowed:
        return label or None
    if object_class is ObjectClass.VEHICLE:
        expected = f"one of {', '.join(VEHICLE_LABELS)} (the detector's class name) on a VEHICLE track"
    else:
        expected = f"empty or {object_class.value!r} on a {object_class.name} track"
    raise InvalidArgument(path, f"must be {expected}, got {excerpt(label)}")


def _best_face(u: pb.TrackUpdate, path: str, update_time: datetime) -> BestFace:
    f = u.best_face
    embedding = np.asarray(f.embedding, dtype=np.float32)
    if embedding.size == 0:
        raise InvalidArgument(f"{path}.embedding", "is required")
    if not np.isfinite(embedding).all():
        raise InvalidArgument(f"{path}.embedding", "values must be finite (no NaN or infinity)")
    if not embedding.any():
        raise InvalidArgument(f"{path}.embedding", "must not be all zeros (it has no direction to compare)")
    if f.landmarks and len(f.landmarks) != LANDMARKS:
        raise InvalidArgument(f"{path}.landmarks", f"must hold exactly {LANDMARKS} points, got {len(f.landmarks)}")
    landmarks = tuple((_unit(f"{path}.landmarks[{j}].x", p.x), _unit(f"{path}.landmarks[{j}].y", p.y))
                      for j, p in enumerate(f.landmarks))
    if f.frame_number < 0:
        raise InvalidArgument(f"{path}.frame_number", "must be >= 0")
    # a face without its own frame was taken from the update's frame
    own_frame = f.HasField("capture_time")
    snapshot = None
    if f.snapshot_sha256 or f.snapshot_size_bytes:
        snapshot = _snapshot(path, f.snapshot_key, f.snapshot_sha256, f.snapshot_size_bytes,
                             key_field="snapshot_key", sha_field="snapshot_sha256", size_field="snapshot_size_bytes")
    return BestFace(
        path=path, embedding=embedding,
        model_version=_text(f"{path}.model_version", f.model_version, MAX_MODEL_VERSION, required=True),
        quality=_unit(f"{path}.quality", f.quality), confidence=_unit(f"{path}.confidence", f.confidence),
        box=_box(u.best_face, f"{path}.box") if f.HasField("box") else None, landmarks=landmarks,
        snapshot_key=_text(f"{path}.snapshot_key", f.snapshot_key, MAX_SNAPSHOT_KEY, required=False),
        frame_number=f.frame_number if own_frame else u.frame_number,
        capture_time=_time(f, f"{path}.capture_time") if own_frame else update_time, snapshot=snapshot)


def _snapshot(path: str, key: str, sha256: str, size: int, *, key_field: str, sha_field: str,
              size_field: str) -> Snapshot:
    key = _text(f"{path}.{key_field}", key, MAX_SNAPSHOT_KEY, required=True)
    if not _SHA256_HEX.match(sha256):
        raise InvalidArgument(f"{path}.{sha_field}", "must be a SHA-256 digest: 64 lowercase hex characters")
    if size <= 0:
        raise InvalidArgument(f"{path}.{size_field}", "must be > 0")
    return Snapshot(key, sha256, size)


def _check_fixed_classes(updates: tuple[TrackUpdate, ...]) -> None:
    """A track's class is fixed for its life: within a batch, every update of a track agrees. A
    face's parent is a body: never a track the batch names as a vehicle (events.py checks the
    vehicles of earlier batches)."""
    first: dict[str, TrackUpdate] = {}
    for u in updates:
        seen = first.setdefault(u.track_id, u)
        if seen.object_class is not u.object_class:
            raise InvalidArgument(f"batch.updates[{u.index}].object_class",
                                  f"track {u.track_id!r} is {seen.object_class.value} in updates[{seen.index}]")
    for u in updates:
        parent = first.get(u.parent_track_id) if u.parent_track_id else None
        if parent is not None and parent.object_class is ObjectClass.VEHICLE:
            raise_vehicle_parent(f"batch.updates[{u.index}].parent_track_id", u.parent_track_id)


def raise_vehicle_parent(path: str, parent_track_id: str) -> None:
    raise InvalidArgument(path, f"track {excerpt(parent_track_id)} is a VEHICLE track; a face's parent "
                                "is the PERSON track of its body")
