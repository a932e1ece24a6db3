"""Recording prepared models in the model_versions table.

Registering an embedder with its embedding_dim makes the database create the version's partial
HNSW index on face_embeddings (trigger trg_model_versions_embedding_index, migration 0012), so a
model version is searchable as soon as it is registered.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from vigil.models.prepare import PreparedModel
from vigil.storage.repositories.faces import MEASURED_DESIGNS, IndexParams


@dataclass(frozen=True)
class RegisteredVersion:
    id: uuid.UUID
    version_string: str
    embedding_dim: int | None
    match_threshold: float | None
    is_production: bool


def register_model_version(conn: psycopg.Connection, prepared: PreparedModel) -> uuid.UUID:
    """Insert the model version, or refresh its dimension, threshold and metrics (other metrics
    keys, production flag and deployment dates are kept). Returns the row id."""
    metrics = {
        "triton_model": prepared.name,
        "source": prepared.source,
        "model_sha256": prepared.model_sha256,
        "max_abs_diff_vs_opencv": prepared.max_abs_diff,
    }
    index = MEASURED_DESIGNS.get(prepared.embedding_dim or 0, IndexParams())
    with conn.transaction():
        # A new version gets the index design measured for its size; a registered one keeps its own
        # (changing it rebuilds the gallery's index: ModelVersionRepository.set_index, deliberately).
        row = conn.execute(
            """
            INSERT INTO model_versions (version_string, embedding_dim, match_threshold, metrics, index_params)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (version_string) DO UPDATE
               SET embedding_dim = EXCLUDED.embedding_dim,
                   match_threshold = EXCLUDED.match_threshold,
                   metrics = model_versions.metrics || EXCLUDED.metrics
            RETURNING id
            """,
            (prepared.version_string, prepared.embedding_dim, prepared.match_threshold, Jsonb(metrics),
             Jsonb(index.to_json())),
        ).fetchone()
    return row[0]


def registered_versions(conn: psycopg.Connection) -> dict[str, RegisteredVersion]:
    rows = conn.execute(
        "SELECT id, version_string, embedding_dim, match_threshold, is_production FROM model_versions"
    ).fetchall()
    return {
        r[1]: RegisteredVersion(r[0], r[1], r[2], float(r[3]) if r[3] is not None else None, r[4]) for r in rows
    }
