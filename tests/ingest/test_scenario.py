"""The scripted scene of the ingest issue, beyond the watchlist intrusion (test_alerting.py):
five people crowd a zone after hours, one of them stays and loiters, and an unknown face is seen
twice. Exactly one crowding and one loitering activity and one after-hours presence per person,
each alerted once; both sightings of the stranger land in the same unknown cluster."""

from __future__ import annotations

import uuid
from datetime import timedelta

from psycopg.types.json import Jsonb

from tests.fixtures.control import database
from tests.ingest.builders import T0, accepted, batch, face_track, person
from vigil.api.v1 import common_pb2
from vigil.api.v1 import ingest_pb2 as pb
from vigil.storage.repositories.alerts import AnalyticsConfigRepository

UPDATE, END = pb.TRACK_UPDATE_KIND_UPDATE, pb.TRACK_UPDATE_KIND_END


def _face(real, model_version: str) -> pb.BestFace:
    return pb.BestFace(embedding=real.embedding, model_version=model_version, quality=real.quality,
                       confidence=real.confidence, box=common_pb2.BoundingBox(x=0.2, y=0.1, width=0.1, height=0.15))


async def test_crowd_loiterer_and_a_stranger_twice(app, ingest, admin, camera, model_version, real_faces):
    async with database(app) as conn:
        cur = await conn.execute(
            "INSERT INTO camera_zones (camera_id, name, zone_type, polygon_points) VALUES (%s, 'lobby', 'interest', %s)"
            " RETURNING id",
            (camera.id, Jsonb([{"x": 0, "y": 0}, {"x": 1, "y": 0}, {"x": 1, "y": 1}, {"x": 0, "y": 1}])),
        )
        lobby = (await cur.fetchone())["id"]
        configs = AnalyticsConfigRepository(conn)
        await configs.create("lobby crowd", camera.id, "crowding", None, zone_id=lobby, severity="medium",
                             parameters={"min_persons": 5, "min_duration": 4})
        await configs.create("lobby loiter", camera.id, "loitering", None, zone_id=lobby, severity="low",
                             parameters={"min_duration": 10})
        # open only for one minute six hours from now: everyone in the scene is there after hours
        opens = T0 + timedelta(hours=6)
        await configs.create("lobby after hours", camera.id, "after_hours", None, zone_id=lobby, severity="high",
                             parameters={"allowed_hours": {"start": opens.strftime("%H:%M"), "timezone": "UTC",
                                                           "end": (opens + timedelta(minutes=1)).strftime("%H:%M")}})

    crowd = [f"c{i}" for i in range(5)]
    stranger = _face(real_faces["biden"], model_version)
    # seconds 0..6: the crowd of five (c0..c4) with the stranger's face on c0; then they leave
    for step, second in enumerate((0, 2, 4, 6)):
        kind = pb.TRACK_UPDATE_KIND_START if second == 0 else UPDATE
        updates = [person(t, kind, second=second, frame=second * 25) for t in crowd]
        updates.append(person("stay", kind, second=second, frame=second * 25))
        if second == 0:
            updates.append(face_track("s1", stranger, second=0, parent="c0"))
        await accepted(ingest, admin, batch(camera.id, updates, sequence=step + 1))
    await accepted(ingest, admin, batch(camera.id, [*(person(t, END, second=7) for t in crowd),
                                                    person("stay", UPDATE, second=7, frame=175)], sequence=5))
    # the one who stays, until second 12 (updates at most 2 s apart: a longer gap ends a stay);
    # the stranger comes back as a new track at second 11
    await accepted(ingest, admin, batch(camera.id, [person("stay", UPDATE, second=9, frame=225)], sequence=6))
    await accepted(ingest, admin, batch(camera.id, [
        person("stay", UPDATE, second=11, frame=275), person("back", second=11, frame=275),
        face_track("s2", _face(real_faces["biden_small"], model_version), second=11, parent="back")], sequence=7))
    await accepted(ingest, admin, batch(camera.id, [person("stay", UPDATE, second=12, frame=300)], sequence=8))

    async with database(app) as conn:
        activities = await (await conn.execute(
            "SELECT activity_type::text AS t, details FROM suspicious_activity_events WHERE camera_id = %s"
            " ORDER BY timestamp", (camera.id,))).fetchall()
        alerts = await (await conn.execute(
            "SELECT alert_type FROM alerts WHERE camera_id = %s AND suspicious_activity_id IS NOT NULL",
            (camera.id,))).fetchall()
        faces = await (await conn.execute(
            "SELECT event_type::text AS t, cluster_id, person_id FROM events WHERE camera_id = %s"
            " AND event_type IN ('face_detected', 'person_recognized')", (camera.id,))).fetchall()
        humans = await (await conn.execute(
            "SELECT count(*) AS n FROM events WHERE camera_id = %s AND event_type = 'human_detected'",
            (camera.id,))).fetchone()

    kinds = sorted(a["t"] for a in activities)
    # one after-hours presence per person track (c0..c4, stay, back), one crowd, one loiterer
    assert kinds == ["after_hours"] * 7 + ["crowding", "loitering"], kinds
    loiter = next(a for a in activities if a["t"] == "loitering")
    assert loiter["details"]["track_ids"] == ["stay"]
    assert sorted(a["alert_type"] for a in alerts) == ["suspicious_activity_after_hours"] * 7 + [
        "suspicious_activity_crowding", "suspicious_activity_loitering"]
    assert humans["n"] == 7  # c0..c4, stay, back: one event per track
    assert [f["t"] for f in faces] == ["face_detected", "face_detected"], faces
    assert faces[0]["cluster_id"] is not None and faces[0]["cluster_id"] == faces[1]["cluster_id"]
    assert uuid.UUID(str(faces[0]["cluster_id"]))
