"""One reader of the feed stream per replica, fanning decoded messages out to the subscriptions.

Every EventService.Subscribe call used to run its own XREAD and decode, filter and re-serialise
every message, so a replica's cost grew with subscribers × messages (py-spy: three quarters of
the control plane's time in the subscriptions' own XREAD parsing and JSON decoding). The hub
reads the stream once, decodes each entry once (FeedEntry: the payload the filters look at and,
at the first subscriber it matches, the SubscribeResponse serialised once and shared, framed once
more as an item of a SubscribeBatchesResponse for batched subscribers), matches
each entry once per distinct filter and appends it to the matching subscribers' bounded inboxes.

Joining without gap or duplicate: a subscriber registers (synchronously, on the event loop) and
learns the hub's position H at that instant. Everything after H reaches it through the hub;
everything from its own position up to H it reads itself (FeedSubscription), while what the hub
hands it meanwhile waits in `pending`. If `pending` overflows during a long catch-up, it is
dropped and the subscriber leaves, catches up further and joins again. Once live, a subscriber
whose inbox is full when the hub has something for it is cut off (SubscriberTooSlow): the others
never wait for it.

The hub runs while it has subscribers and stops with the last one, or with its replica (stop());
a Redis error (or entries trimmed under it) ends every subscription it serves with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from vigil.control.ingest.feed import FeedFilter, response_of
from vigil.storage.bus import EVENTS_STREAM, BusMessage, EventBus

READ_COUNT = 1_000
BLOCK_MS = 2_000  # well inside redis-py's default socket timeout (5 s), which a blocked read must not hit

Watched = Callable[[set[str]], Awaitable[set[str]]]  # persons named → those on the filter's watchlists


def entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def length_delimited(field: int, data: bytes) -> bytes:
    """A protobuf length-delimited field (string, bytes, embedded message) as it is encoded on the wire."""
    return varint(field << 3 | 2) + varint(len(data)) + data


ITEMS_FIELD = 1  # SubscribeBatchesResponse.items
TOKEN_FIELD = 2  # SubscribeBatchesResponse.resume_token


class FeedEntry:
    """A stream entry decoded once for every subscriber."""

    __slots__ = ("id", "key", "payload", "_response", "_item")

    def __init__(self, entry_id: str, payload: dict[str, Any]):
        self.id = entry_id
        self.key = entry_key(entry_id)
        self.payload = payload
        self._response: bytes | None = None
        self._item: bytes | None = None

    @classmethod
    def of(cls, message: BusMessage) -> FeedEntry:
        return cls(message.id, message.payload)

    def response(self) -> bytes:
        """The serialised SubscribeResponse, built at the first subscriber that gets it."""
        if self._response is None:
            self._response = response_of(self.id, self.payload).SerializeToString()
        return self._response

    def item(self) -> bytes:
        """The response framed as one element of SubscribeBatchesResponse.items: a batch is the
        concatenation of its items' frames and its token field, so no subscriber re-encodes."""
        if self._item is None:
            self._item = length_delimited(ITEMS_FIELD, self.response())
        return self._item


def batch_bytes(entries: list[FeedEntry], token: str) -> bytes:
    """A serialised SubscribeBatchesResponse of the entries (none: a keepalive) and the token."""
    return b"".join([e.item() for e in entries]) + length_delimited(TOKEN_FIELD, token.encode())


class Subscriber:
    """One subscription's place in the hub: its filter and bounded inbox."""

    def __init__(self, feed_filter: FeedFilter, watched: Watched | None, maxsize: int):
        self.filter = feed_filter
        self.watched = watched
        self.maxsize = maxsize
        self.inbox: deque[FeedEntry] = deque()  # what the call will send, in order
        self.since = 0.0  # monotonic time the inbox last went from empty to not empty
        self.wake_at = 1  # wake the call when the inbox holds this many (a batch's size), or gets its first
        self.pending: deque[FeedEntry] = deque()  # from the hub while the subscriber still catches up
        self.after = (0, 0)  # the hub hands on only entries after this (the subscriber's own position)
        self.live = False  # the hub appends to the inbox (else to pending)
        self.attached = False
        self.lost = False  # pending overflowed while catching up: leave and join again
        self.overflowed = False  # the inbox was full at the head: too slow
        self.error: BaseException | None = None
        self.waiter: asyncio.Future | None = None

    def qsize(self) -> int:
        return len(self.inbox)

    def full(self) -> bool:
        return len(self.inbox) >= self.maxsize

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def push(self, entries: list[FeedEntry]) -> None:
        """Append to the inbox and wake the call if it has something to do: a first entry (batched calls
        time their batch from it) or a full batch."""
        if not entries:
            return
        was_empty = not self.inbox
        if was_empty:
            self.since = time.monotonic()
        self.inbox.extend(entries)
        if was_empty or len(self.inbox) >= self.wake_at:
            self.wake()

    def offer(self, entries: list[FeedEntry]) -> None:
        if entries and entries[0].key <= self.after:
            entries = [e for e in entries if e.key > self.after]
        if not entries:
            return
        if self.live:
            if len(self.inbox) + len(entries) > self.maxsize:
                self.overflowed = True
                self.wake()
            else:
                self.push(entries)
        elif not self.lost:
            if len(self.pending) + len(entries) > self.maxsize:
                self.lost = True
                self.pending.clear()
            else:
                self.pending.extend(entries)


