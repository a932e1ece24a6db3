"""A real pipeline node (agent, portable backend, publisher) on the test stack: the control plane
assigns it cameras that replay the sample videos, and what reaches the database must match the
videos' ground truth. Nothing is simulated: YuNet and SFace run in the stack's Triton, snapshots
go to its S3, track batches through IngestService into PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from tests.fixtures.control import database
from tests.pipeline.support import add_camera, iou, running_node, set_active, stream_state, until
from vigil.api.v1 import common_pb2, node_pb2, person_pb2, person_pb2_grpc

RUN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
async def obama(channel, as_role, replay_model_version, videos) -> str:
    persons = person_pb2_grpc.PersonServiceStub(channel)
    admin = as_role("admin")
    person = (await persons.CreatePerson(person_pb2.CreatePersonRequest(person=person_pb2.Person(
        name="Barack Obama", status=common_pb2.PERSON_STATUS_KNOWN)), metadata=admin)).person.id
    enrolled = await persons.EnrollFace(person_pb2.EnrollFaceRequest(
        person_id=person, model_version=replay_model_version,
        images=[person_pb2.EnrollImage(image=videos["people_walk"].enrol["obama"].read_bytes())]), metadata=admin)
    assert [r.WhichOneof("result") for r in enrolled.results] == ["face"]
    return person


@pytest.fixture(scope="module")
async def replayed(control, settings, endpoints, api_keys, replay_model_version, obama, replay_site, videos,
                   tmp_path_factory):
    """people_walk replayed once, as fast as the node decodes, to its end; the events it left."""
    _, app = control
    walk = videos["people_walk"]
    camera = await add_camera(app, replay_site, 1, f"file://{walk.path}?rate=max", walk.fps)
    async with running_node(control, settings, endpoints, api_keys, replay_model_version,
                            tmp_path_factory.mktemp("node")) as node:
        await until(lambda: (c := stream_state(node, camera.id)) is not None
                    and c.state == node_pb2.STREAM_STATE_STOPPED, RUN_TIMEOUT_S, "the replay never ended")
        counters = stream_state(node, camera.id)
        assert await node.agent.publisher.flush(30)
    await set_active(app, camera.id, False)
    async with database(app) as conn:
        cur = await conn.execute(
            "SELECT e.*, m.storage_path, m.checksum, m.file_size FROM events e LEFT JOIN LATERAL ("
            "  SELECT * FROM media_files WHERE event_id = e.id AND file_type = 'image'"
            "  ORDER BY created_at DESC LIMIT 1) m ON true"  # the snapshot (an alert may add a clip)
            " WHERE e.camera_id = %s ORDER BY e.timestamp", (camera.id,))
        rows = await cur.fetchall()
    return camera, counters, rows


async def test_every_frame_of_the_replay_is_decoded_and_processed(replayed, videos):
    _, counters, _ = replayed
    assert counters.decoded == videos["people_walk"].frames
    assert counters.processed == counters.decoded and counters.dropped == 0  # rate=max waits, never drops


async def test_one_face_track_per_appearance_with_the_right_identity(replayed, videos, obama):
    _, _, rows = replayed
    walk = videos["people_walk"]
    faces = [r for r in rows if r["event_type"] in ("person_recognized", "face_detected")]
    # a track id stays stable while a face is visible: one track (so one face event) per appearance
    assert len(faces) == len(walk.appearances), [(r["metadata"]["track_id"], r["frame_number"]) for r in faces]
    matched = {}
    for event in faces:
        box = event["bounding_box"]
        pixels = (box["x"], box["y"], box["width"], box["height"])
        candidates = [
            (iou(pixels, face.box), appearance) for appearance, face in walk.appearances_at(event["frame_number"])
        ]
        overlap, appearance = max(candidates, key=lambda c: c[0])
        assert overlap >= 0.3, f"face event at frame {event['frame_number']} matches no appearance"
        matched[appearance.index] = event
    assert sorted(matched) == [a.index for a in walk.appearances]
    unknown_clusters = set()
    for appearance in walk.appearances:
        event = matched[appearance.index]
        if appearance.name == "obama":
            assert (event["event_type"], str(event["person_id"])) == ("person_recognized", obama)
        else:
            assert event["event_type"] == "face_detected" and event["person_id"] is None
            unknown_clusters.add(event["cluster_id"])
    assert len(unknown_clusters) == len({a.name for a in walk.appearances if a.name != "obama"})


async def test_snapshots_are_in_object_storage_with_their_checksum(replayed, app):
    _, _, rows = replayed
    faces = [r for r in rows if r["event_type"] in ("person_recognized", "face_detected")]
    assert faces and all(r["storage_path"] for r in faces)
    for row in faces:
        data = await asyncio.to_thread(app.objects.get, row["storage_path"])
        assert hashlib.sha256(data).hexdigest() == row["checksum"] and len(data) == row["file_size"]
        assert data[:3] == b"\xff\xd8\xff"  # a JPEG
        parts = row["storage_path"].split("/")
        assert parts[0] == str(row["camera_id"]) and len(parts) == 5  # camera/yyyy/mm/dd/file


async def test_streams_come_and_go_at_runtime_without_disturbing_another(
        control, settings, endpoints, api_keys, replay_model_version, replay_site, videos, tmp_path):
    _, app = control
    street, walk = videos["people_street"], videos["people_walk"]
    steady = await add_camera(app, replay_site, 2, f"file://{street.path}?loop=true", street.fps)
    async with running_node(control, settings, endpoints, api_keys, replay_model_version, tmp_path) as node:
        backend = node.agent.backend
        await until(lambda: (c := stream_state(node, steady.id)) and c.decoded >= 10, 60, "steady stream never ran")
        epoch = backend._streams[steady.id].outbox.epoch
        before = stream_state(node, steady.id).decoded

        added = await add_camera(app, replay_site, 3, f"file://{walk.path}?loop=true", walk.fps)
        app.nodes.reconciler.wake()
        await until(lambda: (c := stream_state(node, added.id)) and c.decoded >= 10, 60, "added stream never ran")
        await set_active(app, added.id, False)
        await until(lambda: added.id not in backend.stream_ids(), 30, "removed stream kept running")

        counters = stream_state(node, steady.id)
        during = counters.decoded
        await asyncio.sleep(1.0)
        assert backend._streams[steady.id].outbox.epoch == epoch  # never restarted
        assert counters.state == node_pb2.STREAM_STATE_RUNNING and counters.decoded > during > before
    await set_active(app, steady.id, False)
