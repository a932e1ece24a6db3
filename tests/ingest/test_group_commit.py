"""Group commit: the batches a node has in flight while the previous group commits are stored in one
transaction, each in its own savepoint. A batch that cannot be stored is rejected alone, a resent one
is acked as a duplicate, the rest are stored once and in order, and every ack follows the commit."""

from __future__ import annotations

import asyncio
import uuid

from tests.fixtures.control import database
from tests.ingest.builders import batch, best_face, face_track, person
from tests.storage.builders import count, make_camera
from vigil.api.v1 import ingest_pb2 as pb
from vigil.storage.locks import transaction_lock


async def held_then_sent(ingest, node, app, camera_id, *requests: pb.PublishRequest) -> list[pb.PublishResponse]:
    """Write the first request while the camera's ingest lock is held elsewhere, so that it waits
    for it, and the others behind it: on release they form one group. Returns the acks."""
    call = ingest.Publish(metadata=node)
    async with database(app) as conn:
        await transaction_lock(conn, "vigil.ingest", str(camera_id))
        await call.write(requests[0])
        await asyncio.sleep(0.5)  # its group (itself alone) now waits for the lock
        for request in requests[1:]:
            await call.write(request)
        await asyncio.sleep(1.0)  # the server reads the others into its queue meanwhile
    acks = [await call.read() for _ in requests]
    await call.done_writing()
    return acks


async def transactions_of(app, keys: list[str]) -> dict[str, str]:
    """idempotency key → when the transaction that stored it began (received_at is now(): one value
    per transaction, whereas xmin differs per savepoint)."""
    async with database(app) as conn:
        cur = await conn.execute("SELECT idempotency_key, received_at::text AS tx FROM ingest_batches"
                                 " WHERE idempotency_key = ANY(%s)", (keys,))
        return {row["idempotency_key"]: row["tx"] for row in await cur.fetchall()}


async def test_a_group_rejects_the_invalid_batch_alone_acks_the_resent_one_and_stores_the_rest_once_in_order(
        ingest, node, app, camera, model_version, real_faces):
    key = f"group-{uuid.uuid4().hex}"
    plug = batch(camera.id, [person("early")], sequence=1, key=f"{key}-1")
    walker_starts = batch(camera.id, [person("walker", frame=10, confidence=0.6)], sequence=2, key=f"{key}-2")
    resent = batch(camera.id, [person("early")], sequence=3, key=f"{key}-1")  # the plug again: a lost ack
    unknown_model = best_face(real_faces["biden"], f"no-such-model-{uuid.uuid4().hex[:6]}")
    # fails in recognition, after its person track's event was written: the savepoint takes that back
    invalid = batch(camera.id, [person("ghost"), face_track("ghost-face", unknown_model)], sequence=4,
                    key=f"{key}-4")
    no_camera = batch(uuid.uuid4(), [person("elsewhere")], sequence=5, key=f"{key}-5")
    walker_goes_on = batch(camera.id, [person("walker", pb.TRACK_UPDATE_KIND_UPDATE, second=1, frame=40),
                                       person("runner", second=1, frame=40)], sequence=6, key=f"{key}-6")

    acks = await held_then_sent(ingest, node, app, camera.id, plug, walker_starts, resent, invalid, no_camera,
                                walker_goes_on)

    assert [(a.sequence, a.status, a.duplicate) for a in acks] == [
        (1, pb.PUBLISH_STATUS_ACCEPTED, False), (2, pb.PUBLISH_STATUS_ACCEPTED, False),
        (3, pb.PUBLISH_STATUS_ACCEPTED, True), (4, pb.PUBLISH_STATUS_REJECTED, False),
        (5, pb.PUBLISH_STATUS_REJECTED, False), (6, pb.PUBLISH_STATUS_ACCEPTED, False)]
    assert acks[3].error.startswith("batch.updates[1].best_face.model_version:"), acks[3].error
    assert acks[4].error.startswith("batch.camera_id:"), acks[4].error

    stored = await transactions_of(app, [f"{key}-{i}" for i in range(1, 7)])
    assert sorted(stored) == [f"{key}-1", f"{key}-2", f"{key}-6"]  # nothing of the rejected ones
    assert stored[f"{key}-2"] == stored[f"{key}-6"] != stored[f"{key}-1"]  # one group after the plug

    async with database(app) as conn:
        cur = await conn.execute("SELECT metadata->>'track_id' AS track, frame_number, confidence::float8 AS c"
                                 " FROM events WHERE camera_id = %s ORDER BY metadata->>'track_id'", (camera.id,))
        events = [(row["track"], row["frame_number"], round(row["c"], 3)) for row in await cur.fetchall()]
        mappings = await count(conn, "SELECT count(*) FROM track_events WHERE camera_id = %s", (camera.id,))
    # one event per track, each describing its first observation: batch 2 was stored before batch 6
    assert events == [("early", 0, 0.9), ("runner", 40, 0.9), ("walker", 10, 0.6)]
    assert mappings == 3


async def test_batches_of_one_stream_for_several_cameras_share_a_group(ingest, node, app, camera):
    async with database(app) as conn:
        other = await make_camera(conn, app.secrets)
    key = f"cams-{uuid.uuid4().hex}"
    plug = batch(camera.id, [person("p0")], sequence=1, key=f"{key}-1")
    first = batch(other.id, [person("a")], sequence=2, key=f"{key}-2")
    second = batch(camera.id, [person("b")], sequence=3, key=f"{key}-3")
    acks = await held_then_sent(ingest, node, app, camera.id, plug, first, second)
    assert [(a.sequence, a.status) for a in acks] == [(i, pb.PUBLISH_STATUS_ACCEPTED) for i in (1, 2, 3)]
    stored = await transactions_of(app, [f"{key}-{i}" for i in (1, 2, 3)])
    assert stored[f"{key}-2"] == stored[f"{key}-3"] != stored[f"{key}-1"]
