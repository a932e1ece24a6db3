"""Fixtures of the ingest and feed suites (the control plane, its stubs and keys, cameras:
tests/fixtures/control.py): the node their batches come from, a model version of the test's own, and
real face embeddings computed by the served face models from real photos."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import cv2
import pytest

from tests.ingest.builders import NODE_ID
from tests.nodes.builders import register_node


@pytest.fixture(scope="session", autouse=True)
async def registered_node(channel, as_role):
    """The batches of these suites come from builders.NODE_ID: registered as a node does at start-up
    (IngestService ends the stream of an unregistered node). It never heartbeats, so it soon goes
    OFFLINE: still registered, which is all ingest asks."""
    return await register_node(channel, as_role("api_client"), NODE_ID, name="ingest-test-node", capacity=1)


@pytest.fixture
def model_version(face_models, db) -> str:
    """A model version of the test's own, with the served embedder's dimension and threshold: its
    gallery holds only what the test enrols, whatever other suites enrolled under the real one."""
    embedder = next(m for m in face_models.values() if m.embedding_dim)
    version = f"{embedder.version_string}-ingest-{uuid.uuid4().hex[:8]}"
    # dated long ago: an API call that names no version keeps resolving to the newest, the served one
    db.execute("INSERT INTO model_versions (version_string, embedding_dim, match_threshold, created_at)"
               " VALUES (%s, %s, %s, now() - interval '10 years')",
               (version, embedder.embedding_dim, embedder.match_threshold))
    return version


@pytest.fixture
def threshold(face_models) -> float:
    return next(m for m in face_models.values() if m.embedding_dim).match_threshold


@dataclass(frozen=True)
class RealFace:
    """A face as a pipeline node would send it: embedding, quality and geometry, normalised."""
    embedding: list[float]
    quality: float
    confidence: float
    box: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...]


@pytest.fixture(scope="session")
def real_faces(analyzer, photos) -> dict[str, RealFace]:
    """obama3 (enrolment uses obama and obama2), biden, and biden_small: the same photo at half size,
    a second sighting of the same stranger."""
    images = {name: cv2.imread(str(photos[name])) for name in ("obama3", "biden")}
    images["biden_small"] = cv2.resize(images["biden"], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    found = {}
    for name, pixels in images.items():
        face = max(analyzer.detect(pixels), key=lambda f: f.box[2] * f.box[3])
        vector = analyzer.embed([analyzer.align(pixels, face.landmarks)])[0]
        found[name] = RealFace(
            embedding=[float(v) for v in vector], quality=round(analyzer.quality(pixels, face).score, 3),
            confidence=float(min(face.score, 1.0)), box=tuple(float(v) for v in face.box_normalized),
            landmarks=tuple((float(x), float(y)) for x, y in face.landmarks_normalized))
    return found
