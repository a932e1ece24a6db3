"""Fixtures of the notification tests.

The dispatcher works in its own transactions, so the alerts and channels it delivers are
committed (and removed again at the end); repository tests that need no dispatcher use `conn`,
a transaction that is rolled back. The session control plane's dispatcher would claim these
modules' attempts from the shared delivery table: it pauses while they run (`paused_notifier`).
Receivers are real servers on 127.0.0.1.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import psycopg
import pytest

from tests.notifications.receivers import HttpReceiver, SmtpReceiver
from tests.notifications.support import FAST, FAST_BACKOFF, Scene, service
from tests.storage.builders import make_camera
from vigil.control.notifications import Notification, NotificationDispatcher
from vigil.storage.crypto import SecretBox
from vigil.storage.db import create_pool
from vigil.storage.repositories.channel_settings import ChannelSettings, DeliveryPolicy
from vigil.storage.repositories.notifications import Channel, ChannelRepository
from vigil.storage.repositories.persons import PersonRepository


@pytest.fixture(scope="module")
async def pool(endpoints, paused_notifier):
    """The suites' own pool; the control plane's dispatcher pauses while they deliver with their own."""
    pool = create_pool(endpoints.database_dsn, min_size=2, max_size=20, name="notification-tests")
    await pool.open()
    yield pool
    await pool.close()


@pytest.fixture
async def conn(pool) -> AsyncIterator[psycopg.AsyncConnection]:
    """A transaction that is rolled back at the end."""
    async with service(pool) as conn:
        yield conn
        raise psycopg.Rollback()


@pytest.fixture(scope="module")
def secret_box() -> SecretBox:
    return SecretBox(base64.b64encode(os.urandom(32)).decode())


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[HttpReceiver]:
    server = HttpReceiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def smtp() -> SmtpReceiver:
    server = SmtpReceiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def notification() -> Notification:
    alert_id = uuid.uuid4()
    return Notification(
        alert_id=alert_id, alert_type="person_recognized", severity="high",
        message="Jane <b>Doe</b> & co seen at {{site_name}} {0} %s", camera_name="Entrance cam",
        created_at=datetime(2026, 3, 1, 22, 15, 3, tzinfo=UTC), location="Main entrance", site_name="HQ",
        person_name="Jane Doe", confidence=0.87, document={"id": str(alert_id), "alertType": "person_recognized"})


# --------------------------------------------------------------------------- committed data


@pytest.fixture(scope="module")
async def scene(pool, secret_box) -> AsyncIterator[Scene]:
    """A site with a camera, a person and a recognition event of 0.87 (committed)."""
    async with service(pool) as conn:
        camera = await make_camera(conn, secret_box, name="Entrance cam")
        await conn.execute("UPDATE cameras SET location = 'Main entrance' WHERE id = %s", (camera.id,))
        person = await PersonRepository(conn).create(name="Jane Doe")
        cur = await conn.execute(
            "INSERT INTO events (camera_id, event_type, person_id, confidence, bounding_box, timestamp)"
            " VALUES (%s, 'person_recognized', %s, 0.87, '{}', now()) RETURNING id", (camera.id, person.id))
        event_id = (await cur.fetchone())["id"]
        cur = await conn.execute("SELECT s.id, s.name FROM sites s JOIN dvrs d ON d.site_id = s.id"
                                 " WHERE d.id = %s", (camera.dvr_id,))
        site = await cur.fetchone()
    yield Scene(site["id"], site["name"], camera.id, person.id, event_id)
    async with pool.connection() as conn:  # the owner: cascades through alerts and their deliveries
        await conn.execute("DELETE FROM sites WHERE id = %s", (site["id"],))
        await conn.execute("DELETE FROM persons WHERE id = %s", (person.id,))


@pytest.fixture
def make_alert(pool, scene) -> Callable[..., Awaitable[uuid.UUID]]:
    async def make(message: str = "Jane Doe seen at the entrance", severity: str = "high") -> uuid.UUID:
        async with service(pool) as conn:
            cur = await conn.execute(
                "INSERT INTO alerts (event_id, camera_id, person_id, alert_type, severity, message)"
                " VALUES (%s, %s, %s, 'person_recognized', %s, %s) RETURNING id",
                (scene.event_id, scene.camera_id, scene.person_id, severity, message))
            return (await cur.fetchone())["id"]

    return make


@pytest.fixture
async def make_channel(pool, secret_box) -> AsyncIterator[Callable[..., Awaitable[Channel]]]:
    created: list[uuid.UUID] = []

    async def make(settings: ChannelSettings, *, secret: str | None = None, delivery: DeliveryPolicy = FAST,
                   is_active: bool = True) -> Channel:
        async with service(pool) as conn:
            channel = await ChannelRepository(conn, secret_box).create(
                f"test {settings.channel_type} {uuid.uuid4().hex[:8]}", settings, secret=secret, delivery=delivery,
                is_active=is_active)
        created.append(channel.id)
        return channel

    yield make
    async with service(pool) as conn:
        await conn.execute("DELETE FROM notification_channels WHERE id = ANY(%s)", (created,))


@pytest.fixture
async def make_dispatcher(pool, secret_box) -> AsyncIterator[Callable[..., Awaitable[NotificationDispatcher]]]:
    started: list[NotificationDispatcher] = []

    async def make(**overrides) -> NotificationDispatcher:
        dispatcher = NotificationDispatcher(pool, secret_box,
                                            **{"poll_interval": 0.05, "backoff": FAST_BACKOFF, **overrides})
        await dispatcher.start()
        started.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in started:
        await dispatcher.close()
