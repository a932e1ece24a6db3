"""Each scheduled job against the real stack: partitions created and dropped, expired media gone
from object storage and from the table (and a half-finished purge completed), a camera marked
offline and back online with its logs and alert, unknown-face clusters consolidated, grown face
galleries calibrated."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from tests.fixtures.control import database, stream_camera
from tests.storage.builders import make_camera
from vigil.api.v1 import node_pb2 as npb
from vigil.storage.repositories.clusters import ClusterSightingRepository
from vigil.storage.repositories.faces import FaceEmbeddingRepository
from vigil.storage.repositories.media import MediaFileRepository
from vigil.storage.repositories.persons import PersonRepository


def _relations(db, pattern: str) -> set[str]:
    return {r[0] for r in db.execute("SELECT relname FROM pg_class WHERE relname LIKE %s", (pattern,)).fetchall()}


async def test_partitions_job_creates_upcoming_and_drops_expired(app, db):
    month = (datetime.now(UTC).replace(day=1) + timedelta(days=40)).replace(day=1)
    upcoming = f"device_connectivity_logs_y{month.year:04d}m{month.month:02d}"
    db.execute(f"DROP TABLE IF EXISTS {upcoming}")
    db.execute("SELECT fn_create_monthly_partition('events', 2001, 1)")  # far past the 12 months' retention
    assert "events_y2001m01" in _relations(db, "events_y2001%")

    outcome = await app.jobs.run("partitions")

    assert outcome.outcome == "succeeded", outcome.error
    assert upcoming in outcome.detail["partitions"]["created"]
    assert "events_y2001m01" in outcome.detail["partitions"]["dropped"]
    assert upcoming in _relations(db, "device_connectivity_logs_y%")
    assert "events_y2001m01" not in _relations(db, "events_y2001%")


async def test_media_retention_deletes_objects_then_rows_in_batches(app, db, monkeypatch):
    monkeypatch.setattr(app.settings.jobs, "media_batch_size", 2)
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    async with database(app) as conn:
        camera = await make_camera(conn, app.secrets)
        media = MediaFileRepository(conn)
        rows = {}
        for name, expiry in (("old-1", now - timedelta(days=9)), ("old-2", now - timedelta(days=8)),
                             ("old-3", now - timedelta(days=30)), ("fresh", now + timedelta(days=30)),
                             ("grace", now - timedelta(days=3))):  # within the 7-day grace: kept
            key = f"test-retention/{tag}/{name}.jpg"
            data = name.encode() * 100
            await asyncio.to_thread(app.objects.put, key, data, content_type="image/jpeg")
            rows[name] = await media.register(camera.id, key, checksum=hashlib.sha256(data).hexdigest(),
                                              file_size=len(data), mime_type="image/jpeg", timestamp=now,
                                              retention_until=expiry)
    # a purge that crashed after deleting its object: the row is marked, the object already gone
    crashed_key = f"test-retention/{tag}/crashed.jpg"
    async with database(app) as conn:
        crashed = await MediaFileRepository(conn).register(
            camera.id, crashed_key, checksum="0" * 64, file_size=1, mime_type="image/jpeg", timestamp=now,
            retention_until=now - timedelta(days=10))
    db.execute("UPDATE media_files SET purging_at = now() WHERE id = %s", (crashed.id,))
    async with database(app) as conn:  # a marked row counts as deleted for every reader
        page = await MediaFileRepository(conn).list(camera_ids=[camera.id], page_size=100)
        assert crashed.id not in {m.id for m in page.items}

    outcome = await app.jobs.run("media_retention")

    assert outcome.outcome == "succeeded", outcome.error
    assert outcome.detail["batches"] >= 2 and outcome.detail["failed"] == 0
    left = {r[0] for r in db.execute("SELECT id FROM media_files WHERE camera_id = %s", (camera.id,)).fetchall()}
    assert left == {rows["fresh"].id, rows["grace"].id}
    for name in ("old-1", "old-2", "old-3"):
        assert not await asyncio.to_thread(app.objects.exists, rows[name].storage_path)
    for name in ("fresh", "grace"):
        assert await asyncio.to_thread(app.objects.exists, rows[name].storage_path)
    audit = db.execute("SELECT count(*) FROM audit_logs WHERE action = 'media.purge'"
                       " AND timestamp > now() - interval '1 minute'").fetchone()[0]
    assert audit >= 2


async def _node(nodes, key) -> str:
    node_id = str(uuid.uuid4())
    await nodes.RegisterNode(npb.RegisterNodeRequest(node=npb.Node(
        id=node_id, name=f"ops-{node_id[:6]}", backend=npb.NODE_BACKEND_PORTABLE, capacity_streams=4,
        embedding_model_version="sface-2021dec-int8folded")), metadata=key)
    return node_id


async def _heartbeat(nodes, key, node_id: str, camera_id: str, last_frame: datetime | None) -> None:
    stream = npb.StreamStats(camera_id=camera_id, state=npb.STREAM_STATE_RUNNING, decode_fps=15, processed_fps=15)
    if last_frame is not None:
        stream.last_frame_time.FromDatetime(last_frame)
    await nodes.Heartbeat(npb.HeartbeatRequest(node_id=node_id, streams=[stream]), metadata=key)


async def test_camera_marked_offline_and_back_online(app, db, nodes, as_role, monkeypatch):
    monkeypatch.setattr(app.settings.jobs, "device_offline_after_s", 1.5)
    key = as_role("api_client")
    camera_id = await stream_camera(app, 7)
    dvr_id = db.execute("SELECT dvr_id FROM cameras WHERE id = %s", (camera_id,)).fetchone()[0]
    node_id = await _node(nodes, key)

    await _heartbeat(nodes, key, node_id, camera_id, datetime.now(UTC))
    await app.jobs.run("device_health")
    assert db.execute("SELECT status FROM cameras WHERE id = %s", (camera_id,)).fetchone()[0] == "online"
    assert db.execute("SELECT status FROM dvrs WHERE id = %s", (dvr_id,)).fetchone()[0] == "online"

    await asyncio.sleep(2.0)  # no frames for longer than the threshold
    outcome = await app.jobs.run("device_health")
    assert outcome.detail["offline"] >= 1
    status, last_frame = db.execute("SELECT status, last_frame_time FROM cameras WHERE id = %s",
                                    (camera_id,)).fetchone()
    assert status == "offline" and last_frame is not None
    alert = db.execute("SELECT id, alert_type, severity, status, device_type FROM alerts WHERE device_id = %s",
                       (camera_id,)).fetchall()
    assert [(a[1], a[2], a[3], a[4]) for a in alert] == [("camera_offline", "high", "pending", "camera")]
    assert db.execute("SELECT count(*) FROM alerts WHERE device_id = %s AND alert_type = 'dvr_offline'",
                      (dvr_id,)).fetchone()[0] == 1

    await _heartbeat(nodes, key, node_id, camera_id, datetime.now(UTC))
    await app.jobs.run("device_health")
    assert db.execute("SELECT status FROM cameras WHERE id = %s", (camera_id,)).fetchone()[0] == "online"
    assert db.execute("SELECT status FROM alerts WHERE id = %s", (alert[0][0],)).fetchone()[0] == "resolved"
    logs = db.execute("SELECT device_type, event::text, details->>'previous_status' FROM device_connectivity_logs"
                      " WHERE device_id IN (%s, %s) ORDER BY timestamp, device_type", (camera_id, dvr_id)).fetchall()
    assert [(d, e) for d, e, _ in logs if d == "camera"] == [("camera", "connected"), ("camera", "disconnected"),
                                                              ("camera", "connected")]
    assert [(d, e) for d, e, _ in logs if d == "dvr"] == [("dvr", "connected"), ("dvr", "disconnected"),
                                                          ("dvr", "connected")]
    # the node's heartbeats fed system_health_logs: one row per interval, not one per heartbeat
    health = db.execute("SELECT status::text, metrics FROM system_health_logs WHERE component = 'pipeline_node'"
                        " AND metrics->>'node_id' = %s", (node_id,)).fetchall()
    assert len(health) == 1 and health[0][0] == "online"
    assert health[0][1]["streams"] == 1 and health[0][1]["fps_processed"] == 15
    db.execute("UPDATE pipeline_nodes SET state = 'offline', streams = '[]' WHERE id = %s", (node_id,))
    db.execute("UPDATE cameras SET is_active = false WHERE id = %s", (camera_id,))


async def test_cluster_consolidation_merges_matching_representatives(app, db):
    version = f"test-consolidate-{uuid.uuid4().hex[:6]}"
    db.execute("INSERT INTO model_versions (version_string, embedding_dim, match_threshold) VALUES (%s, 4, 0.5)",
               (version,))
    now = datetime.now(UTC)
    clusters = {}
    async with database(app) as conn:
        for name, vector, samples in (("a", [1.0, 0.0, 0.0, 0.0], 5), ("b", [0.95, 0.2, 0.0, 0.0], 2),
                                      ("c", [0.0, 0.0, 1.0, 0.0], 3)):
            holder = await PersonRepository(conn).create(status="unknown")
            face = await FaceEmbeddingRepository(conn).insert(holder.id, version, vector, f"faces/{name}.jpg",
                                                               face_quality=0.9)
            clusters[name] = (await ClusterSightingRepository(conn).create(
                face.id, sample_count=samples, first_seen=now, last_seen=now))[0]

    outcome = await app.jobs.run("cluster_consolidation")

    assert outcome.outcome == "succeeded", outcome.error
    rows = dict((r[0], (r[1], r[2], r[3])) for r in db.execute(
        "SELECT id, status::text, merged_into_cluster_id, sample_count FROM person_clusters WHERE id = ANY(%s)",
        (list(clusters.values()),)).fetchall())
    assert rows[clusters["a"]] == ("active", None, 7)  # the larger cluster is the target and holds both counts
    assert rows[clusters["b"]][:2] == ("merged", clusters["a"])
    assert rows[clusters["c"]] == ("active", None, 3)
    holders = db.execute("SELECT count(DISTINCT person_id) FROM face_embeddings WHERE model_version = %s",
                         (version,)).fetchone()[0]
    assert holders == 2  # a's and b's faces now belong to one placeholder person


async def test_gallery_calibration_measures_grown_galleries_and_skips_the_rest(app, db, monkeypatch):
    """A gallery of 150 persons (300 faces) at an FPIR of 5 % (minimum 200 faces) is calibrated;
    unchanged, it is skipped; grown by 20 %, it is calibrated again. A gallery of 40 faces stays
    below the minimum and keeps its 1:1 threshold."""
    import numpy as np
    from pgvector.psycopg import register_vector

    monkeypatch.setattr(app.settings.jobs, "identification_fpir", 0.05)
    version = f"job-calibrate-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(8)
    register_vector(db)
    db.execute("INSERT INTO model_versions (version_string, embedding_dim, match_threshold) VALUES (%s, 32, 0.3)",
               (version,))

    small = f"{version}-small"
    db.execute("INSERT INTO model_versions (version_string, embedding_dim, match_threshold) VALUES (%s, 32, 0.3)",
               (small,))

    def enrol(persons: int, model_version: str = version) -> list:
        ids = [r[0] for r in db.execute("INSERT INTO persons (name, status) SELECT 'gallery ' || n, 'known'"
                                        " FROM generate_series(1, %s) AS n RETURNING id", (persons,)).fetchall()]
        for person in ids:
            for face in rng.normal(size=(2, 32)).astype(np.float32):
                db.execute("INSERT INTO face_embeddings (person_id, model_version, embedding, embedding_dim,"
                           " source_image_path) VALUES (%s, %s, %s, 32, 'job.jpg')",
                           (person, model_version, face / np.linalg.norm(face)))
        return ids

    persons, first = enrol(150) + enrol(20, small), None
    try:
        first = await app.jobs.run("gallery_calibration")
        assert first.outcome == "succeeded", first.error
        mine = [c for c in first.detail["calibrated"] if c["model_version"] == version]
        assert mine and mine[0]["gallery_faces"] == 300 and 0.3 < mine[0]["threshold"] < 0.9
        threshold, calibration = db.execute(
            "SELECT identification_threshold::float8, identification_calibration FROM model_versions"
            " WHERE version_string = %s", (version,)).fetchone()
        assert threshold == mine[0]["threshold"] and calibration["fpir"] == 0.05
        assert first.detail["skipped"][small] == "40 enrolled faces (< 200)"

        again = await app.jobs.run("gallery_calibration")
        assert "calibrated at 300 faces" in again.detail["skipped"][version]

        persons += enrol(30)
        grown = await app.jobs.run("gallery_calibration")
        assert [c["gallery_faces"] for c in grown.detail["calibrated"] if c["model_version"] == version] == [360]
        audited = db.execute("SELECT count(*) FROM audit_logs WHERE action = 'model_version.calibrate'"
                             " AND resource_id = (SELECT id FROM model_versions WHERE version_string = %s)",
                             (version,)).fetchone()[0]
        assert audited == 2
    finally:
        others = [c["model_version"] for c in (first.detail["calibrated"] if first else [])]
        db.execute("UPDATE model_versions SET identification_threshold = NULL, identification_calibration = '{}'"
                   " WHERE version_string = ANY(%s)", (others,))  # other tests' galleries, as they were
        db.execute("DELETE FROM face_embeddings WHERE model_version = ANY(%s)", ([version, small],))
        db.execute("DELETE FROM persons WHERE id = ANY(%s)", (persons,))
        db.execute("DELETE FROM model_versions WHERE version_string = ANY(%s)", ([version, small],))
