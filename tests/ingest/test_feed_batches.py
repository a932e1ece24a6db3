"""EventService.SubscribeBatches through the real gRPC API on the real Redis: batches close by count
and by delay, carry exactly what Subscribe delivers item by item, keep each subscriber's filters,
resume across batch boundaries without gap or duplicate, and a slow batched subscriber is cut
off alone."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from vigil.api.v1 import event_pb2 as event_pb
from vigil.control.ingest.fanout import FeedHub
from vigil.control.ingest.feed import FeedFilter, FeedItem
from vigil.control.ingest.subscription import FeedSubscription, SubscriberTooSlow, start_position
from vigil.storage.bus import EventBus


def _payload(track: str, camera_id: uuid.UUID, site_id: uuid.UUID) -> dict:
    return FeedItem("event", event_pb.Event(id=str(uuid.uuid4()), track_id=track, camera_id=str(camera_id),
                                            site_id=str(site_id)),
                    camera_id, site_id, event_type="human_detected", person_ids=()).payload()


async def _publish(app, tracks: list[str], camera_id, site_id, stream: str | None = None) -> None:
    """Append the items at once (one pipeline), as the outbox relay does."""
    async with app.redis.pipeline(transaction=False) as pipe:
        bus = EventBus(pipe)
        for track in tracks:
            await bus.publish(_payload(track, camera_id, site_id), **({"stream": stream} if stream else {}))
        await pipe.execute()


def batches_call(events, metadata, camera_ids, *, max_items=0, max_delay_ms=None, resume_token=""):
    request = event_pb.SubscribeBatchesRequest(
        filter=event_pb.SubscribeRequest(camera_ids=[str(c) for c in camera_ids], resume_token=resume_token),
        max_items=max_items)
    if max_delay_ms is not None:
        request.max_delay_ms = max_delay_ms
    return events.SubscribeBatches(request, metadata=metadata)


async def joined(call) -> event_pb.SubscribeBatchesResponse:
    """The first message: a keepalive (no items) with the token; from here on nothing is missed."""
    hello = await call.read()
    assert not hello.items and hello.resume_token
    return hello


async def read_batches(call, items: int, timeout_s: float = 20.0) -> list[event_pb.SubscribeBatchesResponse]:
    """Batches (keepalives skipped) until they hold `items` items."""
    found: list = []
    async with asyncio.timeout(timeout_s):
        while sum(len(b.items) for b in found) < items:
            batch = await call.read()
            if batch.items:
                found.append(batch)
    return found


def tracks_of(batches) -> list[str]:
    return [item.event.track_id for b in batches for item in b.items]


async def test_batches_close_by_count_or_by_delay_and_hold_what_subscribe_delivers(app, events, camera, as_role):
    viewer = as_role("viewer")
    cam = uuid.uuid4()
    by_count = batches_call(events, viewer, [cam], max_items=10, max_delay_ms=1000)
    by_delay = batches_call(events, viewer, [cam], max_items=1000, max_delay_ms=200)
    single = events.Subscribe(event_pb.SubscribeRequest(camera_ids=[str(cam)]), metadata=viewer)
    await joined(by_count)
    await joined(by_delay)
    assert (await single.read()).WhichOneof("item") == "keepalive"

    tracks = [f"t{n}" for n in range(25)]
    await _publish(app, tracks, cam, camera.site_id)
    counted = await read_batches(by_count, 25)
    delayed = await read_batches(by_delay, 25)
    # 25 items within the delay: two full batches by count, the rest when the delay expired
    assert [len(b.items) for b in counted] == [10, 10, 5]
    assert [len(b.items) for b in delayed] == [25]
    per_item = []
    while len(per_item) < 25:
        response = await single.read()
        if response.WhichOneof("item") == "event":
            per_item.append(response)
    # each item is byte for byte the SubscribeResponse Subscribe sends; a batch's token is its last item's
    for got in (counted, delayed):
        items = [item for b in got for item in b.items]
        assert [i.SerializeToString() for i in items] == [r.SerializeToString() for r in per_item]
        assert all(b.resume_token == b.items[-1].resume_token for b in got)
    assert tracks_of(counted) == tracks
    for call in (by_count, by_delay, single):
        call.cancel()


async def test_each_batched_subscriber_gets_only_what_its_filters_match(app, events, camera, as_role):
    viewer = as_role("viewer")
    a, b = uuid.uuid4(), uuid.uuid4()
    only_a = batches_call(events, viewer, [a], max_delay_ms=100)
    only_b = batches_call(events, viewer, [b], max_delay_ms=100)
    both = batches_call(events, viewer, [a, b], max_delay_ms=100)
    for call in (only_a, only_b, both):
        await joined(call)
    tracks = [f"{'a' if n % 3 else 'b'}{n}" for n in range(30)]
    for track in tracks:  # interleaved, one append each
        await _publish(app, [track], a if track[0] == "a" else b, camera.site_id)
    want_a = [t for t in tracks if t[0] == "a"]
    want_b = [t for t in tracks if t[0] == "b"]
    assert tracks_of(await read_batches(only_a, len(want_a))) == want_a
    assert tracks_of(await read_batches(only_b, len(want_b))) == want_b
    assert tracks_of(await read_batches(both, len(tracks))) == tracks
    for call in (only_a, only_b, both):
        with pytest.raises(TimeoutError):  # nothing more
            async with asyncio.timeout(0.5):
                while not (await call.read()).items:
                    pass
        call.cancel()


async def test_resuming_from_any_token_continues_across_batches_without_gap_or_duplicate(
        app, events, camera, as_role):
    viewer = as_role("viewer")
    cam = uuid.uuid4()
    call = batches_call(events, viewer, [cam], max_items=10, max_delay_ms=1000)
    await joined(call)
    tracks = [f"t{n}" for n in range(35)]
    await _publish(app, tracks, cam, camera.site_id)
    (first,) = await read_batches(call, 10)
    call.cancel()  # gone with batches still queued for it

    # from the last token received (a batch's), with another batch size: exactly the rest
    resumed = batches_call(events, viewer, [cam], max_items=7, max_delay_ms=100,
                           resume_token=first.resume_token)
    assert (await joined(resumed)).resume_token == first.resume_token
    rest = await read_batches(resumed, 25)
    await _publish(app, ["t35", "t36"], cam, camera.site_id)
    rest += await read_batches(resumed, 2)
    assert tracks_of([first, *rest]) == [*tracks, "t35", "t36"]
    assert max(len(b.items) for b in rest) == 7
    resumed.cancel()

    # from an item's token in the middle of a batch: from the item after it
    mid = batches_call(events, viewer, [cam], max_delay_ms=100, resume_token=first.items[4].resume_token)
    await joined(mid)
    assert tracks_of(await read_batches(mid, 32)) == [f"t{n}" for n in range(5, 37)]
    mid.cancel()


async def test_batch_parameters_are_checked(events, camera, as_role):
    viewer = as_role("viewer")
    for fields, name in (({"max_items": 1001}, "max_items"), ({"max_items": -1}, "max_items"),
                         ({"max_delay_ms": 1001}, "max_delay_ms")):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await batches_call(events, viewer, [camera.id], **fields).read()
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad.value.details().startswith(name)


async def test_a_slow_batched_subscriber_is_cut_off_alone(app):
    stream = f"vigil:test-batches:{uuid.uuid4().hex}"
    bus = EventBus(app.redis)
    hub = FeedHub(bus, stream)
    now = await start_position(app.redis, "", stream)

    def subscription(buffer=10_000):
        return FeedSubscription(bus, FeedFilter(), now, watched=None, stream=stream, buffer=buffer,
                                keepalive_s=30, hub=hub)

    readers = [subscription().batches(16, 0.05) for _ in range(3)]
    stalled = subscription(buffer=20).batches(16, 0.05)
    for batches in [*readers, stalled]:
        assert not event_pb.SubscribeBatchesResponse.FromString(await anext(batches)).items
    await asyncio.sleep(0.2)  # all live: a subscriber still catching up is waited for, not cut off
    assert hub.subscribers == 4
    camera, site = uuid.uuid4(), uuid.uuid4()
    await _publish(app, [f"t{n}" for n in range(100)], camera, site, stream=stream)

    async def collect(batches) -> list[str]:
        got: list[str] = []
        async with asyncio.timeout(20):
            while len(got) < 100:
                got += [i.event.track_id for i in event_pb.SubscribeBatchesResponse.FromString(
                    await anext(batches)).items]
        return got

    for got in await asyncio.gather(*(collect(r) for r in readers)):
        assert got == [f"t{n}" for n in range(100)]
    assert hub.subscribers == 3
    with pytest.raises(SubscriberTooSlow):
        await anext(stalled)
    for batches in readers:
        await batches.aclose()
    await app.redis.delete(stream)
