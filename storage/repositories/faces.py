"""Face model versions and the embedding gallery with its k-NN search.

All model versions share face_embeddings; each version has a partial HNSW index WHERE
model_version = '<version>' on the expression its index_params name (SCHEMA.md, 0027):
`embedding::vector(D)`, `embedding::halfvec(D)` or `binary_quantize(embedding::vector(D))::bit(D)`.
Searches use exactly that expression and predicate, with D read from the model version, so the
planner picks the version's own index and only same-model vectors are ever compared. With
`rerank` set the index yields that many candidates, re-ranked by exact cosine on the stored
float32 vectors (two stages). The bench (bench/face_search.py) measures these same statements.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from vigil.errors import FailedPrecondition, InvalidArgument, NotFound
from vigil.storage.repositories.audit import AuditLogRepository
from vigil.storage.repositories.base import (
    BY_CREATED_AT,
    Keyset,
    Page,
    as_uuid,
    aware,
    columns_of,
    delete_row,
    fetch_all,
    fetch_one,
    fetch_page,
    guarded,
    insert_row,
    parse_timestamp,
    unit_interval,
    uuid_list,
)
from vigil.storage.repositories.filters import Filters

MAX_DIM = 2000  # pgvector's HNSW limit for `vector`
MAX_K = 1000  # hnsw.ef_search's upper bound: an index scan returns at most ef_search rows
DEFAULT_EF_SEARCH = 64
# A search filtered to at most this many persons is exact (their rows found by the person index and
# sorted): no graph walk can lose a person that 99 % of the gallery hides.
EXACT_FILTER_PERSONS = 5_000
# Filtered searches over more rows walk the graph iteratively; pgvector stops after this many
# tuples (its default, 20,000, can end a walk before a 1 %-selective filter found k rows).
MAX_SCAN_TUPLES = 200_000
STORAGES = ("vector", "halfvec", "bit")


@dataclass(frozen=True)
class IndexParams:
    """How a model version's gallery is indexed and searched (model_versions.index_params)."""

    storage: str = "vector"  # vector (float32) | halfvec (float16) | bit (binary-quantised)
    m: int = 16
    ef_construction: int = 64
    ef_search: int = DEFAULT_EF_SEARCH
    rerank: int = 0  # candidates the index yields for exact re-ranking; 0 = one stage

    @classmethod
    def from_json(cls, document: dict[str, Any] | None) -> IndexParams:
        fields = {f: document[f] for f in cls.__dataclass_fields__ if document and f in document}
        return cls(**fields).checked()

    def checked(self) -> IndexParams:
        def integer(name: str, low: int, high: int) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidArgument(f"index_params.{name}", f"must be an integer in {low}..{high}")

        if self.storage not in STORAGES:
            raise InvalidArgument("index_params.storage", f"must be one of {', '.join(STORAGES)}")
        integer("m", 2, 100)
        integer("ef_construction", max(4, 2 * self.m), 1000)
        integer("ef_search", 1, MAX_K)
        integer("rerank", 1 if self.storage == "bit" else 0, MAX_K)
        return self

    def to_json(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    def indexed(self, dim: int, vector: sql.Composable) -> sql.Composed:
        """`vector` as the index stores it (the index's expression when `vector` is the column)."""
        if self.storage == "halfvec":
            return sql.SQL("{}::halfvec({})").format(vector, sql.Literal(dim))
        if self.storage == "bit":
            return sql.SQL("binary_quantize({}::vector({}))::bit({})").format(vector, sql.Literal(dim),
                                                                               sql.Literal(dim))
        return sql.SQL("{}::vector({})").format(vector, sql.Literal(dim))

    def distance(self, dim: int, query: sql.Composable) -> sql.Composed:
        """The index's ordering: cosine distance, or Hamming distance between the sign bits."""
        operator = sql.SQL("<~>" if self.storage == "bit" else "<=>")
        return sql.SQL("{} {} {}").format(self.indexed(dim, sql.Identifier("embedding")), operator,
                                          self.indexed(dim, query))


# The designs bench/face_search.py measured best per embedding size (BENCHMARKS.md, "Face search");
# `vigil models prepare` registers its embedders with theirs. Other versions keep IndexParams()
# until ModelVersionRepository.set_index.
MEASURED_DESIGNS = {
    128: IndexParams(storage="halfvec", m=16, ef_construction=64, ef_search=200, rerank=40),
    512: IndexParams(storage="halfvec", m=24, ef_construction=96, ef_search=400, rerank=40),
}


@dataclass(frozen=True)
class ModelVersion:
    id: UUID
    version_string: str
    embedding_dim: int | None  # None for models that emit no embeddings
    match_threshold: float | None  # minimum cosine similarity of a match
    metrics: dict[str, Any]
    is_production: bool
    is_rollback_available: bool
    deployed_at: datetime | None
    training_job_id: UUID | None
    created_at: datetime
    index_params: dict[str, Any]  # IndexParams as stored; see .index
    identification_threshold: float | None  # 1:N, from the gallery's calibration; None = not calibrated
    identification_calibration: dict[str, Any]

    @property
    def index(self) -> IndexParams:
        return IndexParams.from_json(self.index_params)

    @property
    def identifies_at(self) -> float | None:
        """The similarity at which a face is named as an enrolled person among the whole gallery:
        the 1:1 match threshold, raised by the gallery's 1:N calibration when that is higher."""
        if self.match_threshold is None or self.identification_threshold is None:
            return self.match_threshold
        return max(self.match_threshold, self.identification_threshold)


@dataclass(frozen=True)
class FaceEmbedding:
    id: UUID
    person_id: UUID
    model_version: str
    embedding_dim: int
    source_image_path: str
    face_quality: float
    confidence: float
    is_primary: bool
    created_at: datetime


@dataclass(frozen=True)
class Neighbor:
    embedding_id: UUID
    person_id: UUID
    distance: float  # cosine distance, 0 = same direction
    similarity: float  # 1 - distance, compared with ModelVersion.match_threshold


_MODEL_COLUMNS = columns_of(ModelVersion, match_threshold=sql.SQL("match_threshold::float8"),
                            identification_threshold=sql.SQL("identification_threshold::float8"))
_BEST_FIRST = "face_quality DESC, confidence DESC, created_at DESC, id DESC"  # the best embedding of several
_EMBEDDING_COLUMNS = columns_of(FaceEmbedding, face_quality=sql.SQL("face_quality::float8"),
                                confidence=sql.SQL("confidence::float8"))


class ModelVersionRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def register(self, version_string: str, embedding_dim: int, match_threshold: float, *,
                       metrics: dict[str, Any] | None = None, index: IndexParams | None = None) -> ModelVersion:
        """Register a face embedder; the schema's trigger builds its HNSW index (as `index` says:
        the defaults when None) in the same transaction."""
        if not isinstance(version_string, str) or not 1 <= len(version_string.strip()) <= 100:
            raise InvalidArgument("version_string", "must be 1 to 100 characters")
        if not isinstance(embedding_dim, int) or isinstance(embedding_dim, bool) or not 1 <= embedding_dim <= MAX_DIM:
            raise InvalidArgument("embedding_dim", f"must be an integer in 1..{MAX_DIM}")
        if not isinstance(match_threshold, (int, float)) or not math.isfinite(match_threshold) \
                or not -1.0 <= match_threshold <= 1.0:
            raise InvalidArgument("match_threshold", "must be a cosine similarity in [-1, 1]")
        values = {"version_string": version_string, "embedding_dim": embedding_dim,
                  "match_threshold": match_threshold, "metrics": Jsonb(metrics or {}),
                  "index_params": Jsonb((index or IndexParams()).checked().to_json())}
        return await insert_row(self.conn, "model_versions", values, ModelVersion, _MODEL_COLUMNS, "model_version")

    async def set_index(self, version_string: str, index: IndexParams) -> ModelVersion:
        """Index and search the version's gallery anew: the trigger rebuilds its index now (minutes
        for a large gallery) when storage, m or ef_construction change."""
        model = await self.get(version_string)
        async with guarded(self.conn, "model_version"):
            await self.conn.execute("UPDATE model_versions SET index_params = %s WHERE id = %s",
                                    (Jsonb(index.checked().to_json()), model.id))
        return await self.get(version_string)

    async def set_identification(self, version_string: str, calibration: Calibration, *, by: str) -> ModelVersion:
        """Store the version's 1:N threshold and how it was measured (calibrate_identification), and
        audit who set it (`by`: "cli", "job gallery_calibration", ...)."""
        model = await self.get(version_string)
        async with guarded(self.conn, "model_version"):
            await self.conn.execute(
                "UPDATE model_versions SET identification_threshold = %s, identification_calibration = %s"
                " WHERE id = %s", (round(calibration.threshold, 4), Jsonb(calibration.details), model.id))
        stored = await self.get(version_string)
        await AuditLogRepository(self.conn).record(
            "model_version.calibrate", "model_version", resource_id=model.id,
            changed_fields={"identification_threshold": stored.identification_threshold},
            details={"by": by, "calibration": calibration.details})
        return stored

    async def get(self, version_string: str) -> ModelVersion:
        model = await fetch_one(self.conn, ModelVersion, sql.SQL(
            "SELECT {} FROM model_versions WHERE version_string = %s").format(_MODEL_COLUMNS), (version_string,))
        if model is None:
            raise NotFound("model_version", version_string)
        return model

    async def embedder(self, version_string: str | None = None) -> ModelVersion:
        """The named model version, else the production embedder, else the newest registered one."""
        if version_string:
            return await self.get(version_string)
        embedders = [m for m in await self.list() if m.embedding_dim]
        if not embedders:
            raise FailedPrecondition("no face embedding model is registered: run `vigil models prepare`")
        production = [m for m in embedders if m.is_production]
        return (production or sorted(embedders, key=lambda m: m.created_at))[-1]

    async def list(self) -> list[ModelVersion]:
        return await fetch_all(self.conn, ModelVersion, sql.SQL(
            "SELECT {} FROM model_versions ORDER BY version_string").format(_MODEL_COLUMNS))

    async def list_page(self, *, page_size: int = 0, page_token: str | None = None) -> Page[ModelVersion]:
        """Newest first, a page at a time."""
        return await fetch_page(self.conn, ModelVersion, select=_MODEL_COLUMNS, table="model_versions",
                                keyset=BY_CREATED_AT, page_size=page_size, page_token=page_token,
                                resource="model_version")


def _vector(field: str, values: Any, dim: int) -> np.ndarray:
    """A finite float32 vector of exactly `dim` values, or InvalidArgument naming `field`."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgument(field, "must be a sequence of numbers") from None
    if array.ndim != 1 or array.shape[0] != dim:
        raise InvalidArgument(field, f"has shape {array.shape}; this model version's embeddings have {dim} dimensions")
    with np.errstate(over="ignore"):
        array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise InvalidArgument(field, "values must be finite (no NaN or infinity, within float32 range)")
    return array


def _k(k: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidArgument("k", f"must be an integer in 1..{MAX_K}")
    return k


def _ef_search(ef_search: int, k: int) -> int:
    if not isinstance(ef_search, int) or isinstance(ef_search, bool) or not 1 <= ef_search <= MAX_K:
        raise InvalidArgument("ef_search", f"must be an integer in 1..{MAX_K}")
    return max(ef_search, k)  # a smaller ef_search would return fewer than k rows


def _max_distance(value: float | None) -> float | None:
    if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0):
        raise InvalidArgument("max_distance", "must be a finite cosine distance >= 0")
    return value


def _knn_statement(model: ModelVersion, query: sql.Composable, *, filtered: bool,
                   exact: bool = False) -> sql.Composed:
    """The k nearest embeddings of one model version to `query`, in the index's own terms: one
    stage, or the index's `rerank` candidates re-ranked by exact cosine. `exact` orders all rows
    (of the filtered persons) by exact cosine, with no index.

    D is interpolated as an integer literal (a type modifier cannot be a parameter); the
    version is a parameter whose value the planner sees, so the partial index qualifies.
    """
    dim, index = int(model.embedding_dim), model.index
    exact_distance = sql.SQL("embedding::vector({d}) <=> {q}::vector({d})").format(d=sql.Literal(dim), q=query)
    person_filter = sql.SQL(" AND person_id = ANY(%(person_ids)s)") if filtered else sql.SQL("")
    where = sql.SQL("FROM face_embeddings WHERE model_version = %(model_version)s{}").format(person_filter)
    if exact:  # `+ 0`: an expression no index matches, so the planner sorts the (few) rows itself
        return sql.SQL("SELECT id AS embedding_id, person_id, ({distance}) + 0 AS distance {where}"
                       " ORDER BY 3 LIMIT %(k)s").format(distance=exact_distance, where=where)
    if not index.rerank:
        return sql.SQL("SELECT id AS embedding_id, person_id, {distance} AS distance {where}"
                       " ORDER BY {order} LIMIT %(k)s").format(distance=exact_distance, where=where,
                                                                order=index.distance(dim, query))
    return sql.SQL(
        "SELECT id AS embedding_id, person_id, {distance} AS distance FROM"
        " (SELECT id, person_id, embedding {where} ORDER BY {order} LIMIT %(candidates)s) AS candidates"
        " ORDER BY 3 LIMIT %(k)s").format(distance=exact_distance, where=where, order=index.distance(dim, query))


def _neighbor(row: dict[str, Any]) -> Neighbor:
    distance = float(row["distance"])
    return Neighbor(row["embedding_id"], row["person_id"], distance, 1.0 - distance)


def _within(neighbors: Iterable[Neighbor], max_distance: float | None) -> list[Neighbor]:
    return [n for n in neighbors if max_distance is None or n.distance <= max_distance]


# --------------------------------------------------------------------------- 1:N calibration

DEFAULT_FPIR = 0.001  # the false-positive identification rate the 1:N threshold is set for
CALIBRATION_PROBES_PER_TAIL = 10  # probes beyond the quantile: 10,000 for an FPIR of 0.1 %
MAX_CALIBRATION_PROBES = 100_000
CALIBRATION_BATCH = 100
CALIBRATION_NEIGHBOURS = 20  # enough to pass a probe's own other faces and unnamed placeholders
# Persons the recogniser does not name: the unnamed placeholders holding an active unknown-face
# cluster's faces (ClusterSightingRepository.held_by), which may be another cluster of the same face.
_PLACEHOLDERS = ("SELECT r.person_id FROM person_clusters c"
                 " JOIN face_embeddings r ON r.id = c.representative_embedding_id"
                 " JOIN persons p ON p.id = r.person_id WHERE c.status = 'active' AND p.name IS NULL")
# (NOT EXISTS alone, so that the planner makes it one anti-join rather than a subquery per face)
_NOT_HELD = "NOT EXISTS (SELECT 1 FROM (" + _PLACEHOLDERS + ") AS held WHERE held.person_id = f.person_id)"
_ENROLLED = "WHERE f.model_version = %s AND " + _NOT_HELD
_ENROLLED_COUNTS = "SELECT f.model_version, count(*) AS n FROM face_embeddings f WHERE " + _NOT_HELD \
                   + " GROUP BY f.model_version"
_ENROLLED_FACES_COUNT = "SELECT count(*) AS n FROM face_embeddings f " + _ENROLLED
_SAMPLED_FACES = "SELECT f.person_id, f.embedding FROM face_embeddings f TABLESAMPLE BERNOULLI (%s) " + _ENROLLED \
                 + " LIMIT %s"
_PLACEHOLDERS_AMONG = "SELECT DISTINCT person_id AS id FROM (" + _PLACEHOLDERS + ") AS held WHERE person_id = ANY(%s)"


def calibration_probes(fpir: float) -> int:
    """Enrolled faces a calibration searches by default, and the fewest a gallery needs for one:
    enough that CALIBRATION_PROBES_PER_TAIL searches lie beyond the quantile."""
    return math.ceil(CALIBRATION_PROBES_PER_TAIL / fpir)


@dataclass(frozen=True)
class Calibration:
    threshold: float  # the similarity the gallery's best impostor scores exceed in `fpir` of searches
    details: dict[str, Any]  # model_versions.identification_calibration


class FaceEmbeddingRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def _embedder(self, model_version: ModelVersion | str) -> ModelVersion:
        """Callers holding the ModelVersion (the recogniser caches it) save a lookup per search."""
        model = model_version if isinstance(model_version, ModelVersion) else \
            await ModelVersionRepository(self.conn).get(model_version)
        if model.embedding_dim is None:
            raise InvalidArgument("model_version", f"{model.version_string} is not an embedding model")
        return model

    async def insert(self, person_id: UUID | str, model_version: ModelVersion | str, embedding: Sequence[float],
                     source_image_path: str, *, face_quality: float = 0.0, confidence: float = 0.0) -> FaceEmbedding:
        model = await self._embedder(model_version)
        values = {
            "person_id": as_uuid("person_id", person_id),
            "model_version": model.version_string,
            "embedding": _vector("embedding", embedding, model.embedding_dim),
            "embedding_dim": model.embedding_dim,
            "source_image_path": source_image_path,
            "face_quality": unit_interval("face_quality", face_quality),
            "confidence": unit_interval("confidence", confidence),
        }
        return await insert_row(self.conn, "face_embeddings", values, FaceEmbedding, _EMBEDDING_COLUMNS,
                                "face_embedding")

    async def get(self, embedding_id: UUID | str) -> FaceEmbedding:
        embedding_id = as_uuid("embedding_id", embedding_id)
        found = await fetch_one(self.conn, FaceEmbedding, sql.SQL(
            "SELECT {} FROM face_embeddings WHERE id = %s").format(_EMBEDDING_COLUMNS), (embedding_id,))
        if found is None:
            raise NotFound("face_embedding", embedding_id)
        return found

    async def vector(self, embedding_id: UUID | str) -> np.ndarray:
        embedding_id = as_uuid("embedding_id", embedding_id)
        cur = await self.conn.execute("SELECT embedding FROM face_embeddings WHERE id = %s", (embedding_id,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound("face_embedding", embedding_id)
        return row["embedding"].to_numpy()  # pgvector loads a Vector

    async def list_for_person(self, person_id: UUID | str, *, model_version: str | None = None) -> list[FaceEmbedding]:
        query = sql.SQL(
            "SELECT {} FROM face_embeddings WHERE person_id = %s"
            " AND (%s::text IS NULL OR model_version = %s) ORDER BY created_at, id"
        ).format(_EMBEDDING_COLUMNS)
        return await fetch_all(self.conn, FaceEmbedding, query,
                               (as_uuid("person_id", person_id), model_version, model_version))

    async def page_for_person(self, person_id: UUID | str, *, model_versions: Iterable[str] | None = None,
                              page_size: int = 0, page_token: str | None = None) -> Page[FaceEmbedding]:
        """A person's embeddings, newest first, optionally only those of some model versions."""
        filters = Filters().eq("person_id", as_uuid("person_id", person_id))
        filters.any("model_version", model_versions or None)
        return await fetch_page(self.conn, FaceEmbedding, select=_EMBEDDING_COLUMNS, table="face_embeddings",
                                filters=filters, keyset=BY_CREATED_AT, page_size=page_size,
                                page_token=page_token, resource="face_embedding")

    async def set_primary(self, embedding_id: UUID | str) -> FaceEmbedding:
        """Make this the person's primary embedding of its model version (the others of that version
        stop being primary; galleries of different versions each keep one) and the person's
        preferred embedding (persons.primary_face_embedding_id)."""
        embedding = await self.get(embedding_id)
        async with guarded(self.conn, "face_embedding"):
            await self.conn.execute(
                "UPDATE face_embeddings SET is_primary = (id = %s)"
                " WHERE person_id = %s AND model_version = %s AND (is_primary OR id = %s)",
                (embedding.id, embedding.person_id, embedding.model_version, embedding.id))
            await self.conn.execute("UPDATE persons SET primary_face_embedding_id = %s WHERE id = %s",
                                    (embedding.id, embedding.person_id))
        return await self.get(embedding.id)

    async def delete(self, embedding_id: UUID | str) -> None:
        """persons.primary_face_embedding_id pointing here becomes NULL (ON DELETE SET NULL)."""
        await delete_row(self.conn, "face_embeddings", as_uuid("embedding_id", embedding_id), "face_embedding")

    async def settle_primaries(self, person_id: UUID | str) -> None:
        """Give each of the person's model versions exactly one primary embedding: its primary (the best
        if there are several, as after a merge), else its best embedding (as after the primary was
        deleted); and give the person a preferred embedding when they have none. Best: highest
        quality, then confidence, then newest."""
        params = {"person_id": as_uuid("person_id", person_id)}
        async with guarded(self.conn, "face_embedding"):
            await self.conn.execute(
                "WITH ranked AS (SELECT id, row_number() OVER (PARTITION BY model_version ORDER BY is_primary DESC,"
                f" {_BEST_FIRST}) = 1 AS primary_now FROM face_embeddings WHERE person_id = %(person_id)s)"
                " UPDATE face_embeddings f SET is_primary = ranked.primary_now FROM ranked"
                " WHERE f.id = ranked.id AND f.is_primary <> ranked.primary_now", params)
            await self.conn.execute(
                "UPDATE persons SET primary_face_embedding_id = (SELECT id FROM face_embeddings"
                f" WHERE person_id = %(person_id)s AND is_primary ORDER BY {_BEST_FIRST} LIMIT 1)"
                " WHERE id = %(person_id)s AND primary_face_embedding_id IS NULL"
                " AND EXISTS (SELECT 1 FROM face_embeddings WHERE person_id = %(person_id)s)", params)

    # ----------------------------------------------------------------------- search

    async def nearest(self, model_version: ModelVersion | str, query_vector: Sequence[float], k: int = 10, *,
                      max_distance: float | None = None, person_ids: Iterable[UUID | str] | None = None,
                      ef_search: int | None = None) -> list[Neighbor]:
        """The k nearest embeddings of this model version, nearest first, optionally only those of
        `person_ids` and only within `max_distance` (e.g. 1 - match_threshold). Searched as the
        version's index_params say; `ef_search` overrides theirs."""
        model = await self._embedder(model_version)
        query = _vector("query_vector", query_vector, model.embedding_dim)
        person_ids = uuid_list("person_ids", person_ids)
        max_distance = _max_distance(max_distance)
        statement = _knn_statement(model, sql.Placeholder("query"), filtered=person_ids is not None,
                                   exact=_exact(person_ids))
        rows = await self._search(statement, {"query": query}, model, k, person_ids, ef_search)
        return _within(map(_neighbor, rows), max_distance)

    async def nearest_batch(self, model_version: ModelVersion | str, query_vectors: Sequence[Sequence[float]],
                            k: int = 10, *, max_distance: float | None = None,
                            person_ids: Iterable[UUID | str] | None = None,
                            ef_search: int | None = None) -> list[list[Neighbor]]:
        """nearest() for many queries in one statement (one round trip per frame batch, not per face):
        a LATERAL k-NN per element of an unnested vector array. Results come in query order."""
        model = await self._embedder(model_version)
        queries = [_vector(f"query_vectors[{i}]", q, model.embedding_dim) for i, q in enumerate(query_vectors)]
        person_ids = uuid_list("person_ids", person_ids)
        max_distance = _max_distance(max_distance)
        if not queries:
            return []
        knn = _knn_statement(model, sql.SQL("q.vec"), filtered=person_ids is not None, exact=_exact(person_ids))
        statement = sql.SQL(
            "SELECT q.ord, n.embedding_id, n.person_id, n.distance"
            " FROM unnest(%(queries)s::vector[]) WITH ORDINALITY AS q(vec, ord)"
            " CROSS JOIN LATERAL ({knn}) AS n ORDER BY q.ord, n.distance").format(knn=knn)
        rows = await self._search(statement, {"queries": queries}, model, k, person_ids, ef_search)
        per_query: list[list[dict[str, Any]]] = [[] for _ in queries]
        for row in rows:
            per_query[row["ord"] - 1].append(row)
        return [_within(map(_neighbor, found), max_distance) for found in per_query]

    async def enrolled_counts(self) -> dict[str, int]:
        """Faces per model version of the persons the recogniser names (what a calibration samples)."""
        cur = await self.conn.execute(_ENROLLED_COUNTS)
        return {row["model_version"]: row["n"] for row in await cur.fetchall()}

    async def calibrate_identification(self, model_version: ModelVersion | str, *, fpir: float = DEFAULT_FPIR,
                                       probes: int | None = None, progress=None) -> Calibration:
        """Measure the 1:N threshold of this version's gallery: `probes` enrolled faces (of persons
        the recogniser names, not cluster placeholders) are each searched, as the recogniser
        searches, for the nearest face of another such person; the threshold is the similarity those
        best impostor scores exceed in `fpir` of the searches, so that a stranger's face is named
        as someone about that often.
        Store it with ModelVersionRepository.set_identification."""
        model = await self._embedder(model_version)
        if not isinstance(fpir, (int, float)) or not 0 < fpir < 0.5:
            raise InvalidArgument("fpir", "must be a rate in (0, 0.5)")
        wanted = probes if probes is not None else calibration_probes(fpir)
        if not isinstance(wanted, int) or isinstance(wanted, bool) or not 1 <= wanted <= MAX_CALIBRATION_PROBES:
            raise InvalidArgument("probes", f"must be an integer in 1..{MAX_CALIBRATION_PROBES}")
        cur = await self.conn.execute(_ENROLLED_FACES_COUNT, (model.version_string,))
        enrolled = (await cur.fetchone())["n"]
        if enrolled < 2:
            raise FailedPrecondition(f"{model.version_string} has {enrolled} enrolled faces; calibrating needs a "
                                     "gallery (enrol persons first)")
        percent = min(100.0, 100.0 * 1.3 * wanted / enrolled)  # a random row sample, trimmed to `wanted`
        cur = await self.conn.execute(_SAMPLED_FACES, (percent, model.version_string, wanted))
        sample = await cur.fetchall()
        best: list[float] = []
        for start in range(0, len(sample), CALIBRATION_BATCH):
            batch = sample[start:start + CALIBRATION_BATCH]
            found = await self.nearest_batch(model, [row["embedding"].to_numpy() for row in batch],
                                             k=CALIBRATION_NEIGHBOURS)
            cur = await self.conn.execute(_PLACEHOLDERS_AMONG, (list({n.person_id for near in found for n in near}),))
            unnamed = {row["id"] for row in await cur.fetchall()}
            for row, near in zip(batch, found):
                other = next((n for n in near if n.person_id != row["person_id"] and n.person_id not in unnamed), None)
                if other is not None:
                    best.append(other.similarity)
            if progress:
                progress(min(start + CALIBRATION_BATCH, len(sample)), len(sample))
        if not best:
            raise FailedPrecondition(f"{model.version_string}'s gallery has faces of one enrolled person only; "
                                     "calibrating needs faces of several")
        scores = np.asarray(best)
        threshold = float(np.quantile(scores, 1.0 - fpir))
        return Calibration(threshold, {
            "fpir": fpir, "probes": len(scores), "gallery_faces": enrolled,
            "quantiles": {q: round(float(np.quantile(scores, float(q))), 4) for q in ("0.5", "0.99", "0.999")},
            "max": round(float(scores.max()), 4), "resolution": round(1.0 / len(scores), 6),
            "index_params": model.index.to_json(), "calibrated_at": datetime.now(UTC).isoformat()})

    async def _search(self, statement: sql.Composed, params: dict[str, Any], model: ModelVersion, k: int,
                      person_ids: list[UUID] | None, ef_search: int | None) -> list[dict[str, Any]]:
        """Run a k-NN statement under transaction-local search settings (they end with the
        transaction and never leak into the pool)."""
        settings = search_settings(model.index, _k(k), filtered=person_ids is not None, ef_search=ef_search)
        params = {**params, "model_version": model.version_string, "k": k, "person_ids": person_ids,
                  "candidates": max(model.index.rerank, k)}
        async with guarded(self.conn, "face_embedding"):
            await self.conn.execute(
                "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in settings),
                [value for item in settings.items() for value in item])
            cur = await self.conn.execute(statement, params)
            return await cur.fetchall()

    async def explain_nearest(self, model_version: ModelVersion | str, query_vector: Sequence[float],
                              k: int = 10) -> str:
        """The plan of nearest()'s statement, to check that the version's HNSW index serves it."""
        model = await self._embedder(model_version)
        params = {"model_version": model.version_string, "k": _k(k), "candidates": max(model.index.rerank, k),
                  "query": _vector("query_vector", query_vector, model.embedding_dim)}
        statement = _knn_statement(model, sql.Placeholder("query"), filtered=False)
        async with guarded(self.conn, "face_embedding"):
            cur = await self.conn.execute(sql.SQL("EXPLAIN ") + statement, params)
            return "\n".join(next(iter(row.values())) for row in await cur.fetchall())


def _exact(person_ids: list[UUID] | None) -> bool:
    return person_ids is not None and len(person_ids) <= EXACT_FILTER_PERSONS


def search_settings(index: IndexParams, k: int, *, filtered: bool, ef_search: int | None = None) -> dict[str, str]:
    """The pgvector settings of one search: ef_search large enough for the candidates wanted; with
    a filter, an iterative scan (pgvector 0.8) that keeps walking the graph until enough rows pass
    it, in strict order unless a re-rank orders them anyway."""
    wanted = max(index.rerank, k)
    ef = max(_ef_search(index.ef_search if ef_search is None else ef_search, k), min(wanted, MAX_K))
    settings = {"hnsw.ef_search": str(ef), "hnsw.iterative_scan": "off"}
    if filtered:
        settings["hnsw.iterative_scan"] = "relaxed_order" if index.rerank else "strict_order"
        settings["hnsw.max_scan_tuples"] = str(MAX_SCAN_TUPLES)
    return settings


# --------------------------------------------------------------------------- unknown-face clusters


@dataclass(frozen=True)
class UnknownCluster:
    """A person_clusters row with what review needs: its representative face and where it was seen."""
    id: UUID
    cluster_label: str
    status: str  # active | merged | reviewed
    representative_embedding_id: UUID | None
    representative_quality: float | None
    representative_person_id: UUID | None  # the person holding the cluster's faces
    sample_count: int
    event_count: int
    first_seen: datetime
    last_seen: datetime
    camera_ids: list[UUID]
    site_ids: list[UUID]
    merged_into_cluster_id: UUID | None
    created_at: datetime


def _of_representative(column: str) -> sql.Composed:
    return sql.SQL("(SELECT f.{} FROM face_embeddings f WHERE f.id = person_clusters.representative_embedding_id)"
                   ).format(sql.SQL(column))


_SIGHTINGS = ("FROM events e JOIN cameras c ON c.id = e.camera_id JOIN dvrs d ON d.id = c.dvr_id"
              " WHERE e.cluster_id = person_clusters.id")
_CLUSTER_COLUMNS = columns_of(
    UnknownCluster,
    representative_quality=_of_representative("face_quality::float8"),
    representative_person_id=_of_representative("person_id"),
    event_count=sql.SQL("(SELECT count(*) FROM events e WHERE e.cluster_id = person_clusters.id)"),
    camera_ids=sql.SQL("ARRAY(SELECT DISTINCT e.camera_id " + _SIGHTINGS + " ORDER BY 1)"),
    site_ids=sql.SQL("ARRAY(SELECT DISTINCT d.site_id " + _SIGHTINGS + " ORDER BY 1)"),
)
_LARGEST_AND_LATEST_FIRST = Keyset(("sample_count", "last_seen", "id"), (int, parse_timestamp, UUID))


_MATCHING_PAIRS = """
SELECT a.id AS a, b.id AS b
FROM person_clusters a
JOIN face_embeddings fa ON fa.id = a.representative_embedding_id
JOIN model_versions mv ON mv.version_string = fa.model_version AND mv.embedding_dim = fa.embedding_dim
JOIN person_clusters b ON b.id > a.id AND b.status = 'active'
JOIN face_embeddings fb ON fb.id = b.representative_embedding_id
    AND fb.model_version = fa.model_version AND fb.embedding_dim = fa.embedding_dim
WHERE a.status = 'active' AND mv.match_threshold IS NOT NULL
  AND 1 - (fa.embedding <=> fb.embedding) >= mv.match_threshold
LIMIT %s
"""


class ClusterRepository:
    """Unknown-face clusters (person_clusters). A cluster's faces belong to one person, the one
    holding its representative face (an unnamed person until the cluster is identified); its
    sightings are the events that name it."""

    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def get(self, cluster_id: UUID | str) -> UnknownCluster:
        cluster_id = as_uuid("cluster_id", cluster_id)
        found = await fetch_one(self.conn, UnknownCluster, sql.SQL(
            "SELECT {} FROM person_clusters WHERE id = %s").format(_CLUSTER_COLUMNS), (cluster_id,))
        if found is None:
            raise NotFound("cluster", cluster_id)
        return found

    async def list(self, *, statuses: Iterable[str] | None = None, camera_ids: Iterable[UUID | str] | None = None,
                   site_ids: Iterable[UUID | str] | None = None, last_seen_since: datetime | None = None,
                   last_seen_until: datetime | None = None, min_sample_count: int = 0, page_size: int = 0,
                   page_token: str | None = None) -> Page[UnknownCluster]:
        """Largest first, then most recently seen. Lists match any of their values (empty or None: no
        condition); `last_seen_since` is inclusive, `last_seen_until` exclusive."""
        statuses = None if statuses is None else list(statuses)
        filters = Filters().any("status", statuses or None, cast="cluster_status_enum")
        if camera_ids:
            filters.raw("EXISTS (SELECT 1 FROM events e WHERE e.cluster_id = person_clusters.id"
                        " AND e.camera_id = ANY(%s))", uuid_list("camera_ids", camera_ids))
        if site_ids:
            filters.raw("EXISTS (SELECT 1 " + _SIGHTINGS + " AND d.site_id = ANY(%s))", uuid_list("site_ids", site_ids))
        filters.range("last_seen", aware("last_seen_since", last_seen_since), aware("last_seen_until", last_seen_until))
        filters.range("sample_count", min_sample_count or None)
        return await fetch_page(self.conn, UnknownCluster, select=_CLUSTER_COLUMNS, table="person_clusters",
                                filters=filters, keyset=_LARGEST_AND_LATEST_FIRST, page_size=page_size,
                                page_token=page_token, resource="cluster", values={"statuses": statuses})

    async def merge(self, target_id: UUID | str, source_ids: Iterable[UUID | str]) -> UnknownCluster:
        """Merge ACTIVE clusters into an ACTIVE target. Their events move to the target (and clusters
        merged into them earlier now point at it); the target's sample count becomes the sum, its
        sightings span them all and its representative is the best of their representative faces;
        the sources become MERGED into it. Their faces belong to persons: merge those (persons.merge)."""
        target_id = as_uuid("target_id", target_id)
        source_ids = list(dict.fromkeys(as_uuid("source_ids", s) for s in source_ids))
        if target_id in source_ids:
            raise InvalidArgument("source_ids", "a cluster cannot be merged into itself")
        await self._require_active([target_id, *source_ids])
        ids = {"target": target_id, "sources": source_ids, "all": [target_id, *source_ids]}
        async with guarded(self.conn, "cluster"):
            await self.conn.execute("UPDATE events SET cluster_id = %(target)s"
                                    " WHERE cluster_id = ANY(%(sources)s)", ids)
            await self.conn.execute("UPDATE person_clusters SET merged_into_cluster_id = %(target)s"
                                    " WHERE merged_into_cluster_id = ANY(%(sources)s)", ids)
            await self.conn.execute(
                "UPDATE person_clusters t SET sample_count = t.sample_count + s.sample_count,"
                " first_seen = LEAST(t.first_seen, s.first_seen), last_seen = GREATEST(t.last_seen, s.last_seen),"
                " representative_embedding_id = (SELECT id FROM face_embeddings WHERE id IN"
                " (SELECT representative_embedding_id FROM person_clusters WHERE id = ANY(%(all)s))"
                f" ORDER BY {_BEST_FIRST} LIMIT 1)"
                " FROM (SELECT sum(sample_count) AS sample_count, min(first_seen) AS first_seen,"
                " max(last_seen) AS last_seen FROM person_clusters WHERE id = ANY(%(sources)s)) s"
                " WHERE t.id = %(target)s", ids)
            await self.conn.execute("UPDATE person_clusters SET status = 'merged', merged_into_cluster_id = %(target)s"
                                    " WHERE id = ANY(%(sources)s)", ids)
        return await self.get(target_id)

    async def assign_to_person(self, cluster_id: UUID | str, person_id: UUID | str) -> UnknownCluster:
        """Identify an ACTIVE cluster as a person: its events name the person and it becomes REVIEWED.
        Its faces belong to a person: merge that one into this (persons.merge)."""
        cluster_id, person_id = as_uuid("cluster_id", cluster_id), as_uuid("person_id", person_id)
        await self._require_active([cluster_id])
        async with guarded(self.conn, "cluster", parents={"person_id": "person"}):
            await self.conn.execute("UPDATE events SET person_id = %s WHERE cluster_id = %s", (person_id, cluster_id))
            await self.conn.execute("UPDATE person_clusters SET status = 'reviewed' WHERE id = %s", (cluster_id,))
        return await self.get(cluster_id)

    async def matching_pairs(self, limit: int) -> list[tuple[UUID, UUID]]:
        """Pairs of ACTIVE clusters (a.id < b.id) whose representative faces match within their model
        version's threshold (cosine similarity >= model_versions.match_threshold); at most `limit`."""
        cur = await self.conn.execute(_MATCHING_PAIRS, (limit,))
        return [(row["a"], row["b"]) for row in await cur.fetchall()]

    async def active_by_size(self, cluster_ids: Iterable[UUID]) -> list[tuple[UUID, UUID | None]]:
        """(cluster id, the person holding its representative face) of those still ACTIVE, largest
        first, then the oldest: the first is where a merge goes."""
        cur = await self.conn.execute(
            "SELECT c.id, f.person_id FROM person_clusters c"
            " LEFT JOIN face_embeddings f ON f.id = c.representative_embedding_id"
            " WHERE c.id = ANY(%s) AND c.status = 'active' ORDER BY c.sample_count DESC, c.first_seen, c.id",
            (list(cluster_ids),))
        return [(row["id"], row["person_id"]) for row in await cur.fetchall()]

    async def _require_active(self, cluster_ids: list[UUID]) -> None:
        """Locks the clusters for the rest of the transaction, so no concurrent merge sees them ACTIVE."""
        cur = await self.conn.execute("SELECT id, status::text FROM person_clusters WHERE id = ANY(%s) FOR UPDATE",
                                      (cluster_ids,))
        statuses = {row["id"]: row["status"] for row in await cur.fetchall()}
        for cluster_id in cluster_ids:
            if cluster_id not in statuses:
                raise NotFound("cluster", cluster_id)
            if statuses[cluster_id] != "active":
                raise FailedPrecondition(f"cluster {cluster_id} is {statuses[cluster_id]}; only active clusters can "
                                         "be merged or identified")
