"""One EventService.Subscribe call: the Redis stream read from a position, filtered, buffered.

The position is a stream entry id, which is also the resume token: the stream is append-only,
so reading strictly after the last token a client received replays exactly what it missed,
on any replica. A reader task fills a bounded buffer that the call drains. Behind the head of
the stream (a replay) the reader waits for room; at the head, a full buffer means the client
cannot keep up with the live feed and the call ends (SubscriberTooSlow) instead of ingest or
memory paying for it. A keepalive carries the position past entries the filters dropped.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone

import redis.asyncio as aioredis

from vigil.api.v1 import event_pb2 as pb
from vigil.control.convert import timestamp
from vigil.control.ingest.feed import FeedFilter, response_of
from vigil.storage.bus import EVENTS_STREAM, BusMessage, EventBus
from vigil.storage.repositories.base import InvalidArgument

BUFFER = 10_000  # undelivered messages (event.proto)
KEEPALIVE_S = 15.0
READ_COUNT = 500
BLOCK_MS = 2_000  # well inside redis-py's default socket timeout (5 s), which a blocked read must not hit
_TOKEN = re.compile(r"^(\d{1,20})-(\d{1,20})$")

Watched = Callable[[set[str]], Awaitable[set[str]]]  # persons named → those on the filter's watchlists


class ResumeTokenExpired(Exception):
    """Entries after the token are gone from the stream (trimmed), or it is no position of this stream."""


class SubscriberTooSlow(Exception):
    """The buffer is full at the head of the stream: the client reads slower than the feed grows."""


def _entry_id(token: str) -> tuple[int, int]:
    match = _TOKEN.match(token)
    if match is None:
        raise InvalidArgument("resume_token", "is not a token of this feed (expected one received from Subscribe)")
    return int(match[1]), int(match[2])


async def start_position(redis: aioredis.Redis, token: str, stream: str = EVENTS_STREAM) -> str:
    """Where a subscription starts: after the token, or after the stream's newest entry (now)."""
    wanted = _entry_id(token) if token else None
    try:
        info = await redis.xinfo_stream(stream)
    except aioredis.ResponseError:  # no stream yet: nothing was ever published
        info = {"length": 0, "entries-added": 0, "last-generated-id": "0-0"}
    newest = info["last-generated-id"]
    if wanted is None:
        return newest
    # trimming removes the oldest entries: some after the token are gone when it precedes the first left
    trimmed = info["entries-added"] > info["length"] and info["length"] > 0
    if wanted > _entry_id(newest) or (trimmed and wanted < _entry_id(info["recorded-first-entry-id"])):
        raise ResumeTokenExpired(
            f"resume_token {token} is older than the feed's retention or not from this feed: backfill with "
            "ListEvents / ListAlerts and subscribe without a token")
    return token


class FeedSubscription:
    def __init__(self, bus: EventBus, feed_filter: FeedFilter, position: str, watched: Watched, *,
                 stream: str = EVENTS_STREAM, buffer: int = BUFFER, keepalive_s: float = KEEPALIVE_S):
        self.bus = bus
        self.filter = feed_filter
        self.position = position  # every matching entry up to here has been queued
        self.delivered = position  # the last token the client was sent
        self.watched = watched
        self.stream = stream
        self.keepalive_s = keepalive_s
        self.queue: asyncio.Queue[BusMessage] = asyncio.Queue(maxsize=buffer)

    async def responses(self) -> AsyncIterator[pb.SubscribeResponse]:
        """A keepalive first (the client holds a token from the start), then the feed."""
        reader = asyncio.create_task(self._read())
        getter: asyncio.Future | None = None
        try:
            yield self._keepalive()
            while True:
                getter = getter or asyncio.ensure_future(self.queue.get())
                done, _ = await asyncio.wait({getter, reader}, timeout=self.keepalive_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    reader.result()  # raises what stopped it
                if getter in done:
                    entry, getter = getter.result(), None
                    self.delivered = entry.id
                    yield response_of(entry.id, entry.payload)
                else:  # nothing queued: every match up to the position was delivered
                    yield self._keepalive()
        finally:
            reader.cancel()
            if getter is not None:
                getter.cancel()

    def _keepalive(self) -> pb.SubscribeResponse:
        self.delivered = self.position
        return pb.SubscribeResponse(resume_token=self.position, keepalive=pb.FeedKeepalive(
            server_time=timestamp(datetime.now(timezone.utc))))

    async def _read(self) -> None:
        while True:
            entries = await self.bus.read({self.stream: self.position}, count=READ_COUNT, block_ms=BLOCK_MS)
            live = len(entries) < READ_COUNT  # fewer than asked for: nothing else is waiting
            if not live:  # replaying: the part still ahead must not have been trimmed meanwhile
                await start_position(self.bus.client, self.position, self.stream)
            watched = await self._watched(entries)
            for entry in entries:
                if self.filter.matches(entry.payload, watched):
                    if live and self.queue.full():
                        raise SubscriberTooSlow()
                    await self.queue.put(entry)
                self.position = entry.id

    async def _watched(self, entries: list[BusMessage]) -> set[str]:
        if not self.filter.watchlist_ids:
            return set()
        named = FeedFilter.persons_named(e.payload for e in entries)
        return await self.watched(named) if named else set()
