"""AssignmentSignal: wakes WatchAssignments streams as soon as assignments may have changed.

The reconciler that changed them may run on another replica, so the wake-up travels over Redis
pub/sub; every replica keeps one subscription and fans it out to its local watchers. Watchers
also poll (control.nodes.watch), so a lost message or a Redis outage only delays a change.
"""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis

from vigil.control.background import BackgroundTask
from vigil.logs import get_logger

log = get_logger("vigil.control.nodes.signal")

CHANNEL = "vigil:nodes:assignments"


class AssignmentSignal(BackgroundTask):
    task_name = "node-assignment-signal"

    def __init__(self, redis: aioredis.Redis, *, channel: str = CHANNEL, retry_s: float = 2.0):
        self.redis = redis
        self.channel = channel
        self.retry_s = retry_s
        self._changed = asyncio.Event()

    async def stop(self) -> None:
        await super().stop()
        self._wake_local()  # watchers re-check (and see that the replica is stopping)

    async def publish(self) -> None:
        """Tell every replica's watchers; this replica's at once, even while Redis is down."""
        self._wake_local()
        try:
            await self.redis.publish(self.channel, "changed")
        except (aioredis.RedisError, OSError) as exc:
            log.warning("assignment change not broadcast; other replicas see it at their next poll", error=str(exc))

    async def wait(self, timeout_s: float) -> None:
        """Return at the next change signalled, or after timeout_s."""
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout_s)

    def _wake_local(self) -> None:
        # a fresh event per generation: every current waiter wakes, later ones wait for the next change
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _run(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message and message.get("type") == "message":
                        self._wake_local()
            except (aioredis.RedisError, OSError) as exc:
                log.warning("assignment signal lost its Redis subscription; watchers poll meanwhile",
                            error=str(exc), retry_s=self.retry_s)
                await asyncio.sleep(self.retry_s)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
