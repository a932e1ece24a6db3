"""One EventService.Subscribe or SubscribeBatches call: the feed from a position, filtered, buffered.

The position is a stream entry id, which is also the resume token: the stream is append-only,
so reading strictly after the last token a client received replays exactly what it missed,
on any replica. Live messages come from the replica's one shared reader (fanout.FeedHub), which
reads, decodes and serialises each message once for every subscription. A subscription that
starts behind the hub (a resume token) first replays with its own reads up to where it joined
the hub, waiting for the client as it goes, then takes the hub's messages: no gap, no
duplicate. At the head, a full buffer means the client cannot keep up with the live feed and
the call ends (SubscriberTooSlow) instead of the other subscribers, ingest or memory paying for
it. A keepalive carries the position past entries the filters dropped.

Batches (responses() sends one message per item, batches() several): a batch goes when the inbox
holds max_items or max_delay after its oldest entry arrived, whichever first; it is the
concatenation of the entries' pre-framed item bytes (built once per replica) and its token.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import redis.asyncio as aioredis

from vigil.api.v1 import event_pb2 as pb
from vigil.control.convert import timestamp
from vigil.control.ingest.fanout import FeedEntry, FeedHub, Subscriber, Watched, batch_bytes, entry_key, hub_of
from vigil.control.ingest.feed import FeedFilter
from vigil.errors import InvalidArgument
from vigil.storage.bus import EVENTS_STREAM, EventBus

BUFFER = 10_000  # undelivered messages (event.proto)
KEEPALIVE_S = 15.0
READ_COUNT = 500
_TOKEN = re.compile(r"^(\d{1,20})-(\d{1,20})$")


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


def _time_out(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(False)


class FeedSubscription:
    def __init__(self, bus: EventBus, feed_filter: FeedFilter, position: str, watched: Watched, *,
                 stream: str = EVENTS_STREAM, buffer: int = BUFFER, keepalive_s: float = KEEPALIVE_S,
                 hub: FeedHub | None = None):
        self.bus = bus
        self.filter = feed_filter
        self.position = position  # while catching up: every matching entry up to here has been queued
        self.delivered = position  # the last token the client was sent
        self.watched = watched
        self.stream = stream
        self.keepalive_s = keepalive_s
        self.hub = hub or hub_of(bus, stream)
        self.queue = Subscriber(feed_filter, watched, buffer)  # qsize(), maxsize
        self._room = asyncio.Event()

    async def responses(self) -> AsyncIterator[pb.SubscribeResponse | bytes]:
        """A keepalive first (the client holds a token from the start), then the feed: each
        message as its serialised SubscribeResponse (shared with the other subscriptions), each
        keepalive as a SubscribeResponse."""
        subscriber = self.queue
        loop = asyncio.get_running_loop()
        catch_up = self._start()
        try:
            yield self._keepalive()
            inbox = subscriber.inbox
            while True:
                if subscriber.error is not None:
                    raise subscriber.error
                if subscriber.overflowed:
                    raise SubscriberTooSlow()
                if inbox:
                    entry = inbox.popleft()
                    if not subscriber.live:
                        self._room.set()
                    self.delivered = entry.id
                    yield entry.response()
                    continue
                if catch_up.done():
                    catch_up.result()  # raises what stopped it
                subscriber.waiter = waiter = loop.create_future()
                timer = loop.call_later(self.keepalive_s, _time_out, waiter)
                try:
                    woken = await waiter
                finally:
                    timer.cancel()
                    subscriber.waiter = None
                if not woken:  # nothing queued: every match up to the position was delivered
                    yield self._keepalive()
        finally:
            catch_up.cancel()
            self.hub.leave(subscriber)

    async def batches(self, max_items: int, max_delay_s: float) -> AsyncIterator[bytes]:
        """Serialised SubscribeBatchesResponses: a keepalive (empty, with the token) first, then
        batches of at most max_items, each sent when full or max_delay_s after its oldest entry
        arrived; a keepalive when nothing came for keepalive_s."""
        subscriber = self.queue
        subscriber.wake_at = max_items
        loop = asyncio.get_running_loop()
        catch_up = self._start()
        try:
            yield batch_bytes([], self._idle_position())
            inbox = subscriber.inbox
            while True:
                if subscriber.error is not None:
                    raise subscriber.error
                if subscriber.overflowed:
                    raise SubscriberTooSlow()
                wait_s = self.keepalive_s
                if inbox:
                    wait_s = subscriber.since + max_delay_s - time.monotonic()
                    if len(inbox) >= max_items or wait_s <= 0:
                        batch = [inbox.popleft() for _ in range(min(len(inbox), max_items))]
                        if not subscriber.live:
                            self._room.set()
                        self.delivered = batch[-1].id
                        yield batch_bytes(batch, self.delivered)
                        continue
                elif catch_up.done():
                    catch_up.result()  # raises what stopped it
                subscriber.waiter = waiter = loop.create_future()
                timer = loop.call_later(wait_s, _time_out, waiter)
                try:
                    woken = await waiter
                finally:
                    timer.cancel()
                    subscriber.waiter = None
                if not woken and not inbox:  # nothing queued: every match up to the position was delivered
                    yield batch_bytes([], self._idle_position())
        finally:
            catch_up.cancel()
            self.hub.leave(subscriber)

    def _start(self) -> asyncio.Task:
        catch_up = asyncio.create_task(self._catch_up())
        catch_up.add_done_callback(lambda _: self.queue.wake())
        return catch_up

    def _idle_position(self) -> str:
        """The token of a keepalive: past what the filters dropped once nothing is left to send."""
        if self.queue.live:  # everything the hub dispatched has been sent (the inbox is empty)
            dispatched = self.hub.dispatched
            if dispatched > entry_key(self.position):
                self.position = f"{dispatched[0]}-{dispatched[1]}"
        self.delivered = self.position
        return self.position

    def _keepalive(self) -> pb.SubscribeResponse:
        return pb.SubscribeResponse(resume_token=self._idle_position(), keepalive=pb.FeedKeepalive(
            server_time=timestamp(datetime.now(UTC))))

    async def _catch_up(self) -> None:
        """Own reads from the position up to where the subscription joined the hub, then live."""
        subscriber = self.queue
        while True:
            subscriber.live, subscriber.lost = False, False
            subscriber.pending.clear()
            subscriber.after = entry_key(self.position)
            joined = await self.hub.join(subscriber)
            await self._replay(joined)
            if subscriber.lost:  # the live part overflowed while replaying: replay further, join again
                self.hub.leave(subscriber)
                continue
            position = entry_key(self.position)
            pending = [e for e in subscriber.pending if e.key > position]
            subscriber.pending.clear()
            if len(subscriber.inbox) + len(pending) > subscriber.maxsize:
                raise SubscriberTooSlow()
            subscriber.push(pending)
            subscriber.after = position
            subscriber.live = True
            subscriber.wake()
            return

    async def _replay(self, until: str) -> None:
        """Queue the matching entries after the position up to `until`, as fast as the client reads."""
        end = entry_key(until)
        subscriber = self.queue
        while entry_key(self.position) < end:
            messages = await self.bus.read({self.stream: self.position}, count=READ_COUNT)
            if len(messages) >= READ_COUNT:  # the part still ahead must not have been trimmed meanwhile
                await start_position(self.bus.client, self.position, self.stream)
            entries = [e for e in map(FeedEntry.of, messages) if e.key <= end]
            watched = await self._watched(entries)
            for entry in entries:
                if self.filter.matches(entry.payload, watched):
                    while subscriber.full():
                        self._room.clear()
                        await self._room.wait()
                    subscriber.push([entry])
                self.position = entry.id
            if len(entries) < len(messages) or len(messages) < READ_COUNT:
                break  # nothing else up to `until`
        if entry_key(self.position) < end:
            self.position = until

    async def _watched(self, entries: list[FeedEntry]) -> set[str]:
        if not self.filter.watchlist_ids:
            return set()
        named = FeedFilter.persons_named(e.payload for e in entries)
        return await self.watched(named) if named else set()
