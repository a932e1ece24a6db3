"""Fixtures of the operations suite: the real control plane of the test stack (shared with the
other suites), its stubs and keys, a second replica on demand, and fleet-wide database access."""

from __future__ import annotations

import pytest

from tests.control.conftest import api_keys, as_role, channel, control  # noqa: F401 - shared fixtures
from tests.nodes.conftest import database, replica, stream_camera  # noqa: F401 - shared helpers
from vigil.api.v1 import event_pb2_grpc, job_pb2_grpc, media_pb2_grpc, node_pb2_grpc


@pytest.fixture(scope="module")
def app(control):
    return control[1]


@pytest.fixture(scope="module")
def jobs(channel):
    return job_pb2_grpc.JobServiceStub(channel)


@pytest.fixture(scope="module")
def nodes(channel):
    return node_pb2_grpc.NodeServiceStub(channel)


@pytest.fixture(scope="module")
def events(channel):
    return event_pb2_grpc.EventServiceStub(channel)


@pytest.fixture(scope="module")
def media(channel):
    return media_pb2_grpc.MediaServiceStub(channel)
