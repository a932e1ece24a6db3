"""Session fixtures: one real embedded stack for the whole test run, on its own ports and
state directory so it never touches a developer's running stack; stopped at the end. The face
models are prepared once and served by that stack's Triton for every suite that needs them."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from vigil.models.faces import FaceAnalyzer
from vigil.models.prepare import PreparedModel, prepare_repository
from vigil.models.samples import face_photos

from vigil.settings import VigilSettings
from vigil.stack import Stack

# Ports of the test stack, apart from a developer's stack; VIGIL_TEST_PORT_OFFSET moves them all
# so that two test runs can share a machine.
PORT_OFFSET = int(os.environ.get("VIGIL_TEST_PORT_OFFSET", "0"))
TEST_PORTS = {
    name: str(port + PORT_OFFSET)
    for name, port in {
        "VIGIL_DATABASE__PORT": 45432,
        "VIGIL_REDIS__PORT": 46379,
        "VIGIL_S3__PORT": 48333,
        "VIGIL_S3__INTERNAL_PORT_BASE": 47400,
        "VIGIL_TRITON__GRPC_PORT": 48001,
        "VIGIL_TRITON__HTTP_PORT": 48000,
        "VIGIL_TRITON__METRICS_PORT": 48002,
    }.items()
}


def make_state_dir(prefix: str) -> Path:
    # not under pytest's 0700 tmp: PostgreSQL runs as the `vigil` service user when we are root
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def settings_for(state_dir: Path, **overrides) -> VigilSettings:
    # scheduled jobs run only when a test runs them (app.jobs.run): device health on its own timer
    # would mark other suites' cameras offline and raise alerts in the middle of their tests
    env = {**TEST_PORTS, "VIGIL_STATE_DIR": str(state_dir), "VIGIL_JOBS__ENABLED": "false"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return VigilSettings(**overrides)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def stack_state_dir() -> Path:
    path = make_state_dir("vigil-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(stack_state_dir: Path) -> VigilSettings:
    return settings_for(stack_state_dir)


@pytest.fixture(scope="session")
def stack(settings: VigilSettings):
    """The running embedded stack (PostgreSQL+pgvector, Valkey, SeaweedFS, PyTriton), migrated."""
    s = Stack(settings)
    try:
        s.up()
        yield s
    finally:
        try:
            s.down()
        finally:  # whatever went wrong above, leave no server behind
            for svc in s.services:
                svc.process.stop(timeout=10)


@pytest.fixture(scope="session")
def endpoints(stack):
    return stack.endpoints


@pytest.fixture
def db(endpoints):
    """A superuser connection in autocommit mode (schema checks, fixtures)."""
    with psycopg.connect(endpoints.database_dsn, autocommit=True) as conn:
        yield conn


# --- face models: real photos, a prepared model repository, Triton restarted on it

REPO_ROOT = Path(__file__).resolve().parents[1]
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
