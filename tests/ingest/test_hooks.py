"""The on_events hooks where rules and analytics plug in: what they are given, that their writes
commit with the batch, and that a failing hook costs the batch nothing."""

from __future__ import annotations

import pytest

from tests.fixtures.control import database
from tests.ingest.builders import accepted, batch, best_face, face_track, person, publish
from tests.storage.builders import count
from vigil.api.v1 import ingest_pb2 as pb
from vigil.control.analytics.model import ObjectClass, TrackKind
from vigil.control.ingest.runtime import ingest_runtime


@pytest.fixture
def hooks(app):
    on_events = ingest_runtime(app).pipeline.on_events
    installed = list(on_events)  # the app's own (alerting) stays after the test
    yield on_events
    on_events[:] = installed


async def test_hooks_see_the_batchs_events_and_observations_with_identities(
        hooks, ingest, node, app, camera, model_version, real_faces):
    calls = []

    async def remember(tx, events, observations):
        calls.append((list(events), list(observations)))

    hooks.append(remember)
    request = batch(camera.id, [person("body", frame=1),
                                face_track("face", best_face(real_faces["biden"], model_version), parent="body"),
                                person("body", pb.TRACK_UPDATE_KIND_END, second=1, frame=2)])
    await accepted(ingest, node, request)
    assert (await publish(ingest, node, request))[0].duplicate  # a replay reaches no hook

    ((events, observations),) = calls
    assert sorted((r.track_id, r.event.event_type, r.created) for r in events) == [
        ("body", "human_detected", True), ("face", "face_detected", True)]
    cluster_id = next(str(r.event.cluster_id) for r in events if r.track_id == "face")
    assert [(o.track_id, o.object_class, o.kind, o.cluster_id) for o in observations] == [
        ("body", ObjectClass.PERSON, TrackKind.START, cluster_id),  # the face's identity, copied to its body
        ("face", ObjectClass.FACE, TrackKind.START, cluster_id),
        ("body", ObjectClass.PERSON, TrackKind.END, cluster_id)]
    assert observations[0].camera_id == str(camera.id) and observations[0].frame_width == 1920


async def test_a_failing_hook_is_rolled_back_alone(hooks, ingest, node, app, camera):
    async def broken(tx, events, observations):
        await tx.conn.execute("UPDATE events SET reviewed = TRUE WHERE id = %s", (events[0].event.id,))
        raise RuntimeError("a bug in a rule")

    hooks.append(broken)
    await accepted(ingest, node, batch(camera.id, [person("p")]))
    async with database(app) as conn:
        assert await count(conn, "SELECT count(*) FROM events WHERE camera_id = %s AND NOT reviewed",
                           (camera.id,)) == 1
