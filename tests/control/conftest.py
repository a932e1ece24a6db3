"""A real control-plane server on the test stack, reached through a real gRPC channel."""

from __future__ import annotations

import grpc
import psycopg
import pytest

from vigil.api_build import build as build_api
from vigil.control.app import ControlApp
from vigil.control.server import build_server
from vigil.storage.db import create_pool
from vigil.storage.repositories.api_keys import ApiKeyRepository

ROLES = ("super_admin", "admin", "operator", "viewer", "api_client")


@pytest.fixture(scope="session")
async def control(stack, settings):
    """(server address, app) of a control plane on an ephemeral port."""
    build_api()
    app = ControlApp(settings, stack.endpoints)
    await app.start()
    server, port, _ = await build_server(app, "127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", app
    await server.stop(grace=None)
    await app.close()


@pytest.fixture(scope="session")
async def api_keys(control, endpoints) -> dict[str, str]:
    """A plaintext API key for each role, generous rate limits."""
    pool = create_pool(endpoints.database_dsn, min_size=1, max_size=2)
    await pool.open()
    keys = {}
    async with pool.connection() as conn:
        for role in ROLES:
            created = await ApiKeyRepository(conn).create(f"test-{role}", role, rate_limit_per_minute=100_000)
            keys[role] = created.plaintext
    await pool.close()
    return keys


@pytest.fixture(scope="session")
async def channel(control):
    address, _ = control
    async with grpc.aio.insecure_channel(address) as ch:
        yield ch


@pytest.fixture(scope="session")
def face_models(analyzer, served_models, endpoints):
    """The face models served by Triton and registered as model versions (as `vigil models prepare` does)."""
    from vigil.models.registry import register_model_version

    with psycopg.connect(endpoints.database_dsn, autocommit=True) as conn:
        for prepared in served_models.values():
            if prepared.embedding_dim:
                register_model_version(conn, prepared)
    return served_models


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture(scope="session")
def as_role(api_keys):
    """metadata for a role: as_role('admin')."""
    return lambda role: bearer(api_keys[role])
