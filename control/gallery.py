"""The face gallery: enrolment, and search by image or embedding.

Enrolment: each image is decoded, its faces detected down to 40 px (FaceAnalyzer.detect_still)
and one chosen (the only one, or the one the caller boxed: choose_face), aligned, quality-scored;
accepted faces are embedded through Triton in one batch, their crops stored in object storage with
a SHA-256, and the embeddings written in the caller's transaction. Objects are written before the
rows and deleted again if the transaction fails, so no row ever points at a missing crop.

Search: the query face found the same way, the nearest persons from the version's index, and
every search accounted for (account_for_search: the `searches` log and the audit log).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from uuid import UUID, uuid4

import cv2
import numpy as np

from vigil.errors import FailedPrecondition, InvalidArgument
from vigil.models.detection import DetectedFace
from vigil.models.faces import FaceAnalyzer
from vigil.models.quality import FaceQuality
from vigil.storage.objectstore import ObjectStore
from vigil.storage.repositories.faces import (
    FaceEmbedding,
    FaceEmbeddingRepository,
    ModelVersion,
    ModelVersionRepository,
    Neighbor,
)
from vigil.storage.repositories.persons import PersonRepository
from vigil.storage.repositories.searches import SearchRecord, SearchRepository, SearchTimings

MAX_IMAGES = 20
MAX_MEGAPIXELS = 40
MIN_ENROL_QUALITY = 0.3  # below: blurred, tiny or strongly turned faces make poor gallery entries


@dataclass(frozen=True)
class Box:
    """Normalised x, y, width, height."""

    x: float
    y: float
    w: float
    h: float

    def intersection(self, other: Box) -> float:
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        return ix * iy

    def iou(self, other: Box) -> float:
        inter = self.intersection(other)
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0

    def holds_centre_of(self, other: Box) -> bool:
        cx, cy = other.x + other.w / 2, other.y + other.h / 2
        return self.x <= cx <= self.x + self.w and self.y <= cy <= self.y + self.h


@dataclass(frozen=True)
class Rejection:
    reason: str  # no_face | multiple_faces | face_box_mismatch | face_too_small | low_quality
    message: str


@dataclass(frozen=True)
class ImageOutcome:
    index: int
    face_box: Box | None
    face: FaceEmbedding | None = None
    rejection: Rejection | None = None


@dataclass(frozen=True)
class _Candidate:
    index: int
    box: Box
    crop: np.ndarray
    quality: FaceQuality
    confidence: float


def decode_image(data: bytes, field: str, max_bytes: int) -> np.ndarray:
    """BGR pixels, or InvalidArgument naming the field."""
    if not data:
        raise InvalidArgument(field, "is required")
    if len(data) > max_bytes:
        raise InvalidArgument(field, f"is {len(data)} bytes; the limit is {max_bytes}")
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None or pixels.size == 0:
        raise InvalidArgument(field, "is not a decodable JPEG, PNG, WebP or BMP image")
    if pixels.shape[0] * pixels.shape[1] > MAX_MEGAPIXELS * 1_000_000:
        raise InvalidArgument(field, f"has more than {MAX_MEGAPIXELS} megapixels")
    return pixels


def check_box(box: Box | None, field: str) -> None:
    if box is None:
        return
    values = (box.x, box.y, box.w, box.h)
    if not all(np.isfinite(values)) or box.w <= 0 or box.h <= 0 or box.x < 0 or box.y < 0 \
            or box.x + box.w > 1.0001 or box.y + box.h > 1.0001:
        raise InvalidArgument(field, "must be a box of positive size inside [0, 1]")


def _box(face: DetectedFace) -> Box:
    return Box(*face.box_normalized)


def choose_face(faces: list[DetectedFace], wanted: Box | None) -> DetectedFace | Rejection:
    if not faces:
        return Rejection("no_face", "no face was found in the image")
    if wanted is None:
        if len(faces) > 1:
            return Rejection("multiple_faces", f"{len(faces)} faces were found; give face_box to choose one")
        return faces[0]
    # A box drawn tightly (inside the detector's box) or loosely (around head and shoulders) holds
    # the centre of the face it means; of several such faces, or none, the one it overlaps most.
    overlapping = [f for f in faces if wanted.intersection(_box(f)) > 0]
    if not overlapping:
        return Rejection("face_box_mismatch", "no detected face overlaps face_box")
    return max(overlapping, key=lambda f: (wanted.holds_centre_of(_box(f)), wanted.iou(_box(f))))


class FaceGallery:
    def __init__(self, analyzer: FaceAnalyzer, objects: ObjectStore, *, max_image_bytes: int):
        self.analyzer = analyzer
        self.objects = objects
        self.max_image_bytes = max_image_bytes

    def _examine(self, index: int, pixels: np.ndarray, wanted: Box | None) -> _Candidate | ImageOutcome:
        chosen = choose_face(self.analyzer.detect_still(pixels), wanted)
        if isinstance(chosen, Rejection):
            return ImageOutcome(index, None, rejection=chosen)
        quality = self.analyzer.quality(pixels, chosen)
        box = _box(chosen)
        if quality.size == 0.0:
            return ImageOutcome(index, box, rejection=Rejection(
                "face_too_small", f"the face is {quality.face_pixels:.0f} px; too small to enrol"))
        if quality.score < MIN_ENROL_QUALITY:
            return ImageOutcome(index, box, rejection=Rejection(
                "low_quality", f"quality {quality.score:.2f} below {MIN_ENROL_QUALITY:.2f} "
                               f"(sharpness {quality.sharpness:.2f}, frontal {quality.frontal:.2f})"))
        return _Candidate(index, box, self.analyzer.align(pixels, chosen.landmarks), quality, chosen.score)

    def _analyse(self, images: list[tuple[np.ndarray, Box | None]]):
        """Runs in a worker thread: detection, alignment, quality and one batched embedding."""
        examined = [self._examine(i, pixels, box) for i, (pixels, box) in enumerate(images)]
        candidates = [c for c in examined if isinstance(c, _Candidate)]
        vectors = self.analyzer.embed([c.crop for c in candidates]) if candidates else np.zeros((0, 0))
        return examined, candidates, vectors

    async def enroll(self, tx, person_id: str, images: list[tuple[bytes, Box | None]], *,
                     model_version: str | None, replace_primary: bool) -> list[ImageOutcome]:
        if not 1 <= len(images) <= MAX_IMAGES:
            raise InvalidArgument("images", f"give 1 to {MAX_IMAGES} images")
        decoded = []
        for i, (data, box) in enumerate(images):
            check_box(box, f"images[{i}].face_box")
            decoded.append((decode_image(data, f"images[{i}].image", self.max_image_bytes), box))
        person = await PersonRepository(tx.conn).get(person_id)  # NOT_FOUND before any heavy work
        model = await ModelVersionRepository(tx.conn).embedder(model_version)
        examined, candidates, vectors = await asyncio.to_thread(self._analyse, decoded)
        if candidates and vectors.shape[1] != model.embedding_dim:
            raise FailedPrecondition(f"model version {model.version_string} has {model.embedding_dim} dimensions "
                                     f"but Triton's embedder returns {vectors.shape[1]}")
        stored = await self._store_crops(person.id, candidates)
        try:
            return await self._write(tx, person.id, model, examined, candidates, vectors, stored, replace_primary)
        except BaseException:
            await asyncio.gather(*(asyncio.to_thread(self.objects.delete, key) for key in stored),
                                 return_exceptions=True)
            raise

    async def _store_crops(self, person_id: UUID, candidates: list[_Candidate]) -> list[str]:
        keys = []
        for c in candidates:
            ok, jpeg = cv2.imencode(".jpg", c.crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
            key = f"faces/{person_id}/{uuid4()}.jpg"
            await asyncio.to_thread(self.objects.put, key, jpeg.tobytes(), content_type="image/jpeg")
            keys.append(key)
        return keys

    async def _write(self, tx, person_id: UUID, model: ModelVersion, examined, candidates, vectors, keys,
                     replace_primary: bool) -> list[ImageOutcome]:
        faces = FaceEmbeddingRepository(tx.conn)
        gallery = await faces.list_for_person(person_id, model_version=model.version_string)
        primary_quality = max((f.face_quality for f in gallery if f.is_primary), default=None)
        inserted = {}
        for c, vector, key in zip(candidates, vectors, keys):
            inserted[c.index] = await faces.insert(person_id, model, vector.tolist(), key,
                                                   face_quality=round(c.quality.score, 3),
                                                   confidence=round(min(max(c.confidence, 0.0), 1.0), 3))
        if inserted:
            # the person's best face is their primary: a better new face takes over (or any, when asked)
            best = max(candidates, key=lambda c: c.quality.score)
            if replace_primary or primary_quality is None or inserted[best.index].face_quality > primary_quality:
                inserted[best.index] = await faces.set_primary(inserted[best.index].id)
        await tx.audit("person.enroll_face", "person", person_id, {
            "model_version": model.version_string, "faces": [str(f.id) for f in inserted.values()],
            "rejected": sum(1 for e in examined if isinstance(e, ImageOutcome))})
        outcomes = []
        for item in examined:
            if isinstance(item, ImageOutcome):
                outcomes.append(item)
            else:
                outcomes.append(ImageOutcome(item.index, item.box, face=inserted[item.index]))
        return outcomes

    def query_vector(self, data: bytes, wanted: Box | None) -> tuple[np.ndarray, Box, float]:
        """Worker thread: the embedding of the chosen (or largest) face of a query image."""
        pixels = decode_image(data, "image", self.max_image_bytes)
        faces = self.analyzer.detect_still(pixels)
        if not faces:
            raise InvalidArgument("image", "no face was found in the image")
        if wanted is None:
            face = max(faces, key=lambda f: f.box[2] * f.box[3])
        else:
            chosen = choose_face(faces, wanted)
            if isinstance(chosen, Rejection):
                raise InvalidArgument("face_box", chosen.message)
            face = chosen
        quality = self.analyzer.quality(pixels, face)
        vector = self.analyzer.embed([self.analyzer.align(pixels, face.landmarks)])[0]
        return vector, _box(face), quality.score


@dataclass(frozen=True)
class SearchFilters:
    watchlist_ids: Sequence[UUID] = ()
    statuses: Sequence[str] = ()
    labels: Sequence[str] = ()

    def __bool__(self) -> bool:
        return bool(self.watchlist_ids or self.statuses or self.labels)

    def logged(self) -> dict[str, list[str]]:
        return {"watchlist_ids": [str(w) for w in self.watchlist_ids], "statuses": list(self.statuses),
                "labels": list(self.labels)}


@dataclass
class SearchClock:
    """Where a search's time goes: the probe's embedding, the k-NN search, the other queries."""

    started: float = field(default_factory=time.perf_counter)
    spent: dict[str, float] = field(default_factory=lambda: {"embed": 0.0, "vector": 0.0, "db": 0.0})

    @contextmanager
    def timing(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.spent[part] += (time.perf_counter() - start) * 1000

    def timings(self) -> SearchTimings:
        return SearchTimings(embed_ms=self.spent["embed"], vector_ms=self.spent["vector"], db_ms=self.spent["db"],
                             total_ms=(time.perf_counter() - self.started) * 1000)


async def account_for_search(tx, query_type: str, model: ModelVersion, filters: dict, matches: Sequence[Neighbor],
                             clock: SearchClock, **context) -> SearchRecord:
    """Log the search in `searches` and audit it: who searched, with what, and whom it found
    (faces are personal data). `context` (e.g. the query face's quality) goes into the log's metadata."""
    person_ids = [str(n.person_id) for n in matches]
    record = await SearchRepository(tx.conn).record(
        query_type, user_id=tx.caller.user_id, api_key_id=tx.caller.key.id, model_version=model.version_string,
        filters=filters, result_count=len(matches), top_score=max((n.similarity for n in matches), default=None),
        timings=clock.timings(), client_ip=tx.caller.client_ip, metadata={"matched_person_ids": person_ids, **context})
    await tx.audit("person.search_faces", "search", record.id, {
        "query_type": query_type, "model_version": model.version_string, "matched_person_ids": person_ids})
    return record


@dataclass
class SearchAttempt:
    """What a face search has established so far, for the log when it fails part-way."""

    query_type: str  # searches.query_type: 'image' or 'face' (a probe embedding)
    clock: SearchClock = field(default_factory=SearchClock)
    filters: dict = field(default_factory=dict)  # as logged; empty until the request's were checked
    model: ModelVersion | None = None  # once resolved


ERROR_EXCERPT = 300  # characters of a failed search's error kept in its log entry


async def account_for_failed_search(tx, attempt: SearchAttempt, error: str) -> SearchRecord:
    """Log and audit a search that ended in an error, with what it had asked: who tried to search
    whom matters as much as who found whom."""
    error = error if len(error) <= ERROR_EXCERPT else error[:ERROR_EXCERPT - 1] + "…"
    version = attempt.model.version_string if attempt.model else None
    record = await SearchRepository(tx.conn).record(
        attempt.query_type, user_id=tx.caller.user_id, api_key_id=tx.caller.key.id, model_version=version,
        filters=attempt.filters, result_count=0, top_score=None, timings=attempt.clock.timings(),
        client_ip=tx.caller.client_ip, metadata={"matched_person_ids": [], "error": error})
    await tx.audit("person.search_faces", "search", record.id, {
        "query_type": attempt.query_type, "model_version": version, "matched_person_ids": [], "error": error})
    return record


async def _eligible_persons(conn, filters: SearchFilters) -> list[UUID]:
    return await PersonRepository(conn).ids_matching(statuses=filters.statuses, labels=filters.labels,
                                                     watchlist_ids=filters.watchlist_ids)


async def nearest_persons(conn, model: ModelVersion, vector: Sequence[float], top_k: int, *,
                          filters: SearchFilters, min_similarity: float | None,
                          clock: SearchClock | None = None) -> list[Neighbor]:
    """The top_k most similar persons (each with their most similar face), most similar first."""
    clock = clock or SearchClock()
    with clock.timing("db"):
        person_ids = await _eligible_persons(conn, filters) if filters else None
    if person_ids == []:
        return []
    # several faces per person: ask for more neighbours than persons wanted
    with clock.timing("vector"):
        neighbours = await FaceEmbeddingRepository(conn).nearest(
            model, vector, k=min(top_k * 5, 1000), person_ids=person_ids,
            max_distance=None if min_similarity is None else 1.0 - min_similarity)
    best: dict[UUID, Neighbor] = {}
    for n in neighbours:
        best.setdefault(n.person_id, n)
    return sorted(best.values(), key=lambda n: n.distance)[:top_k]
