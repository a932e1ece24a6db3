"""Fixtures shared by the repository tests.

Every test runs in one transaction that is rolled back at the end, acting as a super_admin user
through `acting_as` (SET LOCAL ROLE vigil_app, so row-level security and the audit triggers are
live), which keeps tests from seeing each other's rows.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from vigil.storage.crypto import SecretBox
from vigil.storage.db import acting_as, create_pool


@pytest.fixture(scope="module")
async def pool(endpoints):
    pool = create_pool(endpoints.database_dsn, min_size=1, max_size=4, name="repository-tests")
    await pool.open()
    yield pool
    await pool.close()


@pytest.fixture
def actor_id() -> uuid.UUID:
    """The user the test acts as; created inside the test's transaction by `conn`."""
    return uuid.uuid4()


async def _add_user(conn: psycopg.AsyncConnection, user_id: uuid.UUID, role: str) -> None:
    await conn.execute(
        "INSERT INTO users (id, username, email, password_hash, role_id)"
        " SELECT %s, %s, %s, 'not-a-real-hash', id FROM roles WHERE name = %s",
        (user_id, f"repo-test-{user_id.hex[:12]}", f"{user_id.hex[:12]}@repo-test.invalid", role))


@pytest.fixture
async def conn(pool, actor_id) -> AsyncIterator[psycopg.AsyncConnection]:
    """A connection acting as a super_admin (vigil_app role) whose work is rolled back at the end."""
    async with acting_as(pool, user_id=actor_id, role="super_admin", client_ip="192.0.2.10") as conn:
        await _add_user(conn, actor_id, "super_admin")
        yield conn
        raise psycopg.Rollback()  # ends acting_as's transaction without committing anything


@pytest.fixture
async def owner_conn(pool) -> AsyncIterator[psycopg.AsyncConnection]:
    """A connection as the schema owner (may ANALYZE), rolled back at the end."""
    async with pool.connection() as conn, conn.transaction(force_rollback=True):
        yield conn


@pytest.fixture(scope="module")
def secret_box() -> SecretBox:
    return SecretBox(base64.b64encode(os.urandom(32)).decode())
