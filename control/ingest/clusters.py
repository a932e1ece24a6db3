"""Unknown faces into person_clusters: new clusters with their placeholder persons, sample counts,
seen windows and better representatives.

Convention shared with PersonService (MergeClusters, AssignClusterToPerson): a cluster's faces
belong to an unnamed placeholder person (status unknown) holding its representative face. Only
faces that found no enrolled person are stored, and only a cluster's first face and each face
better than its representative, so the gallery grows with clusters, not with sightings.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from vigil.control.ingest.batch import BestFace
from vigil.control.ingest.recognition import NewCluster
from vigil.storage.repositories.clusters import ClusterSightingRepository, HeldCluster
from vigil.storage.repositories.faces import FaceEmbedding, FaceEmbeddingRepository, ModelVersion


@dataclass(frozen=True)
class Sighting:
    """A face track's face put into a cluster."""
    face: BestFace
    cluster: HeldCluster | NewCluster
    joins: bool  # the track was not counted in this cluster before


@dataclass(frozen=True)
class Materialised:
    cluster_id: UUID
    label: str


class UnknownClusters:
    def __init__(self, conn):
        self.conn = conn
        self.clusters = ClusterSightingRepository(conn)
        self.faces = FaceEmbeddingRepository(conn)

    async def apply(self, sightings: list[Sighting], left: list[UUID]) -> dict[NewCluster, Materialised]:
        """Record the sightings; `left` names a cluster once for each track that moved out of it.
        Returns the clusters created for this batch's new ones."""
        created = {}
        for cluster in dict.fromkeys(s.cluster for s in sightings if isinstance(s.cluster, NewCluster)):
            created[cluster] = await self._create(cluster)
        grouped: dict[UUID, list[Sighting]] = defaultdict(list)
        for s in sightings:
            if isinstance(s.cluster, HeldCluster):
                grouped[s.cluster.id].append(s)
        for group in grouped.values():
            await self._grow(group)
        for cluster_id in left:
            await self.clusters.record_sightings(cluster_id, added=-1, first_seen=None, last_seen=None)
        return created

    async def _create(self, cluster: NewCluster) -> Materialised:
        """Its holder, representative face and cluster row in one statement (recognition checked the
        embedding against the model version)."""
        best = max(cluster.faces, key=lambda f: f.quality)
        times = [f.capture_time for f in cluster.faces]
        cluster_id, label = await self.clusters.create_unknown(
            cluster.model.version_string, best.embedding, best.snapshot_key or "",
            face_quality=round(best.quality, 3), confidence=round(best.confidence, 3),
            sample_count=len(cluster.faces), first_seen=min(times), last_seen=max(times))
        return Materialised(cluster_id, label)

    async def _grow(self, group: list[Sighting]) -> None:
        cluster = group[0].cluster
        times: list[datetime] = [s.face.capture_time for s in group]
        await self.clusters.record_sightings(cluster.id, added=sum(s.joins for s in group),
                                             first_seen=min(times), last_seen=max(times))
        best = max((s.face for s in group), key=lambda f: f.quality)
        if round(best.quality, 3) > cluster.representative_quality:  # compared as stored: a resent face is no better
            face = await self._store(cluster.holder_person_id, best.model_version, best)
            await self.clusters.replace_representative(cluster.id, face.id)

    async def _store(self, holder_id: UUID, model: ModelVersion | str, face: BestFace) -> FaceEmbedding:
        """The face as the holder's primary: the best face so far of the cluster."""
        stored = await self.faces.insert(holder_id, model, face.embedding.tolist(), face.snapshot_key or "",
                                         face_quality=round(face.quality, 3), confidence=round(face.confidence, 3))
        return await self.faces.set_primary(stored.id)
