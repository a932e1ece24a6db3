"""EventService.Subscribe through the real gRPC API on the real Redis: resume without gaps or
duplicates, one feed across control replicas, server-side filters, slow subscribers, and no
lost message when Redis restarts under ingest."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from psycopg.types.json import Jsonb

from tests.fixtures.control import control_replica, database
from tests.ingest.builders import accepted, batch, best_face, face_track, person, quiet, read_events
from tests.storage.builders import count
from vigil.api.v1 import (
    common_pb2,
    event_pb2_grpc,
    ingest_pb2_grpc,
    person_pb2,
    person_pb2_grpc,
    watchlist_pb2,
    watchlist_pb2_grpc,
)
from vigil.api.v1 import event_pb2 as event_pb
from vigil.api.v1 import ingest_pb2 as pb
from vigil.control.ingest.feed import FeedFilter, FeedItem
from vigil.control.ingest.relay import FeedRelay
from vigil.control.ingest.subscription import FeedSubscription, SubscriberTooSlow, start_position
from vigil.storage.bus import EventBus


def subscribe(events, metadata, camera, **filters):
    return events.Subscribe(event_pb.SubscribeRequest(camera_ids=[str(camera.id)], **filters), metadata=metadata)


async def subscribed(events, metadata, camera, **filters):
    """A Subscribe call past its first keepalive: from here on nothing recorded is missed."""
    call = subscribe(events, metadata, camera, **filters)
    hello = await call.read()
    assert hello.WhichOneof("item") == "keepalive" and hello.resume_token
    return call


@pytest.fixture(scope="module")
async def replica(stack, settings):
    """A second control plane on the same stack; a channel to it."""
    async with control_replica(stack, settings) as (channel, _):
        yield channel


async def test_a_subscriber_that_disconnects_and_resumes_gets_every_event_exactly_once(
        ingest, node, events, camera, as_role):
    viewer = as_role("viewer")
    call = await subscribed(events, viewer, camera)
    await accepted(ingest, node, batch(camera.id, [person(f"a{i}") for i in range(3)]))
    received = await read_events(call, 2)
    call.cancel()  # gone before the third

    await accepted(ingest, node, batch(camera.id, [person(f"b{i}") for i in range(2)], sequence=2))
    resumed = subscribe(events, viewer, camera, resume_token=received[-1].resume_token)
    received += await read_events(resumed, 3)
    assert not await quiet(resumed, 1.0)
    resumed.cancel()

    assert sorted(m.event.track_id for m in received) == ["a0", "a1", "a2", "b0", "b1"]
    positions = [tuple(map(int, m.resume_token.split("-"))) for m in received]
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert all(m.event.camera_id == str(camera.id) and m.event.site_id == str(camera.site_id) for m in received)


async def test_two_control_replicas_share_one_feed(replica, ingest, node, events, camera, as_role):
    viewer = as_role("viewer")
    elsewhere = event_pb2_grpc.EventServiceStub(replica)
    call = await subscribed(elsewhere, viewer, camera)
    await accepted(ingest, node, batch(camera.id, [person("seen-on-a")]))
    (first,) = await read_events(call, 1)
    assert first.event.track_id == "seen-on-a"
    call.cancel()

    # ingest on the second replica, resume on the first with the second's token
    await accepted(ingest_pb2_grpc.IngestServiceStub(replica), node,
                   batch(camera.id, [person("seen-on-b")], sequence=2))
    resumed = subscribe(events, viewer, camera, resume_token=first.resume_token)
    (second,) = await read_events(resumed, 1)
    assert second.event.track_id == "seen-on-b"
    resumed.cancel()


async def test_filters_are_applied_by_the_server(ingest, node, events, channel, admin, camera, model_version,
                                                 photos, real_faces, as_role):
    persons = person_pb2_grpc.PersonServiceStub(channel)
    watched = (await persons.CreatePerson(person_pb2.CreatePersonRequest(person=person_pb2.Person(
        name="Watched", status=common_pb2.PERSON_STATUS_KNOWN)), metadata=admin)).person.id
    await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=watched, model_version=model_version, images=[person_pb2.EnrollImage(
            image=photos["obama"].read_bytes())]), metadata=admin)
    watchlists = watchlist_pb2_grpc.WatchlistServiceStub(channel)
    watchlist = (await watchlists.CreateWatchlist(watchlist_pb2.CreateWatchlistRequest(
        watchlist=watchlist_pb2.Watchlist(name=f"suspects {uuid.uuid4().hex[:6]}",
                                          watch_type=watchlist_pb2.WATCHLIST_TYPE_SUSPECT)), metadata=admin)).watchlist
    await watchlists.AddWatchlistEntry(watchlist_pb2.AddWatchlistEntryRequest(entry=watchlist_pb2.WatchlistEntry(
        watchlist_id=watchlist.id, person_id=watched)), metadata=admin)

    viewer = as_role("viewer")
    humans = await subscribed(events, viewer, camera, event_types=[common_pb2.EVENT_TYPE_HUMAN_DETECTED])
    on_watchlist = await subscribed(events, viewer, camera, watchlist_ids=[watchlist.id])
    by_person = await subscribed(events, viewer, camera, person_ids=[watched])
    activities = await subscribed(events, viewer, camera, kinds=[event_pb.FEED_ITEM_KIND_SUSPICIOUS_ACTIVITY])
    await accepted(ingest, node, batch(camera.id, [
        person("body"), face_track("known", best_face(real_faces["obama3"], model_version)),
        face_track("stranger", best_face(real_faces["biden"], model_version))]))

    (human,) = await read_events(humans, 1)
    (listed,) = await read_events(on_watchlist, 1)
    (named,) = await read_events(by_person, 1)
    assert human.event.track_id == "body"
    assert listed.event.track_id == named.event.track_id == "known" and listed.event.person_id == watched
    for call in (humans, on_watchlist, by_person, activities):
        assert not await quiet(call, 0.5)
        call.cancel()


async def test_resume_tokens_are_checked(events, camera, as_role):
    viewer = as_role("viewer")
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await subscribe(events, viewer, camera, resume_token="yesterday").read()
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert malformed.value.details().startswith("resume_token:")
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await subscribe(events, viewer, camera, resume_token="99999999999999-0").read()
    assert unknown.value.code() == grpc.StatusCode.OUT_OF_RANGE and "ListEvents" in unknown.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as kind:
        await subscribe(events, viewer, camera, kinds=[event_pb.FEED_ITEM_KIND_UNSPECIFIED]).read()
    assert kind.value.code() == grpc.StatusCode.INVALID_ARGUMENT and kind.value.details().startswith("kinds[0]")


def _item() -> FeedItem:
    return FeedItem("event", event_pb.Event(id=str(uuid.uuid4())), uuid.uuid4(), uuid.uuid4(),
                    event_type="human_detected", person_ids=())


async def test_a_subscriber_slower_than_the_live_feed_is_ended_instead_of_buffered_forever(app):
    stream = f"vigil:test-feed:{uuid.uuid4().hex}"
    bus = EventBus(app.redis)
    subscription = FeedSubscription(bus, FeedFilter(), await start_position(app.redis, "", stream),
                                    watched=None, stream=stream, buffer=3, keepalive_s=30)
    responses = subscription.responses()
    assert (await anext(responses)).WhichOneof("item") == "keepalive"
    for _ in range(5):  # the client reads nothing meanwhile
        await bus.publish(_item().payload(), stream=stream)
    await asyncio.sleep(0.5)
    with pytest.raises(SubscriberTooSlow):
        await anext(responses)
    await app.redis.delete(stream)


async def test_ingest_accepts_while_redis_is_down_and_the_feed_catches_up(stack, ingest, node, events, app,
                                                                           camera, as_role):
    viewer = as_role("viewer")
    call = await subscribed(events, viewer, camera)
    publisher = ingest.Publish(metadata=node)  # opened (and authenticated) while Redis is up
    await publisher.write(batch(camera.id, [person("before")], sequence=1))
    assert (await publisher.read()).status == pb.PUBLISH_STATUS_ACCEPTED
    (before,) = await read_events(call, 1)

    valkey = next(s for s in stack.services if s.name == "valkey")
    valkey.stop()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            await read_events(call, 1)
        assert cut.value.code() == grpc.StatusCode.UNAVAILABLE and "resume_token" in cut.value.details()
        await publisher.write(batch(camera.id, [person("during")], sequence=2))
        ack = await publisher.read()
        assert (ack.status, ack.duplicate) == (pb.PUBLISH_STATUS_ACCEPTED, False)
        async with database(app) as conn:
            assert await count(conn, "SELECT count(*) FROM events WHERE camera_id = %s", (camera.id,)) == 2
            assert await count(conn, "SELECT count(*) FROM feed_outbox") >= 1  # waiting for Redis
    finally:
        stack.up(migrate=False)
    await publisher.done_writing()

    resumed = subscribe(events, viewer, camera, resume_token=before.resume_token)
    (during,) = await read_events(resumed, 1, timeout_s=30)
    assert during.event.track_id == "during"
    assert not await quiet(resumed, 1.0)
    resumed.cancel()


async def test_a_message_appended_just_before_a_crash_is_not_appended_twice(app):
    """The relay appends, then deletes the outbox row; a crash in between leaves the row to be
    relayed again, which must not add a second entry."""
    start = await start_position(app.redis, "")
    item, message_id = _item(), uuid.uuid4()

    async def relay_once() -> None:
        async with database(app) as conn:
            await conn.execute("INSERT INTO feed_outbox (message_id, payload) VALUES (%s, %s)",
                               (message_id, Jsonb(item.payload())))
        await FeedRelay(app.pool, app.redis).drain()  # or the replica's own relay gets there first
        async with asyncio.timeout(10):
            async with database(app) as conn:
                while await count(conn, "SELECT count(*) FROM feed_outbox WHERE message_id = %s", (message_id,)):
                    await asyncio.sleep(0.1)

    await relay_once()
    await relay_once()
    entries = await EventBus(app.redis).read({"vigil:events": start}, count=10_000)
    assert sum(e.payload["camera_id"] == str(item.camera_id) for e in entries) == 1
