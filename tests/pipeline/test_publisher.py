"""The node's publisher against the real control plane of the test stack: every batch stored exactly
once through control-plane restarts, node restarts and rejections; the spool on disk in between;
backpressure instead of unbounded memory."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import timestamp_pb2

from tests.fixtures.control import database
from tests.storage.builders import count, make_camera
from vigil.api.v1 import common_pb2, node_pb2, node_pb2_grpc
from vigil.api.v1 import ingest_pb2 as pb
from vigil.control.server import build_server
from vigil.pipeline.publisher import Publisher

KINDS = (pb.TRACK_UPDATE_KIND_START, pb.TRACK_UPDATE_KIND_UPDATE, pb.TRACK_UPDATE_KIND_END)


# --- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def register(channel, metadata, node_id: uuid.UUID) -> None:
    """As the node agent does at start-up: IngestService ends the stream of an unregistered node."""
    await node_pb2_grpc.NodeServiceStub(channel).RegisterNode(node_pb2.RegisterNodeRequest(node=node_pb2.Node(
        id=str(node_id), name=f"publisher-test-{str(node_id)[:8]}", backend=node_pb2.NODE_BACKEND_PORTABLE,
        capacity_streams=4, embedding_model_version="publisher-test")), metadata=metadata)


class Feed:
    """Batches as a node's tracker emits them, round-robin over cameras: on each camera, track k is
    START in its camera's batch 3k, UPDATE in 3k+1 and END in 3k+2, so a camera with n batches
    makes ceil(n / 3) tracks, one event each."""

    def __init__(self, camera_ids, node_id: uuid.UUID):
        self.camera_ids = [str(c) for c in camera_ids]
        self.epoch = uuid.uuid4().hex[:8]
        self.node_id = node_id
        self.per_camera = dict.fromkeys(self.camera_ids, 0)
        self.t0 = datetime.now(UTC)
        self.made = 0

    def next(self, camera_id: str | None = None) -> pb.TrackBatch:
        camera = camera_id or self.camera_ids[self.made % len(self.camera_ids)]
        self.made += 1
        j = self.per_camera.get(camera, 0)
        self.per_camera[camera] = j + 1
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(self.t0 + timedelta(milliseconds=100 * j))
        update = pb.TrackUpdate(
            track_id=f"{self.epoch}-{j // 3}", kind=KINDS[j % 3], object_class=pb.OBJECT_CLASS_PERSON,
            box=common_pb2.BoundingBox(x=0.1 + 0.001 * (j % 100), y=0.2, width=0.2, height=0.5),
            confidence=0.9, frame_number=j * 5, capture_time=ts)
        return pb.TrackBatch(camera_id=camera, idempotency_key=f"{self.node_id}:{camera}:{self.epoch}:{j}",
                             frame_width=1920, frame_height=1080, updates=[update])

    def tracks(self, camera_id: str) -> int:
        return -(-self.per_camera[camera_id] // 3)


async def stored(app, query: str, params=()) -> int:
    async with database(app) as conn:
        return await count(conn, query, params)


async def stored_sequences(app, node_id) -> list[int]:
    """The node's stored batches' sequences in the order the control plane stored them."""
    async with database(app) as conn:
        cur = await conn.execute("SELECT sequence FROM ingest_batches WHERE node_id = %s"
                                 " ORDER BY received_at, sequence", (node_id,))
        return [row["sequence"] for row in await cur.fetchall()]


async def assert_stored_once(app, feed: Feed, node_id, expected_batches: int) -> None:
    """Every batch stored once, and one event per track: no loss, no duplicate."""
    assert await stored(app, "SELECT count(*) FROM ingest_batches WHERE node_id = %s", (node_id,)) \
        == expected_batches
    assert await stored(app, "SELECT count(DISTINCT idempotency_key) FROM ingest_batches WHERE node_id = %s",
                        (node_id,)) == expected_batches
    for camera in feed.camera_ids:
        tracks = feed.tracks(camera)
        assert await stored(app, "SELECT count(*) FROM events WHERE camera_id = %s", (camera,)) == tracks
        assert await stored(app, "SELECT count(DISTINCT track_id) FROM track_events WHERE camera_id = %s"
                                 " AND kind = 'human'", (camera,)) == tracks


async def wait_until(predicate, timeout: float = 30.0, interval: float = 0.02) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(interval)


# --- fixtures


@pytest.fixture
def node_key(as_role):
    return as_role("api_client")


@pytest.fixture
def api_key(api_keys):
    return api_keys["api_client"]


@pytest.fixture
async def node_id(channel, node_key) -> uuid.UUID:
    node = uuid.uuid4()
    await register(channel, node_key, node)
    return node


@pytest.fixture
async def cameras(app):
    async def make(n: int) -> list[str]:
        async with database(app) as conn:
            return [str((await make_camera(conn, app.secrets, channel=i + 1)).id) for i in range(n)]
    return make


@pytest.fixture
async def publisher(tmp_path, api_key, node_id, control):
    """A factory of publishers of the test's node; whatever a test leaves open is closed after it."""
    made = []

    def make(*, target: str | None = None, spool_dir=None, key: str | None = None, **options) -> Publisher:
        p = Publisher(target=target or control[0], api_key=key or api_key, node_id=node_id,
                      spool_dir=spool_dir or tmp_path / "spool", **options)
        made.append(p)
        return p

    yield make
    for p in made:
        await p.close(timeout=1)


