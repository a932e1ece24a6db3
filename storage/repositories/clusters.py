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
from uuid import UUID

import psycopg

from vigil.storage.repositories.base import guarded

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
