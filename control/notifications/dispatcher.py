"""Delivers alerts to notification channels in the background, so that a slow or failing channel
never slows ingest nor another channel.

- `submit()` only appends to a bounded in-memory queue and returns at once. A writer task records
  each submission as 'queued' attempts in notification_deliveries. When that queue is full (the
  database is down or far behind) the submission is dropped with a logged warning: everything
  accepted goes to the database, which is the only queue deliveries are started from.
  Callers that must not lose one call DeliveryRepository.enqueue() in the alert's transaction.
- `sweep_due()` claims due attempts from the table (new ones, retries, those a dead replica
  left behind) and starts each as its own task, per channel at most `concurrency_per_channel`
  at a time across all replicas and within the channel's rate limit. Claims are conditional updates, so replicas
  share the table safely and a restart loses nothing. A background loop sweeps after every
  submission and completed attempt, and every `poll_interval` seconds.
- Each attempt runs under the channel's timeout and is recorded: delivered; failed with the
  next attempt queued after an exponential backoff with jitter; or gave_up once the channel's
  retries are spent or the error is permanent (e.g. HTTP 4xx, SMTP 5xx). The first delivery of
  an alert marks it 'sent'.

Delivery is at least once: an attempt whose result could not be recorded is tried again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Self
from uuid import UUID

import aiohttp
import psycopg
from psycopg_pool import AsyncConnectionPool

from vigil.control.ingest.feed import record_status_change
from vigil.control.notifications.channels import Sender, sender_for
from vigil.control.notifications.channels.redaction import redact
from vigil.control.notifications.content import load_notification
from vigil.control.notifications.models import Notification
from vigil.errors import FailedPrecondition, NotFound
from vigil.logs import get_logger
from vigil.storage.crypto import SecretBox
from vigil.storage.db import acting_as
from vigil.storage.repositories.alerts import AlertRepository
from vigil.storage.repositories.base import as_uuid, uuid_list
from vigil.storage.repositories.channel_settings import DeliveryPolicy
from vigil.storage.repositories.notifications import (
    Channel,
    ChannelRepository,
    Delivery,
    DeliveryRepository,
    DeliveryResult,
)

log = get_logger("vigil.notifications")

_WRITE_BATCH = 200  # submissions recorded per transaction
_BACKSTOP_GRACE = 1.0  # seconds beyond a channel's timeout before an attempt is cut off


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 5.0
    max_seconds: float = 900.0

    def delay(self, failed_attempt: int) -> float:
        """Seconds before the attempt after `failed_attempt` (1, 2, ...): doubling each time,
        capped, and spread over its upper half so that failures at one moment retry apart."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** (failed_attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


