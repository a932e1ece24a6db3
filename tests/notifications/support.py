"""Helpers of the notification tests: policies that keep retries fast, and reading the record."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from tests.notifications.receivers import WAIT_S
from vigil.control.notifications import Backoff
from vigil.storage.db import acting_as
from vigil.storage.repositories.channel_settings import DeliveryPolicy
from vigil.storage.repositories.notifications import Delivery, DeliveryRepository

# Short timeouts and backoff keep retries fast; tests compare order and counts, never durations.
FAST = DeliveryPolicy(timeout_seconds=2, retry_count=2, rate_limit_per_min=10_000)
FAST_BACKOFF = Backoff(base_seconds=0.05, max_seconds=0.2)
FINAL = ("delivered", "gave_up")


@dataclass(frozen=True)
class Scene:
    site_id: uuid.UUID
    site_name: str
    camera_id: uuid.UUID
    person_id: uuid.UUID
    event_id: uuid.UUID


def service(pool):
    """A transaction acting as the control plane's services do (every site)."""
    return acting_as(pool, user_id=None, role="super_admin")


def hook_path() -> str:
    """A path of its own per channel, so that tests sharing the receiver do not see each other."""
    return f"/hooks/{uuid.uuid4().hex}"


async def attempts(pool, alert_id: uuid.UUID, channel_id: uuid.UUID) -> list[Delivery]:
    """Every attempt for the alert through the channel, first to last."""
    async with service(pool) as conn:
        page = await DeliveryRepository(conn).list(alert_ids=[alert_id], channel_ids=[channel_id], page_size=1000)
    return sorted(page.items, key=lambda d: d.attempt)


async def settled(pool, alert_id: uuid.UUID, channel_id: uuid.UUID, statuses=FINAL,
                  attempt: int = 1) -> list[Delivery]:
    """The attempts once the last one, at least the `attempt`th, has one of `statuses` (polls the table)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            found = await attempts(pool, alert_id, channel_id)
            if found and found[-1].attempt >= attempt and found[-1].status in statuses:
                return found
            await asyncio.sleep(0.02)