# --- tests


async def test_every_batch_is_stored_exactly_once(app, publisher, node_id, cameras):
    feed = Feed(await cameras(3), node_id)
    pub = publisher()
    await pub.start()
    n = 300
    started = time.perf_counter()
    sequences = []
    for _ in range(n):
        batch = feed.next()
        await pub.publish(batch)
        sequences.append(batch.sequence)
    assert await pub.flush(timeout=120)
    elapsed = time.perf_counter() - started
    print(f"\npublished and acked {n} batches in {elapsed:.2f}s: {n / elapsed:.0f} batches/s")

    assert sequences == sorted(sequences) and len(set(sequences)) == n and sequences[0] >= 1
    await assert_stored_once(app, feed, node_id, n)
    assert await stored_sequences(app, node_id) == sequences  # stored in publication order
    s = pub.stats()
    assert (s.sent, s.accepted, s.duplicates, s.rejected, s.retried, s.reconnects) == (n, n, 0, 0, 0, 0)
    assert (s.queue_depth, s.unacked, s.spooled_batches, s.connected) == (0, 0, 0, True)


async def test_control_plane_restarted_mid_stream_loses_and_duplicates_nothing(
        app, publisher, node_id, cameras):
    port = free_port()
    address = f"127.0.0.1:{port}"
    server, _, _ = await build_server(app, address)
    await server.start()
    feed = Feed(await cameras(2), node_id)
    pub = publisher(target=address, reconnect_backoff=(0.05, 0.5))
    await pub.start()
    n = 400
    peak = {"spooled": 0}
    down, back = asyncio.Event(), asyncio.Event()

    async def produce():
        # the outage falls mid-stream whatever the machine's speed: the third quarter is published
        # while the control plane is down, the last once it is back
        for i in range(n):
            if i == n // 2:
                await down.wait()
            if i == 3 * n // 4:
                await back.wait()
            await pub.publish(feed.next())
            await asyncio.sleep(0.01)
            s = pub.stats()
            peak["spooled"] = max(peak["spooled"], s.spooled_batches)

    producer = asyncio.create_task(produce())
    try:
        await wait_until(lambda: pub.stats().accepted >= 100)
        await server.stop(grace=None)  # the replica dies with batches in flight
        down.set()
        await wait_until(lambda: pub.stats().spooled_batches >= 50 and pub.stats().reconnects > 0)
        outage = pub.stats()
        assert not outage.connected and outage.reconnects > 0 and outage.spooled_batches > 0
        server, _, _ = await build_server(app, address)  # a new replica on the same address
        await server.start()
        back.set()
        await producer
        assert await pub.flush(timeout=120)
    finally:
        producer.cancel()
        await server.stop(grace=None)

    await assert_stored_once(app, feed, node_id, n)
    sequences = await stored_sequences(app, node_id)
    assert sequences == sorted(sequences)  # the spool was replayed in order, before newer batches
    s = pub.stats()
    assert (s.spooled_batches, s.queue_depth, s.unacked, s.rejected) == (0, 0, 0, 0)
    # every batch acked once; a batch stored just before the server stopped loses its ack, is
    # resent and acked as a duplicate (stored once all the same, checked above)
    assert s.accepted == n and s.duplicates <= 1 + s.reconnects
    assert peak["spooled"] > 0 and s.reconnects > 0
    assert s.spooled_bytes < 64 * 1024  # drained: the file gave its pages back


