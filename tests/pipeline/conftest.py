"""Fixtures of the pipeline suites: the real control plane of the test stack (shared with the
control and ingest suites) and a database handle for what only the database can show."""

from __future__ import annotations

from contextlib import asynccontextmanager

import pytest

from tests.control.conftest import api_keys, as_role, channel, control  # noqa: F401 - shared fixtures
from vigil.storage.db import acting_as


@pytest.fixture(scope="module")
def app(control):
    return control[1]


@asynccontextmanager
async def database(app):
    """A committed transaction as a fleet-wide service."""
    async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
        yield conn