class FeedHub:
    def __init__(self, bus: EventBus, stream: str = EVENTS_STREAM, *, read_count: int = READ_COUNT,
                 block_ms: int = BLOCK_MS):
        self.bus = bus
        self.stream = stream
        self.read_count = read_count
        self.block_ms = block_ms
        self.groups: dict[FeedFilter, list[Subscriber]] = {}
        self.position = "0-0"  # entries after this reach whoever joins now through the hub
        self.dispatched = (0, 0)  # every entry up to here is in its subscribers' inboxes
        self.reads = 0  # XREADs done (tests, benchmarks)
        self._task: asyncio.Task | None = None
        self._starting = asyncio.Lock()

    @property
    def subscribers(self) -> int:
        return sum(len(group) for group in self.groups.values())

    async def join(self, subscriber: Subscriber) -> str:
        """Register the subscriber; returns the position H after which the hub hands it entries."""
        if self._task is None:
            async with self._starting:
                if self._task is None:
                    from vigil.control.ingest.subscription import start_position

                    position = await start_position(self.bus.client, "", self.stream)
                    self.position, self.dispatched = position, entry_key(position)
                    self._task = asyncio.create_task(self._run(), name=f"feed-hub {self.stream}")
        # no await from here on: nothing can be read between learning H and being registered
        subscriber.attached = True
        self.groups.setdefault(subscriber.filter, []).append(subscriber)
        return self.position

    async def stop(self) -> None:
        """Stop reading (the replica stops); subscriptions still attached end as if Redis were gone
        (UNAVAILABLE: the client subscribes again, with its last token, to another replica)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._fail(RedisConnectionError("this control-plane replica stopped"))

    def leave(self, subscriber: Subscriber) -> None:
        if not subscriber.attached:
            return
        subscriber.attached = False
        group = self.groups.get(subscriber.filter)
        if group is not None:
            group.remove(subscriber)
            if not group:
                del self.groups[subscriber.filter]
        if not self.groups and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        from vigil.control.ingest.subscription import start_position

        try:
            while True:
                messages = await self.bus.read({self.stream: self.position}, count=self.read_count,
                                               block_ms=self.block_ms)
                self.reads += 1
                if not messages:
                    continue
                if len(messages) >= self.read_count:  # behind the head: nothing after the position was trimmed
                    await start_position(self.bus.client, self.position, self.stream)
                entries = [FeedEntry.of(m) for m in messages]
                groups = [(f, list(members)) for f, members in self.groups.items()]
                self.position = entries[-1].id  # who joins from now on reads this batch itself
                watched = await self._watched(groups, entries)
                for feed_filter, members in groups:
                    seen = watched.get(feed_filter, set())
                    matched = [e for e in entries if feed_filter.matches(e.payload, seen)]
                    if not matched:
                        continue
                    for subscriber in members:
                        if subscriber.attached:
                            subscriber.offer(matched)
                            if subscriber.overflowed:
                                self.leave(subscriber)
                self.dispatched = entries[-1].key
        except Exception as exc:  # noqa: BLE001 - every subscription ends with it (Redis down, trimmed)
            self._fail(exc)

    async def _watched(self, groups, entries: list[FeedEntry]) -> dict[FeedFilter, set[str]]:
        """For the watchlist filters: the persons of the batch on their watchlists, one lookup each."""
        lookups = {f: members[0].watched for f, members in groups if f.watchlist_ids and members}
        if not lookups:
            return {}
        named = FeedFilter.persons_named(e.payload for e in entries)
        if not named:
            return {}
        found = await asyncio.gather(*(watched(named) for watched in lookups.values()))
        return dict(zip(lookups, found))

    def _fail(self, exc: BaseException) -> None:
        for members in self.groups.values():
            for subscriber in members:
                subscriber.attached = False
                subscriber.error = exc
                subscriber.wake()
        self.groups.clear()
        self._task = None


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def hub_of(bus: EventBus, stream: str = EVENTS_STREAM) -> FeedHub:
    """A hub of this Redis client and stream for a subscription made without the replica's own
    (IngestRuntime.hub): tests and tools."""
    loop = asyncio.get_running_loop()
    hubs = _hubs.setdefault(bus.client, {})
    hub_loop, hub = hubs.get(stream, (None, None))
    if hub is None or hub_loop is not loop:
        hub = FeedHub(EventBus(bus.client), stream)
        hubs[stream] = (loop, hub)
    return hub