async def test_a_restarted_node_replays_its_spool_then_goes_on(app, publisher, node_id, cameras, tmp_path, control):
    feed = Feed(await cameras(2), node_id)
    spool_dir = tmp_path / "node-spool"
    down = f"127.0.0.1:{free_port()}"  # nothing listens: the control plane is down
    first = publisher(target=down, spool_dir=spool_dir, queue_size=8, reconnect_backoff=(0.05, 0.2))
    await first.start()
    before = []
    for _ in range(40):
        batch = feed.next()
        await first.publish(batch)
        before.append(batch.sequence)
    assert not await first.flush(timeout=0.3)
    await first.close(timeout=1)
    assert first.stats().spooled_batches == 40  # all on disk, none in memory
    assert first.stats().spooled_bytes > 40 * 100

    second = publisher(spool_dir=spool_dir)  # the same node restarted, control plane back
    await second.start()
    assert second.stats().spooled_batches == 40
    after = []
    for _ in range(20):
        batch = feed.next()
        await second.publish(batch)
        after.append(batch.sequence)
    assert await second.flush(timeout=60)

    assert min(after) > max(before)  # the counter survived the restart
    await assert_stored_once(app, feed, node_id, 60)
    assert await stored_sequences(app, node_id) == before + after  # the spool first, in order
    assert second.stats().spooled_batches == 0


async def test_flush_after_a_restart_covers_the_previous_runs_spool(app, publisher, node_id, cameras, tmp_path):
    feed = Feed(await cameras(1), node_id)
    first = publisher(target=f"127.0.0.1:{free_port()}", spool_dir=tmp_path / "s", reconnect_backoff=(0.05, 0.2))
    await first.start()
    for _ in range(10):
        await first.publish(feed.next())
    await first.close(timeout=0.5)

    second = publisher(spool_dir=tmp_path / "s")
    await second.start()
    assert await second.flush(timeout=60)  # nothing published in this run: the spool is what it waits for
    assert second.stats().spooled_batches == 0
    await assert_stored_once(app, feed, node_id, 10)


async def test_publish_never_blocks_on_a_dead_control_plane(publisher, node_id, cameras):
    feed = Feed(await cameras(1), node_id)
    pub = publisher(target=f"127.0.0.1:{free_port()}", queue_size=4, reconnect_backoff=(0.05, 0.2))
    await pub.start()
    async with asyncio.timeout(30):  # the spool takes what the queue cannot
        for _ in range(200):
            await pub.publish(feed.next())
            assert pub.stats().queue_depth <= 4
    await pub.close(timeout=1)
    s = pub.stats()
    assert s.spooled_batches == 200 and s.accepted == 0 and not s.connected


async def test_a_slow_control_plane_makes_publish_wait(app, publisher, node_id, cameras, db):
    (camera,) = await cameras(1)
    feed = Feed([camera], node_id)
    pub = publisher(queue_size=4, max_in_flight=8)
    await pub.start()
    await wait_until(lambda: pub.stats().connected)  # before that, a full queue spills to the spool
    # ingest takes this camera's advisory lock per batch: holding it stalls the real control plane
    db.execute("SELECT pg_advisory_lock(hashtext('vigil.ingest'), hashtext(%s))", (camera,))
    published = 0

    async def produce():
        nonlocal published
        for _ in range(40):
            await pub.publish(feed.next())
            published += 1

    producer = asyncio.create_task(produce())
    try:
        await wait_until(lambda: pub.stats().unacked == 8 and pub.stats().queue_depth == 4)
        await asyncio.sleep(0.5)
        s = pub.stats()
        assert not producer.done() and published == 12  # waiting, not buffering
        assert (s.unacked, s.queue_depth, s.spooled_batches) == (8, 4, 0)
    except BaseException:
        producer.cancel()
        raise
    finally:
        db.execute("SELECT pg_advisory_unlock(hashtext('vigil.ingest'), hashtext(%s))", (camera,))
    async with asyncio.timeout(60):
        while not producer.done():
            assert pub.stats().queue_depth <= 4 and pub.stats().unacked <= 8
            await asyncio.sleep(0.01)
    await producer
    assert await pub.flush(timeout=60)
    await assert_stored_once(app, feed, node_id, 40)


