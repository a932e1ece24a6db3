"""The feed's shared reader (control/ingest/fanout.py) on the real Redis: one read of the stream
serves every subscription of a replica, each gets every message in order, a stalled one is cut
off without delaying the others, and one that resumes from a token joins without gap or
duplicate."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from vigil.api.v1 import event_pb2 as event_pb
from vigil.control.ingest.fanout import FeedHub
from vigil.control.ingest.feed import FeedFilter, FeedItem
from vigil.control.ingest.subscription import FeedSubscription, SubscriberTooSlow, start_position
from vigil.storage.bus import EventBus


def _payload(n: int, camera: uuid.UUID) -> dict:
    return FeedItem("event", event_pb.Event(id=str(uuid.uuid4()), track_id=f"t{n}"), camera, uuid.uuid4(),
                    event_type="human_detected", person_ids=()).payload()


async def _collect(responses, n: int, into: list, timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while len(into) < n:
            response = await anext(responses)
            if isinstance(response, bytes):
                into.append(event_pb.SubscribeResponse.FromString(response))


@pytest.fixture
async def feed(app):
    stream = f"vigil:test-fanout:{uuid.uuid4().hex}"
    bus = EventBus(app.redis)
    hub = FeedHub(bus, stream)
    yield bus, stream, hub
    await app.redis.delete(stream)


async def test_many_subscribers_get_every_message_in_order_and_a_stalled_one_delays_none(app, feed):
    bus, stream, hub = feed
    camera, other = uuid.uuid4(), uuid.uuid4()
    now = await start_position(app.redis, "", stream)

    def subscription(buffer=10_000, **filters):
        return FeedSubscription(bus, FeedFilter(**filters), now, watched=None, stream=stream, buffer=buffer,
                                keepalive_s=30, hub=hub)

    readers = [subscription() for _ in range(30)] + [subscription(camera_ids=frozenset({str(camera)}))]
    stalled = subscription(buffer=5)
    streams = [s.responses() for s in [*readers, stalled]]
    for responses in streams:  # each past its first keepalive: joined
        assert (await anext(responses)).WhichOneof("item") == "keepalive"
    await asyncio.sleep(0.2)
    assert hub.subscribers == 32

    total = 300
    for n in range(total):
        await bus.publish(_payload(n, camera if n % 2 else other), stream=stream)
    received: list[list] = [[] for _ in readers]
    reads_before = hub.reads
    await asyncio.gather(*(_collect(r, total if i < 30 else total // 2, got)
                           for i, (r, got) in enumerate(zip(streams, received))))
    for got in received[:30]:
        assert [m.event.track_id for m in got] == [f"t{n}" for n in range(total)]
        tokens = [tuple(map(int, m.resume_token.split("-"))) for m in got]
        assert tokens == sorted(tokens) and len(set(tokens)) == total
    assert [m.event.track_id for m in received[30]] == [f"t{n}" for n in range(1, total, 2)]
    assert hub.reads - reads_before < total  # batched reads shared by all, not one per subscriber and message
    assert hub.subscribers == 31  # the stalled one was cut off
    with pytest.raises(SubscriberTooSlow):
        await anext(streams[-1])

    # a subscriber that resumes from a token mid-stream catches up itself, then joins: no gap, no duplicate
    token = received[0][99].resume_token
    resumed = FeedSubscription(bus, FeedFilter(), token, watched=None, stream=stream, keepalive_s=30, hub=hub)
    responses = resumed.responses()
    assert (await anext(responses)).resume_token == token
    got: list = []
    await _collect(responses, 200, got)
    for n in range(total, total + 50):
        await bus.publish(_payload(n, camera), stream=stream)
    await _collect(responses, 250, got)
    assert [m.event.track_id for m in got] == [f"t{n}" for n in range(100, total + 50)]

    for r in [*streams[:-1], responses]:
        await r.aclose()
    assert hub.subscribers == 0
