"""Fixtures of the node suite: the real control plane (and a second replica with a short node
lease), stubs, keys, cameras with a stream URL, and a fleet made of the test's own nodes."""

from __future__ import annotations

from contextlib import asynccontextmanager

import grpc
import pytest

from tests.control.conftest import api_keys, as_role, channel, control  # noqa: F401 - shared fixtures
from tests.storage.builders import make_camera
from vigil.api.v1 import camera_pb2_grpc, ingest_pb2_grpc, node_pb2_grpc
from vigil.control.app import ControlApp
from vigil.control.server import build_server
from vigil.storage.db import acting_as
from vigil.storage.repositories.sites import CameraRepository

SHORT_LEASE_S = 2.0
SHORT_HEARTBEAT_S = 0.5


@pytest.fixture(scope="module")
def app(control):
    return control[1]


@pytest.fixture(scope="module")
def nodes(channel):
    return node_pb2_grpc.NodeServiceStub(channel)


@pytest.fixture(scope="module")
def cameras(channel):
    return camera_pb2_grpc.CameraServiceStub(channel)


@pytest.fixture(scope="module")
def ingest(channel):
    return ingest_pb2_grpc.IngestServiceStub(channel)


@pytest.fixture(scope="module")
def node_key(as_role):
    """What a pipeline node authenticates with (role api_client)."""
    return as_role("api_client")


@pytest.fixture(scope="module")
def admin(as_role):
    return as_role("admin")


@pytest.fixture
def own_fleet(db):
    """Nodes of earlier tests and suites leave the fleet: each test's streams go only to its own
    nodes. Their records stay (OFFLINE), as a node that stopped would leave them."""
    db.execute("UPDATE pipeline_nodes SET state = 'offline' WHERE state <> 'offline'")


def assignable_count(db) -> int:
    """Cameras any node should run now (other suites' included)."""
    return db.execute("SELECT count(*) FROM cameras WHERE is_active AND rtsp_url IS NOT NULL"
                      " AND btrim(rtsp_url) <> ''").fetchone()[0]


@asynccontextmanager
async def database(app):
    async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
        yield conn


async def stream_camera(app, channel_number: int = 1) -> str:
    """A camera with a stream URL (so it is assignable), on a DVR of its own; its id."""
    async with database(app) as conn:
        camera = await make_camera(conn, app.secrets, channel=channel_number)
        await CameraRepository(conn).update(camera.id, {"rtsp_url": f"rtsp://10.0.0.5/ch{channel_number}"})
    return str(camera.id)


@asynccontextmanager
async def replica(stack, settings, **control):
    """Another control-plane replica on the same stack, with these control settings; (its
    NodeService stub, its app). Stopped (server, then app) at the end of the block."""
    app = ControlApp(settings.model_copy(update={"control": settings.control.model_copy(update=control)}),
                     stack.endpoints)
    await app.start()
    server, port, _ = await build_server(app, "127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            yield node_pb2_grpc.NodeServiceStub(ch), app
    finally:
        await server.stop(grace=None)
        await app.close()


@pytest.fixture(scope="module")
async def short_lease(stack, settings):
    """A second replica whose nodes get a short lease; (NodeService stub, app)."""
    async with replica(stack, settings, node_lease_s=SHORT_LEASE_S,
                       node_heartbeat_interval_s=SHORT_HEARTBEAT_S) as found:
        yield found