async def test_a_rejected_batch_is_dropped_and_later_batches_go_on(app, publisher, node_id, cameras):
    feed = Feed(await cameras(1), node_id)
    pub = publisher()
    await pub.start()
    for _ in range(5):
        await pub.publish(feed.next())
    unknown = str(uuid.uuid4())
    bad = pb.TrackBatch(camera_id=unknown, idempotency_key=f"{node_id}:{unknown}:1", frame_width=1920,
                        frame_height=1080, updates=[feed.next().updates[0]])
    feed.per_camera[feed.camera_ids[0]] -= 1  # that update went to the unknown camera
    await pub.publish(bad)
    for _ in range(7):
        await pub.publish(feed.next())
    assert await pub.flush(timeout=60)

    s = pub.stats()
    assert (s.sent, s.accepted, s.rejected, s.retried, s.spooled_batches) == (13, 12, 1, 0, 0)
    await asyncio.sleep(0.3)
    assert pub.stats().sent == 13  # never resent
    await assert_stored_once(app, feed, node_id, 12)
    assert await stored(app, "SELECT count(*) FROM ingest_batches WHERE camera_id = %s", (unknown,)) == 0


async def test_an_unregistered_node_registers_through_the_callback(app, publisher, channel, node_key, cameras,
                                                                   tmp_path, api_key, control):
    node = uuid.uuid4()  # not registered yet
    calls = []

    async def on_unregistered():
        calls.append(time.monotonic())
        await register(channel, node_key, node)

    feed = Feed(await cameras(1), node)
    pub = Publisher(target=control[0], api_key=api_key, node_id=node, spool_dir=tmp_path / "unregistered",
                    reconnect_backoff=(0.05, 0.2), on_unregistered=on_unregistered)
    await pub.start()
    try:
        for _ in range(10):
            await pub.publish(feed.next())
        assert await pub.flush(timeout=60)
    finally:
        await pub.close(timeout=2)
    assert len(calls) == 1 and pub.stats().reconnects >= 1
    await assert_stored_once(app, feed, node, 10)


async def test_a_refused_api_key_spools_and_never_raises(publisher, node_id, cameras):
    feed = Feed(await cameras(1), node_id)
    pub = publisher(key="vk_not-a-real-key", reconnect_backoff=(0.05, 0.2))
    await pub.start()
    for _ in range(5):
        await pub.publish(feed.next())
    await wait_until(lambda: pub.stats().reconnects >= 2 and pub.stats().spooled_batches == 5)
    assert not await pub.flush(timeout=0.2)
    await pub.close(timeout=1)
    assert pub.stats().accepted == 0 and pub.stats().spooled_batches == 5


async def test_a_batch_acked_retry_is_resent_before_newer_batches(app, publisher, node_id, cameras, db):
    (camera,) = await cameras(1)
    feed = Feed([camera], node_id)
    pub = publisher(max_in_flight=1, reconnect_backoff=(0.05, 0.2))
    await pub.start()
    await wait_until(lambda: pub.stats().connected)
    db.execute("SELECT pg_advisory_lock(hashtext('vigil.ingest'), hashtext(%s))", (camera,))
    try:
        for _ in range(6):
            await pub.publish(feed.next())
        # the first batch waits for the camera's lock; its database session dies: a transient failure
        await wait_until(lambda: db.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'"
                                            " AND NOT granted").fetchone()[0] == 1)
        db.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        await wait_until(lambda: pub.stats().retried >= 1)
    finally:
        db.execute("SELECT pg_advisory_unlock(hashtext('vigil.ingest'), hashtext(%s))", (camera,))
    assert await pub.flush(timeout=60)

    s = pub.stats()
    assert (s.accepted - s.duplicates, s.rejected, s.spooled_batches) == (6, 0, 0) and s.retried >= 1
    await assert_stored_once(app, feed, node_id, 6)
    sequences = await stored_sequences(app, node_id)
    assert sequences == sorted(sequences)  # the retried batch went out again before the ones behind it
