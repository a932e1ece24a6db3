"""Who a batch's faces are: an enrolled person, an existing unknown-face cluster, or a new cluster.

All faces of one model version are searched with ONE k-NN statement (nearest_batch), within that
version's match threshold. Each neighbour belongs to a person; an unnamed person holding an
active cluster's representative face stands for that cluster, any other person is enrolled. An
enrolled person within the threshold wins, else the most similar cluster, where faces of this
batch that started a new cluster count too (two sightings of a stranger in one batch share it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import numpy as np

from vigil.control.ingest.batch import BestFace
from vigil.errors import InvalidArgument, NotFound
from vigil.storage.repositories.clusters import ClusterSightingRepository, HeldCluster
from vigil.storage.repositories.faces import FaceEmbeddingRepository, ModelVersion, ModelVersionRepository

NEIGHBOURS = 10  # enough to see past a stranger's own cluster faces to an enrolled person


@dataclass(frozen=True)
class Recognized:
    person_id: UUID
    face_id: UUID  # the enrolled face it matched
    similarity: float


@dataclass(eq=False)
class NewCluster:
    """A cluster this batch starts: its first face is what later faces of the batch are compared with."""
    model: ModelVersion
    seed: np.ndarray  # unit vector
    faces: list[BestFace] = field(default_factory=list)


@dataclass(frozen=True)
class Unknown:
    cluster: HeldCluster | NewCluster
    similarity: float  # to the cluster's nearest face (existing) or its first face (new)


Identity = Recognized | Unknown


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


async def models_of(conn, faces: list[BestFace]) -> dict[str, ModelVersion]:
    """The faces' model versions, each checked: registered, an embedder with a threshold, and of
    the dimension the face has."""
    repo, models = ModelVersionRepository(conn), {}
    for face in faces:
        model = models.get(face.model_version)
        if model is None:
            try:
                model = models[face.model_version] = await repo.get(face.model_version)
            except NotFound:
                raise InvalidArgument(f"{face.path}.model_version",
                                      f"unknown model version {face.model_version!r}") from None
        if model.embedding_dim is None or model.match_threshold is None:
            raise InvalidArgument(f"{face.path}.model_version",
                                  f"{model.version_string} is not a face embedding model with a match threshold")
        if face.embedding.shape[0] != model.embedding_dim:
            raise InvalidArgument(f"{face.path}.embedding", f"has {face.embedding.shape[0]} values; model version "
                                                           f"{model.version_string} has {model.embedding_dim}")
    return models


class Recognizer:
    async def identify(self, conn, faces: list[BestFace]) -> list[Identity]:
        """One identity per face, in order."""
        models = await models_of(conn, faces)
        neighbours = [[] for _ in faces]
        gallery = FaceEmbeddingRepository(conn)
        for version, model in models.items():
            indices = [i for i, f in enumerate(faces) if f.model_version == version]
            found = await gallery.nearest_batch(model, [faces[i].embedding for i in indices], k=NEIGHBOURS,
                                                max_distance=1.0 - model.match_threshold)
            for i, near in zip(indices, found):
                neighbours[i] = near
        held = await ClusterSightingRepository(conn).held_by({n.person_id for near in neighbours for n in near})
        started: list[NewCluster] = []
        identities = []
        for face, near in zip(faces, neighbours):
            model = models[face.model_version]
            # an enrolled person is named at the gallery's 1:N threshold; clusters match at 1:1
            enrolled = next((n for n in near if n.person_id not in held and n.similarity >= model.identifies_at), None)
            if enrolled is not None:
                identities.append(Recognized(enrolled.person_id, enrolled.embedding_id, enrolled.similarity))
            else:
                identities.append(self._unknown(face, model, [n for n in near if n.person_id in held], held,
                                                started))
        return identities

    @staticmethod
    def _unknown(face: BestFace, model: ModelVersion, near, held: dict[UUID, HeldCluster],
                 started: list[NewCluster]) -> Unknown:
        candidates = [Unknown(held[n.person_id], n.similarity) for n in near[:1]]  # the nearest held cluster
        vector = unit(face.embedding)
        candidates += [Unknown(c, float(vector @ c.seed)) for c in started if c.model is model]
        best = max(candidates, key=lambda u: u.similarity, default=None)
        if best is not None and best.similarity >= model.match_threshold:
            cluster = best.cluster
        else:
            cluster = NewCluster(model, vector)
            started.append(cluster)
            best = Unknown(cluster, 1.0)
        if isinstance(cluster, NewCluster):
            cluster.faces.append(face)
        return best