class NotificationDispatcher:
    def __init__(self, pool: AsyncConnectionPool, secrets: SecretBox, *, queue_size: int = 10_000,
                 concurrency_per_channel: int = 4, poll_interval: float = 1.0, backoff: Backoff = Backoff(),
                 stale_after: float = 600.0, shutdown_grace: float = 5.0):
        """`stale_after`: seconds after which an attempt still 'sending' is presumed lost with its
        dispatcher; longer than the longest channel timeout (5 min)."""
        self.pool = pool
        self.secrets = secrets
        self.concurrency_per_channel = concurrency_per_channel
        self.poll_interval = poll_interval
        self.backoff = backoff
        self.stale_after = stale_after
        self.shutdown_grace = shutdown_grace
        self._submissions: asyncio.Queue[tuple[UUID, list[UUID]]] = asyncio.Queue(maxsize=queue_size)
        self._in_flight: dict[UUID, int] = {}  # channel id -> attempts running here
        self._attempts: set[asyncio.Task] = set()
        self._loops: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._sweeping = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # no connection limit across channels: one channel's hanging requests must not queue the others'
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self._loops = [asyncio.create_task(self._write_submissions(), name="notifications-writer"),
                       asyncio.create_task(self._sweep_loop(), name="notifications-sweeper")]

    async def close(self) -> None:
        """Records what is still submitted, gives running attempts `shutdown_grace` seconds, and
        puts the rest back in the queue for the next dispatcher."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        try:
            await self._record(self._drain_submissions())
        except psycopg.Error:
            log.exception("could not record the last notifications: dropped")
        if self._attempts:
            await asyncio.wait(self._attempts, timeout=self.shutdown_grace)
        for task in self._attempts:
            task.cancel()
        await asyncio.gather(*self._attempts, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    def submit(self, alert_id: UUID | str, channel_ids: Iterable[UUID | str]) -> bool:
        """Queue the alert for its channels; never waits. False when the queue was full and the
        submission was dropped (logged). Ids that are not UUIDs raise InvalidArgument."""
        alert_id, channel_ids = as_uuid("alert_id", alert_id), uuid_list("channel_ids", channel_ids)
        if not channel_ids:
            return True
        try:
            self._submissions.put_nowait((alert_id, channel_ids))
        except asyncio.QueueFull:
            log.warning("notification queue full: submission dropped", alert_id=str(alert_id),
                        channel_ids=[str(c) for c in channel_ids], queue_size=self._submissions.maxsize)
            return False
        return True

    async def sweep_due(self) -> int:
        """Start every due attempt this dispatcher has room for; returns how many it started."""
        if self._session is None or self._session.closed:
            raise RuntimeError("the dispatcher is not running: start() it first")
        async with self._sweeping:
            await self._conclude_stale()
            free = {channel: self.concurrency_per_channel - n for channel, n in self._in_flight.items()}
            async with self._transaction() as conn:
                claimed = await DeliveryRepository(conn).claim_due(
                    free, self.concurrency_per_channel, channel_limit=self.concurrency_per_channel)
            for delivery in claimed:
                self._in_flight[delivery.channel_id] = self._in_flight.get(delivery.channel_id, 0) + 1
                task = asyncio.create_task(self._attempt(delivery), name=f"notification-{delivery.id}")
                self._attempts.add(task)
                task.add_done_callback(self._attempts.discard)
            return len(claimed)

    # ----------------------------------------------------------------------- background loops

    async def _write_submissions(self) -> None:
        while True:
            batch = [await self._submissions.get()]
            batch += self._drain_submissions(_WRITE_BATCH - 1)
            while True:
                try:
                    await self._record(batch)
                    break
                except psycopg.OperationalError as exc:  # the database is away: keep the batch, try again
                    log.warning("could not record notifications; retrying", error=str(exc))
                    await asyncio.sleep(self.poll_interval)
                except Exception:
                    log.exception("could not record notifications: dropped", alert_ids=[str(a) for a, _ in batch])
                    break
            self._wake.set()

    def _drain_submissions(self, limit: int | None = None) -> list[tuple[UUID, list[UUID]]]:
        batch = []
        while not self._submissions.empty() and (limit is None or len(batch) < limit):
            batch.append(self._submissions.get_nowait())
        return batch

    async def _record(self, submissions: list[tuple[UUID, list[UUID]]]) -> None:
        if submissions:
            async with self._transaction() as conn:
                deliveries = DeliveryRepository(conn)
                for alert_id, channel_ids in submissions:
                    await deliveries.enqueue(alert_id, channel_ids)

    async def _sweep_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sweep_due()
            except psycopg.OperationalError as exc:  # the database is away: the next round tries again
                log.warning("notification sweep failed", error=str(exc))
            except Exception:
                log.exception("notification sweep failed")
            with suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()

    # ----------------------------------------------------------------------- attempts

    async def _attempt(self, delivery: Delivery) -> None:
        started = time.monotonic()
        policy = DeliveryPolicy()
        try:
            try:
                channel, secret, notification = await self._prepare(delivery)
            except psycopg.OperationalError as exc:  # the database is away
                result = DeliveryResult.failure(f"could not prepare the notification: {exc}", retryable=True)
            except Exception as exc:  # noqa: BLE001 - e.g. a secret that no longer decrypts (key rotated): permanent
                result = DeliveryResult.failure(f"could not prepare the notification: {type(exc).__name__}: {exc}",
                                                retryable=False)
            else:
                policy = channel.delivery
                if channel.is_active:
                    result = await self._send(sender_for(channel, secret, self._session), notification,
                                              policy.timeout_seconds, secret)
                else:
                    result = DeliveryResult.failure("channel is inactive", retryable=False)
        except asyncio.CancelledError:
            await self._release(delivery)
            raise
        finally:
            self._in_flight[delivery.channel_id] -= 1
            if not self._in_flight[delivery.channel_id]:
                del self._in_flight[delivery.channel_id]
            self._wake.set()
        await self._conclude(delivery, policy, result, int((time.monotonic() - started) * 1000))

    async def _prepare(self, delivery: Delivery) -> tuple[Channel, str | None, Notification]:
        async with self._transaction() as conn:
            channels = ChannelRepository(conn, self.secrets)
            channel = await channels.get(delivery.channel_id)
            return channel, await channels.secret(channel), await load_notification(conn, delivery.alert_id)

    @staticmethod
    async def _send(sender: Sender, notification: Notification, timeout: float, secret: str | None) -> DeliveryResult:
        """The senders keep to the timeout themselves (and say what timed out); this bounds
        anything they overlook, a moment later so that theirs comes first."""
        try:
            async with asyncio.timeout(timeout + _BACKSTOP_GRACE):
                return await sender.send(notification)
        except TimeoutError:
            return DeliveryResult.failure(f"no result within {timeout:g} s", retryable=True)
        except Exception as exc:  # a sender's bug must not end the dispatcher; the attempt failed
            log.exception("notification sender failed", sender=type(sender).__name__)
            return DeliveryResult.failure(redact(f"{type(exc).__name__}: {exc}", [secret]), retryable=True)

    async def _conclude(self, delivery: Delivery, policy: DeliveryPolicy, result: DeliveryResult,
                        latency_ms: int) -> None:
        retry_in = None
        if not result.delivered and result.retryable and delivery.attempt <= policy.retry_count:
            retry_in = self.backoff.delay(delivery.attempt)
        try:
            async with self._transaction() as conn:
                finished = await DeliveryRepository(conn).finish(delivery, result, latency_ms, retry_in)
                if finished is not None and result.delivered:
                    await _mark_sent(conn, delivery.alert_id)
        except (psycopg.Error, OSError) as exc:  # left 'sending': concluded as stale later, sent again
            log.warning("could not record a notification attempt", delivery_id=str(delivery.id), error=str(exc))
        if not result.delivered:
            log.info("notification attempt failed", alert_id=str(delivery.alert_id),
                     channel_id=str(delivery.channel_id), attempt=delivery.attempt, error=result.error,
                     retry_in=retry_in)

    async def _conclude_stale(self) -> None:
        async with self._transaction() as conn:
            stale = await DeliveryRepository(conn).stale(self.stale_after)
        for delivery in stale:
            try:
                async with self._transaction() as conn:
                    policy = (await ChannelRepository(conn, self.secrets).get(delivery.channel_id)).delivery
            except NotFound:  # deleted since, and its attempts with it
                continue
            await self._conclude(delivery, policy, DeliveryResult.failure(
                "interrupted: the attempt's dispatcher stopped before recording a result", retryable=True), 0)

    async def _release(self, delivery: Delivery) -> None:
        with suppress(psycopg.Error, OSError):
            async with self._transaction() as conn:
                await DeliveryRepository(conn).release(delivery)

    def _transaction(self):
        # the dispatcher serves every site: alerts are under row-level security
        return acting_as(self.pool, user_id=None, role="super_admin")


async def _mark_sent(conn: psycopg.AsyncConnection, alert_id: UUID) -> None:
    """The first delivery moves a pending alert to 'sent' (sent_at, and an AlertUpdate on the
    feed); a later one, or an alert an operator has already taken on, changes nothing."""
    try:
        alert, change = await AlertRepository(conn).transition(alert_id, "sent", None)
    except FailedPrecondition:
        return
    await record_status_change(conn, alert, change)
