"""Unknown-face clusters as the ingest path grows them (reading, merging and identifying them is
faces.ClusterRepository's job).

A cluster's faces belong to one unnamed placeholder person, the holder of its representative
face, so that MergeClusters and AssignClusterToPerson can move them with a person merge. A face
that matches the holder's faces therefore matches the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

import numpy as np
import psycopg

from vigil.storage.repositories.base import guarded, translated

LABEL_DIGITS = 3  # Unknown-001 ... Unknown-999, then Unknown-1000


@dataclass(frozen=True)
class HeldCluster:
    """An active cluster as matching needs it: who holds its faces and how good its representative is."""
    id: UUID
    holder_person_id: UUID
    representative_quality: float


class ClusterSightingRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def held_by(self, person_ids: Iterable[UUID]) -> dict[UUID, HeldCluster]:
        """person_id → the active cluster whose faces that (unnamed) person holds. Named persons hold
        none: a cluster identified as someone stops being matched as a cluster."""
        cur = await self.conn.execute(
            "SELECT DISTINCT ON (f.person_id) c.id, f.person_id, f.face_quality::float8 AS quality"
            " FROM person_clusters c JOIN face_embeddings f ON f.id = c.representative_embedding_id"
            " JOIN persons p ON p.id = f.person_id"
            " WHERE c.status = 'active' AND p.name IS NULL AND f.person_id = ANY(%s)"
            " ORDER BY f.person_id, c.sample_count DESC, c.id", (list(person_ids),))
        return {row["person_id"]: HeldCluster(row["id"], row["person_id"], row["quality"])
                for row in await cur.fetchall()}

    async def create(self, representative_embedding_id: UUID, *, sample_count: int, first_seen: datetime,
                     last_seen: datetime) -> tuple[UUID, str]:
        """A new active cluster labelled Unknown-NNN from a sequence (unique under concurrency)."""
        async with guarded(self.conn, "cluster"):
            cur = await self.conn.execute("SELECT nextval('person_cluster_label_seq') AS n")
            label = f"Unknown-{(await cur.fetchone())['n']:0{LABEL_DIGITS}d}"  # pads, never truncates
            cur = await self.conn.execute(
                "INSERT INTO person_clusters (cluster_label, representative_embedding_id, sample_count,"
                " first_seen, last_seen) VALUES (%s, %s, %s, %s, %s) RETURNING id, cluster_label",
                (label, representative_embedding_id, sample_count, first_seen, last_seen))
            row = await cur.fetchone()
        return row["id"], row["cluster_label"]

    async def create_unknown(self, model_version: str, embedding: np.ndarray, source_image_path: str, *,
                             face_quality: float, confidence: float, sample_count: int, first_seen: datetime,
                             last_seen: datetime) -> tuple[UUID, str]:
        """A stranger's new cluster in one statement: its placeholder person (status unknown), that
        person's primary face (the representative: embedding checked against the model version by
        the caller) and the active cluster labelled Unknown-NNN. (persons.primary_face_embedding_id
        is a deferred foreign key: the person may name the face inserted beside it.)"""
        person_id, face_id = uuid4(), uuid4()
        async with translated("cluster"):  # inside the batch's savepoint
            cur = await self.conn.execute(
                "WITH person AS (INSERT INTO persons (id, status, primary_face_embedding_id)"
                "  VALUES (%(person)s, 'unknown', %(face)s)),"
                " face AS (INSERT INTO face_embeddings (id, person_id, model_version, embedding, embedding_dim,"
                "  source_image_path, face_quality, confidence, is_primary)"
                "  VALUES (%(face)s, %(person)s, %(model)s, %(embedding)s, %(dim)s, %(path)s, %(quality)s,"
                "  %(confidence)s, true)),"
                " label AS (SELECT nextval('person_cluster_label_seq') AS n)"
                " INSERT INTO person_clusters (cluster_label, representative_embedding_id, sample_count, first_seen,"
                "  last_seen) SELECT 'Unknown-' || CASE WHEN n < 10 ^ %(digits)s"
                "  THEN lpad(n::text, %(digits)s, '0') ELSE n::text END, %(face)s, %(samples)s, %(first)s, %(last)s"
                " FROM label RETURNING id, cluster_label",
                {"person": person_id, "face": face_id, "model": model_version, "embedding": embedding,
                 "dim": int(embedding.shape[0]), "path": source_image_path, "quality": face_quality,
                 "confidence": confidence, "digits": LABEL_DIGITS, "samples": sample_count, "first": first_seen,
                 "last": last_seen})
            row = await cur.fetchone()
        return row["id"], row["cluster_label"]

    async def record_sightings(self, cluster_id: UUID, *, added: int, first_seen: datetime | None,
                               last_seen: datetime | None) -> None:
        """`added` more (or, negative, fewer) face tracks; the seen window widens to include the
        times given (LEAST/GREATEST ignore NULL)."""
        async with guarded(self.conn, "cluster"):
            await self.conn.execute(
                "UPDATE person_clusters SET sample_count = GREATEST(sample_count + %s, 0),"
                " first_seen = LEAST(first_seen, %s), last_seen = GREATEST(last_seen, %s) WHERE id = %s",
                (added, first_seen, last_seen, cluster_id))

    async def replace_representative(self, cluster_id: UUID, embedding_id: UUID) -> None:
        async with guarded(self.conn, "cluster"):
            await self.conn.execute("UPDATE person_clusters SET representative_embedding_id = %s WHERE id = %s",
                                    (embedding_id, cluster_id))
