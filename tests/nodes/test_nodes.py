"""NodeService through a real gRPC channel on the embedded stack: registration, heartbeats,
assignments pushed over WatchAssignments, capacity, lease expiry, drain, delete, and ingest's
refusal of unregistered nodes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from tests.fixtures.control import replica, stream_camera
from tests.ingest.builders import batch, person
from tests.nodes.builders import (
    SHORT_HEARTBEAT_S,
    SHORT_LEASE_S,
    Watch,
    assignable_count,
    heartbeats,
    node_message,
    register_node,
)
from tests.storage.builders import unique
from vigil.api.v1 import camera_pb2 as cam
from vigil.api.v1 import ingest_pb2 as ingest_pb
from vigil.api.v1 import node_pb2 as pb

pytestmark = pytest.mark.usefixtures("own_fleet")


async def refused(call, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value.details()


async def eventually(check, timeout_s: float = 15.0, every_s: float = 0.2):
    """Poll check() (async, returns a truthy value when done) until it holds; its value."""
    async with asyncio.timeout(timeout_s):
        while not (value := await check()):
            await asyncio.sleep(every_s)
    return value


async def camera_ids(nodes, metadata, node_id: str) -> set[str]:
    return set((await nodes.GetNode(pb.GetNodeRequest(id=node_id), metadata=metadata)).node.camera_ids)


@contextlib.asynccontextmanager
async def alive(nodes, metadata, *node_ids: str, interval_s: float = 1.0):
    """The nodes heartbeat while the block runs."""
    tasks = [asyncio.create_task(heartbeats(nodes, metadata, n, interval_s)) for n in node_ids]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


# --------------------------------------------------------------------------- registration


async def test_register_is_idempotent_and_re_registration_revives_offline_keeps_draining(
        channel, nodes, node_key, admin, db):
    node_id = str(uuid.uuid4())
    first = await register_node(channel, node_key, node_id, name="gpu-0", capacity=4)
    assert first.node.id == node_id and first.node.state == pb.NODE_STATE_ACTIVE
    assert first.node.capacity_streams == 4 and first.node.backend == pb.NODE_BACKEND_PORTABLE
    assert first.node.cpu.logical_cores == 2 and first.node.versions["vigil"] == "0.1.0"
    assert first.node.HasField("register_time") and not first.node.HasField("last_heartbeat_time")
    assert first.heartbeat_interval.ToTimedelta().total_seconds() == 2.0
    assert first.lease_duration.ToTimedelta().total_seconds() == 10.0

    again = await register_node(channel, node_key, node_id, name="gpu-0 renamed", capacity=6)
    assert again.node.name == "gpu-0 renamed" and again.node.capacity_streams == 6
    assert db.execute("SELECT count(*) FROM pipeline_nodes WHERE id = %s", (node_id,)).fetchone()[0] == 1

    db.execute("UPDATE pipeline_nodes SET state = 'offline' WHERE id = %s", (node_id,))
    assert (await register_node(channel, node_key, node_id)).node.state == pb.NODE_STATE_ACTIVE

    await nodes.DrainNode(pb.DrainNodeRequest(id=node_id), metadata=admin)
    assert (await register_node(channel, node_key, node_id)).node.state == pb.NODE_STATE_DRAINING
    audited = db.execute("SELECT count(*) FROM audit_logs WHERE action = 'node.register' AND resource_id = %s",
                         (node_id,)).fetchone()[0]
    assert audited == 4


def _bad(**changes) -> pb.RegisterNodeRequest:
    node = node_message()
    for path, value in changes.items():
        if path == "versions":
            node.versions.update(value)
        else:
            setattr(node, path, value)
    return pb.RegisterNodeRequest(node=node)


@pytest.mark.parametrize(("request_", "field"), [
    (pb.RegisterNodeRequest(), "node"),
    (_bad(capacity_streams=0), "node.capacity_streams"),
    (_bad(capacity_streams=10_001), "node.capacity_streams"),
    (_bad(id="not-a-uuid"), "node.id"),
    (_bad(id=""), "node.id"),
    (_bad(name=""), "node.name"),
    (_bad(name="n" * 101), "node.name"),
    (_bad(backend=pb.NODE_BACKEND_UNSPECIFIED), "node.backend"),
    (_bad(embedding_model_version=""), "node.embedding_model_version"),
    (_bad(hostname="h" * 256), "node.hostname"),
    (_bad(versions={"k" * 65: "1"}), "node.versions"),
    (_bad(versions={"vigil": "v" * 129}), "node.versions"),
], ids=lambda v: v if isinstance(v, str) else "")
async def test_bad_registration_names_the_field_and_writes_nothing(nodes, node_key, db, request_, field):
    details = await refused(nodes.RegisterNode(request_, metadata=node_key), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith(field), details
    if request_.node.id:
        assert db.execute("SELECT count(*) FROM pipeline_nodes WHERE id::text = %s",
                          (request_.node.id,)).fetchone()[0] == 0


async def test_roles(nodes, channel, as_role):
    node_id = (await register_node(channel, as_role("api_client"))).node.id
    for role in ("viewer", "operator", "api_client"):
        await nodes.GetNode(pb.GetNodeRequest(id=node_id), metadata=as_role(role))
        await nodes.ListNodes(pb.ListNodesRequest(), metadata=as_role(role))
    for role in ("viewer", "api_client"):
        details = await refused(nodes.DrainNode(pb.DrainNodeRequest(id=node_id), metadata=as_role(role)),
                                grpc.StatusCode.PERMISSION_DENIED)
        assert role in details
    await refused(nodes.RegisterNode(pb.RegisterNodeRequest(node=node_message()), metadata=as_role("viewer")),
                  grpc.StatusCode.PERMISSION_DENIED)
    await nodes.DrainNode(pb.DrainNodeRequest(id=node_id), metadata=as_role("operator"))
    await nodes.ResumeNode(pb.ResumeNodeRequest(id=node_id), metadata=as_role("operator"))


async def test_list_filters_and_pages_by_name(channel, nodes, node_key, admin):
    prefix = unique("list")
    made = [(await register_node(channel, node_key, name=f"{prefix}-{i}", capacity=1)).node.id for i in range(3)]
    await nodes.DrainNode(pb.DrainNodeRequest(id=made[1]), metadata=admin)
    seen, token = [], ""
    while True:
        page = await nodes.ListNodes(pb.ListNodesRequest(page_size=2, page_token=token,
                                                         states=[pb.NODE_STATE_ACTIVE, pb.NODE_STATE_DRAINING]),
                                     metadata=admin)
        seen += [n for n in page.nodes if n.name.startswith(prefix)]
        token = page.next_page_token
        if not token:
            break
    assert [n.name for n in seen] == [f"{prefix}-{i}" for i in range(3)]
    draining = await nodes.ListNodes(pb.ListNodesRequest(states=[pb.NODE_STATE_DRAINING], page_size=1000),
                                     metadata=admin)
    assert made[1] in {n.id for n in draining.nodes} and made[0] not in {n.id for n in draining.nodes}
    await refused(nodes.ListNodes(pb.ListNodesRequest(states=[99]), metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    await refused(nodes.ListNodes(pb.ListNodesRequest(page_token="garbage!"), metadata=admin),
                  grpc.StatusCode.INVALID_ARGUMENT)


# --------------------------------------------------------------------------- heartbeats


async def test_heartbeat_stores_the_figures_and_unknown_nodes_get_not_found(channel, nodes, node_key):
    await refused(nodes.Heartbeat(pb.HeartbeatRequest(node_id=str(uuid.uuid4())), metadata=node_key),
                  grpc.StatusCode.NOT_FOUND)
    node_id = (await register_node(channel, node_key)).node.id
    camera_id = str(uuid.uuid4())
    stats = pb.NodeStats(cpu_utilization=0.25, memory_used_bytes=1 << 30, queue_depths={"decode": 3},
                         gpus=[pb.GpuStats(index=0, utilization=0.5, temperature_celsius=61)], unacked_batches=2)
    stream = pb.StreamStats(camera_id=camera_id, state=pb.STREAM_STATE_RUNNING, decode_fps=25, processed_fps=12.5,
                            dropped_frames=7, active_tracks=3)
    reply = await nodes.Heartbeat(pb.HeartbeatRequest(node_id=node_id, stats=stats, streams=[stream]),
                                  metadata=node_key)
    assert reply.state == pb.NODE_STATE_ACTIVE and reply.heartbeat_interval.seconds == 2
    node = (await nodes.GetNode(pb.GetNodeRequest(id=node_id), metadata=node_key)).node
    assert node.HasField("last_heartbeat_time")
    assert node.stats == stats and list(node.streams) == [stream]

    for request, field in [
        (pb.HeartbeatRequest(node_id=node_id, stats=pb.NodeStats(cpu_utilization=1.5)), "stats.cpu_utilization"),
        (pb.HeartbeatRequest(node_id=node_id, streams=[pb.StreamStats(camera_id="x", state=1)]),
         "streams[0].camera_id"),
        (pb.HeartbeatRequest(node_id=node_id, streams=[pb.StreamStats(camera_id=camera_id)]), "streams[0].state"),
        (pb.HeartbeatRequest(node_id=""), "node_id"),
    ]:
        details = await refused(nodes.Heartbeat(request, metadata=node_key), grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith(field), details
    node = (await nodes.GetNode(pb.GetNodeRequest(id=node_id), metadata=node_key)).node
    assert node.stats == stats  # refused heartbeats wrote nothing

    await register_node(channel, node_key, node_id)  # the node restarted: it runs nothing yet
    node = (await nodes.GetNode(pb.GetNodeRequest(id=node_id), metadata=node_key)).node
    assert list(node.streams) == []


# --------------------------------------------------------------------------- assignments


async def test_watch_of_an_unknown_node_is_not_found(nodes, node_key):
    watch = Watch(nodes, node_key, str(uuid.uuid4()))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await watch.next()
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_watch_sends_a_snapshot_then_adds_updates_and_removes(channel, nodes, cameras, node_key, admin, db):
    node_id = (await register_node(channel, node_key, capacity=10_000)).node.id
    async with alive(nodes, node_key, node_id):
        watch = Watch(nodes, node_key, node_id)
        try:
            first = await watch.next()
            assert first.snapshot
            assert all(c.kind == pb.ASSIGNMENT_CHANGE_KIND_ADD for c in first.changes)
            # the only live node gets every assignable camera (the fleet's, not only this test's)
            everything = assignable_count(db)
            await watch.until(lambda s: len(s) == everything)
            assert set(watch.streams) == await camera_ids(nodes, node_key, node_id)

            site = (await cameras.CreateSite(cam.CreateSiteRequest(site=cam.Site(name=unique("site"))),
                                             metadata=admin)).site
            dvr = (await cameras.CreateDvr(cam.CreateDvrRequest(dvr=cam.Dvr(
                site_id=site.id, name="nvr", ip_address="10.1.2.3",
                credentials=cam.DvrCredentials(username="viewer", password="s3cret!"))), metadata=admin)).dvr
            camera = (await cameras.CreateCamera(cam.CreateCameraRequest(camera=cam.Camera(
                dvr_id=dvr.id, channel_number=3, name="lobby", rtsp_url="rtsp://10.1.2.3:554/ch3", fps=15,
                config=cam.CameraConfig(sensitivity=0.7, min_face_size=64, night_mode=True, codec="h265"))),
                metadata=admin)).camera
            added = (await watch.until(lambda s: camera.id in s))[camera.id]
            assert added.source_url == "rtsp://10.1.2.3:554/ch3" and added.site_id == site.id and added.fps == 15
            assert (added.credentials.username, added.credentials.password) == ("viewer", "s3cret!")
            s = added.settings
            assert s.detection_enabled and s.face_embedding_enabled and s.snapshots_enabled and s.recording_enabled
            assert s.min_detection_confidence == pytest.approx(0.3, abs=1e-6) and s.min_face_size == 64
            assert s.min_face_quality < 0.5 and s.codec == "h265"  # night mode relaxes the quality gate
            assert s.track_update_interval.ToMilliseconds() == 200

            await cameras.UpdateCamera(cam.UpdateCameraRequest(
                camera=cam.Camera(id=camera.id, rtsp_url="rtsp://10.1.2.3:554/ch3-sub"),
                update_mask=field_mask_pb2.FieldMask(paths=["rtsp_url"])), metadata=admin)
            await watch.until(lambda s: s[camera.id].source_url.endswith("ch3-sub"))

            await cameras.UpdateCamera(cam.UpdateCameraRequest(
                camera=cam.Camera(id=camera.id, is_active=False),
                update_mask=field_mask_pb2.FieldMask(paths=["is_active"])), metadata=admin)
            await watch.until(lambda s: camera.id not in s)
            assert watch.changes(camera.id) == [pb.ASSIGNMENT_CHANGE_KIND_ADD, pb.ASSIGNMENT_CHANGE_KIND_UPDATE,
                                                pb.ASSIGNMENT_CHANGE_KIND_REMOVE]
            remove = next(c for r in watch.received for c in r.changes if c.kind == pb.ASSIGNMENT_CHANGE_KIND_REMOVE
                          and c.camera_id == camera.id)
            assert not remove.HasField("assignment")
        finally:
            watch.cancel()


async def test_watch_ends_cleanly_when_the_replica_stops_or_the_node_cancels(stack, settings, node_key, app):
    camera_id = await stream_camera(app)
    async with replica(stack, settings) as (nodes, other):
        node_id = (await register_node_on(nodes, node_key)).node.id
        cancelled = Watch(nodes, node_key, node_id)
        await cancelled.next()
        cancelled.cancel()  # the node goes away: its handler ends, nothing else notices
        watch = Watch(nodes, node_key, node_id)
        await watch.until(lambda s: camera_id in s)
        await other.nodes.stop()  # what `vigil control serve` does first when told to stop
        async with asyncio.timeout(5):
            assert await watch.call.read() == grpc.aio.EOF
            assert await watch.call.code() == grpc.StatusCode.OK


async def test_capacity_is_respected_across_two_nodes(channel, nodes, node_key, app, db):
    for i in range(6):  # more streams than the two nodes hold together, whatever else exists
        await stream_camera(app, i + 1)
    small = (await register_node(channel, node_key, capacity=2)).node.id
    large = (await register_node(channel, node_key, capacity=3)).node.id
    async with alive(nodes, node_key, small, large):
        async def full():
            on_small, on_large = (await camera_ids(nodes, node_key, small)), (await camera_ids(nodes, node_key, large))
            assert len(on_small) <= 2 and len(on_large) <= 3  # never more than capacity, at any moment
            return (on_small, on_large) if (len(on_small), len(on_large)) == (2, 3) else None

        on_small, on_large = await eventually(full)
        assert not on_small & on_large
        await asyncio.sleep(1.5)  # a settled fleet stays as it is
        assert (await camera_ids(nodes, node_key, small), await camera_ids(nodes, node_key, large)) == \
            (on_small, on_large)
    assert assignable_count(db) > 5


async def test_a_node_that_stops_heartbeating_goes_offline_and_its_streams_move(short_lease, node_key, app):
    nodes, _ = short_lease
    mine = {await stream_camera(app, i + 1) for i in range(2)}
    quiet = (await nodes.RegisterNode(pb.RegisterNodeRequest(node=node_message(capacity=10_000)),
                                      metadata=node_key))
    assert quiet.lease_duration.ToTimedelta().total_seconds() == SHORT_LEASE_S
    assert quiet.heartbeat_interval.ToTimedelta().total_seconds() == SHORT_HEARTBEAT_S
    quiet_id = quiet.node.id
    assert mine <= await eventually(lambda: camera_ids(nodes, node_key, quiet_id))
    live_id = (await register_node_on(nodes, node_key)).node.id
    async with alive(nodes, node_key, live_id, interval_s=SHORT_HEARTBEAT_S):
        watch = Watch(nodes, node_key, live_id)
        try:
            await watch.next()
            state = await eventually(lambda: _offline(nodes, node_key, quiet_id), timeout_s=SHORT_LEASE_S + 10)
            assert state.camera_ids == []
            await watch.until(lambda s: mine <= set(s))
            live = (await nodes.GetNode(pb.GetNodeRequest(id=live_id), metadata=node_key)).node
            assert live.state == pb.NODE_STATE_ACTIVE and mine <= set(live.camera_ids)
        finally:
            watch.cancel()
    reply = await nodes.Heartbeat(pb.HeartbeatRequest(node_id=quiet_id), metadata=node_key)
    assert reply.state == pb.NODE_STATE_OFFLINE  # the node learns it must register again


async def register_node_on(nodes, metadata, **fields):
    return await nodes.RegisterNode(pb.RegisterNodeRequest(node=node_message(capacity=10_000, **fields)),
                                    metadata=metadata)


async def _offline(nodes, metadata, node_id):
    node = (await nodes.GetNode(pb.GetNodeRequest(id=node_id), metadata=metadata)).node
    return node if node.state == pb.NODE_STATE_OFFLINE else None


async def test_drain_moves_streams_away_and_resume_takes_them_again(channel, nodes, node_key, admin, app):
    mine = {await stream_camera(app, i + 1) for i in range(3)}
    first = (await register_node(channel, node_key, capacity=10_000)).node.id
    async with alive(nodes, node_key, first):
        assert mine <= await eventually(lambda: camera_ids(nodes, node_key, first))
        second = (await register_node(channel, node_key, capacity=10_000)).node.id
        async with alive(nodes, node_key, second):
            drained = (await nodes.DrainNode(pb.DrainNodeRequest(id=first), metadata=admin)).node
            assert drained.state == pb.NODE_STATE_DRAINING
            again = (await nodes.DrainNode(pb.DrainNodeRequest(id=first), metadata=admin)).node  # idempotent
            assert again.state == pb.NODE_STATE_DRAINING
            await eventually(lambda: _empty(nodes, node_key, first))
            assert mine <= await camera_ids(nodes, node_key, second)
            hb = await nodes.Heartbeat(pb.HeartbeatRequest(node_id=first), metadata=node_key)
            assert hb.state == pb.NODE_STATE_DRAINING
            resumed = (await nodes.ResumeNode(pb.ResumeNodeRequest(id=first), metadata=admin)).node
            assert resumed.state == pb.NODE_STATE_ACTIVE
            # resuming adds capacity; streams already running elsewhere stay where they are
            await asyncio.sleep(1.5)
            assert mine <= await camera_ids(nodes, node_key, second)


async def _empty(nodes, metadata, node_id) -> bool:
    return not await camera_ids(nodes, metadata, node_id)


async def test_delete_is_refused_unless_offline(channel, nodes, node_key, admin, db):
    node_id = (await register_node(channel, node_key)).node.id
    details = await refused(nodes.DeleteNode(pb.DeleteNodeRequest(id=node_id), metadata=admin),
                            grpc.StatusCode.FAILED_PRECONDITION)
    assert "OFFLINE" in details
    await nodes.DrainNode(pb.DrainNodeRequest(id=node_id), metadata=admin)
    await refused(nodes.DeleteNode(pb.DeleteNodeRequest(id=node_id), metadata=admin),
                  grpc.StatusCode.FAILED_PRECONDITION)
    db.execute("UPDATE pipeline_nodes SET state = 'offline' WHERE id = %s", (node_id,))
    await nodes.DeleteNode(pb.DeleteNodeRequest(id=node_id), metadata=admin)
    await refused(nodes.GetNode(pb.GetNodeRequest(id=node_id), metadata=admin), grpc.StatusCode.NOT_FOUND)
    await refused(nodes.Heartbeat(pb.HeartbeatRequest(node_id=node_id), metadata=node_key), grpc.StatusCode.NOT_FOUND)
    await refused(nodes.DeleteNode(pb.DeleteNodeRequest(id=node_id), metadata=admin), grpc.StatusCode.NOT_FOUND)


# --------------------------------------------------------------------------- ingest


async def test_ingest_from_an_unregistered_node_ends_the_stream(channel, ingest, node_key, app):
    camera_id = await stream_camera(app)
    request = batch(camera_id, [person("t1")])
    request.batch.node_id = str(uuid.uuid4())
    request.batch.idempotency_key = f"{request.batch.node_id}:{camera_id}:1"
    call = ingest.Publish(metadata=node_key)
    await call.write(request)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "RegisterNode" in err.value.details()

    # registered, the same node's batch is stored: the camera need not be assigned to it
    await register_node(channel, node_key, request.batch.node_id, capacity=1)
    call = ingest.Publish(metadata=node_key)
    await call.write(request)
    ack = await call.read()
    await call.done_writing()
    assert ack.status == ingest_pb.PUBLISH_STATUS_ACCEPTED and ack.sequence == request.batch.sequence
