"""Fixtures for the face models: real photos, a prepared model repository, and the test
stack's Triton restarted on it (the session stack starts before any model file exists)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vigil.models.faces import FaceAnalyzer
from vigil.models.prepare import PreparedModel, prepare_repository
from vigil.models.samples import face_photos

REPO_ROOT = Path(__file__).resolve().parents[2]
# Kept between runs (ignored by git with the rest of .vigil/): the sdist is fetched once.
MEDIA_CACHE = REPO_ROOT / ".vigil" / "media" / "face_recognition"


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    return face_photos(MEDIA_CACHE)


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory) -> Path:
    """A copy of triton_models/ (configs only) for this run, so tests never write into the tree."""
    repo = tmp_path_factory.mktemp("triton_models")
    for config in (REPO_ROOT / "triton_models").glob("*/config.pbtxt"):
        (repo / config.parent.name).mkdir()
        shutil.copy(config, repo / config.parent.name / config.name)
    return repo


@pytest.fixture(scope="session")
def prepared_models(model_repository, photos) -> dict[str, PreparedModel]:
    return {p.name: p for p in prepare_repository(model_repository, reference_image=photos["obama"])}


@pytest.fixture(scope="session")
def served_models(stack, settings, model_repository, prepared_models) -> dict[str, PreparedModel]:
    """The test stack's Triton, restarted so that it binds the prepared models."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings.triton, "model_repository", model_repository)
        triton = next(svc for svc in stack.services if svc.name == "triton")
        triton.stop()
        stack.up(migrate=False)
        yield prepared_models


@pytest.fixture(scope="session")
def analyzer(endpoints, served_models) -> FaceAnalyzer:
    with FaceAnalyzer(endpoints) as client:
        client.wait_until_ready(timeout_s=120)
        yield client
