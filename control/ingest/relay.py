"""The outbox relay: feed messages committed in PostgreSQL (feed_outbox) onto the Redis stream.

Ingest never waits for Redis: it commits its rows and their feed messages together, then wakes
the relay. The relay appends the oldest messages to the stream in outbox order and deletes them
in one transaction, under an advisory lock so one replica relays at a time (order across
replicas). Each append is a Lua script that first checks a per-message key in Redis: a message
appended just before a crash (its outbox row not yet deleted) is not appended twice. While Redis
is down the messages wait in the outbox and the relay retries; nothing is lost.

The stream keeps entries at least STREAM_RETENTION (tokens stay valid 24 h, event.proto);
trimming happens as entries are appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta

import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool, PoolClosed

from vigil.control.background import BackgroundTask
from vigil.logs import get_logger
from vigil.storage.bus import EVENTS_STREAM
from vigil.storage.locks import try_transaction_lock
from vigil.storage.repositories.events import FeedOutboxRepository

log = get_logger("vigil.control.ingest.relay")

STREAM_RETENTION = timedelta(hours=25)
# A message sits appended but undeleted only until the next drain by any replica (seconds); an hour
# covers every replica being down meanwhile, at one small key per message.
DEDUP_TTL = timedelta(hours=1)
DEDUP_PREFIX = "vigil:feed:appended:"
_LOCK = "vigil.feed_relay"
# A drain holds the relay lock for every replica. One stuck on a Redis call that never answers (no
# socket timeout on the shared client: the feed's blocking reads need none) gives it up after
# DRAIN_TIMEOUT_S; a replica that stops running mid-drain loses its session after IDLE_HOLD_S idle
# in the transaction. Appended-but-undeleted messages are deduplicated on the next drain.
DRAIN_TIMEOUT_S = 15.0
IDLE_HOLD_S = 5

# KEYS: stream, dedup key. ARGV: payload JSON, retention ms, dedup TTL s. Returns the entry id.
_APPEND = """
local done = redis.call('GET', KEYS[2])
if done then return done end
local now = redis.call('TIME')
local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[2])
local id = redis.call('XADD', KEYS[1], 'MINID', '~', string.format('%.0f', oldest), '*', 'data', ARGV[1])
redis.call('SET', KEYS[2], id, 'EX', tonumber(ARGV[3]))
return id
"""


class FeedRelay(BackgroundTask):
    task_name = "feed-relay"

    def __init__(self, pool: AsyncConnectionPool, redis: aioredis.Redis, *, stream: str = EVENTS_STREAM,
                 batch_size: int = 500, poll_s: float = 1.0, retry_s: float = 5.0):
        self.pool = pool
        self.redis = redis
        self.stream = stream
        self.batch_size = batch_size
        self.poll_s = poll_s  # other replicas' messages are picked up at least this often
        self.retry_s = retry_s
        self._append = redis.register_script(_APPEND)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New messages were committed: relay them now rather than at the next poll."""
        self._wake.set()


    async def drain(self) -> int:
        """Relay everything pending now; the number of messages appended. Returns 0 at once while
        another replica holds the relay lock."""
        moved = 0
        while True:
            async with self.pool.connection() as conn, conn.transaction():
                if not await try_transaction_lock(conn, _LOCK):
                    return moved
                # a replica frozen mid-drain (paused, or its event loop stopped) would hold the lock
                # for every replica: PostgreSQL ends its session once it idles this long
                await conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = '{IDLE_HOLD_S}s'")
                outbox = FeedOutboxRepository(conn)
                pending = await outbox.oldest(self.batch_size)
                if pending:
                    await self._append_all(pending)
                    await outbox.remove([row_id for row_id, _, _ in pending])
            moved += len(pending)
            if len(pending) < self.batch_size:
                return moved

    async def _append_all(self, pending) -> None:
        retention_ms = int(STREAM_RETENTION.total_seconds() * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            for _, message_id, payload in pending:
                await self._append(keys=[self.stream, f"{DEDUP_PREFIX}{message_id}"],
                                   args=[json.dumps(payload), retention_ms, int(DEDUP_TTL.total_seconds())],
                                   client=pipe)
            await pipe.execute()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await asyncio.wait_for(self.drain(), DRAIN_TIMEOUT_S)
            except PoolClosed:  # the control plane is shutting down
                return
            except TimeoutError:
                log.warning("feed relay: a drain took too long and gave the relay lock up; retrying",
                            timeout_s=DRAIN_TIMEOUT_S)
                continue
            except (psycopg.Error, aioredis.RedisError, OSError) as exc:
                log.warning("feed relay: messages stay in the outbox until the next attempt",
                            error=str(exc), retry_s=self.retry_s)
                await asyncio.sleep(self.retry_s)  # wake() is ignored meanwhile: ingest must not hammer a dead Redis
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
