"""Job "device_health": cameras and DVRs offline when no frames arrive, online when they return.

A camera's last frame is the newest StreamStats.last_frame_time any node reported in a heartbeat
(pipeline_nodes.streams). A camera that should stream (active, with a URL) and has had no frame
for jobs.device_offline_after_s becomes OFFLINE: cameras.status, a device_connectivity_logs row
('disconnected') and a high-severity alert (alert_type camera_offline, on the feed). When frames
come again it becomes ONLINE: a 'connected' row, and its open offline alerts are resolved by the
system. A DVR is offline when none of its streaming cameras delivers, online when one does; its
alert (dvr_offline) is filed on its first camera, since alerts belong to a camera.

Only transitions are written (cameras and dvrs carry audit triggers: a write per pass would
flood audit_logs); cameras.last_frame_time and dvrs.last_seen are updated with them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from vigil.control.ingest import feed
from vigil.control.rules.alert_api import alert_message
from vigil.logs import get_logger
from vigil.storage.db import acting_as
from vigil.storage.repositories.alerts import AlertRepository

log = get_logger("vigil.control.jobs.devices")

_CAMERAS = """
WITH frames AS (
    SELECT (s->>'camera_id')::uuid AS camera_id, max((s->>'last_frame_time')::timestamptz) AS last_frame
    FROM pipeline_nodes n, jsonb_array_elements(n.streams) s
    WHERE s ? 'last_frame_time'
    GROUP BY 1
)
SELECT c.id, c.name, c.dvr_id, d.name AS dvr_name, c.status::text AS status, d.status::text AS dvr_status,
       GREATEST(f.last_frame, c.last_frame_time) AS last_frame, c.created_at, a.node_id
FROM cameras c
JOIN dvrs d ON d.id = c.dvr_id
LEFT JOIN frames f ON f.camera_id = c.id
LEFT JOIN stream_assignments a ON a.camera_id = c.id
WHERE c.is_active AND c.rtsp_url IS NOT NULL AND btrim(c.rtsp_url) <> ''
ORDER BY c.dvr_id, c.channel_number, c.id
"""


async def check_devices(app) -> dict[str, Any]:
    threshold = timedelta(seconds=app.settings.jobs.device_offline_after_s)
    now = datetime.now(timezone.utc)
    async with app.pool.connection() as conn:
        cameras = await (await conn.execute(_CAMERAS)).fetchall()
        nodes = await (await conn.execute("SELECT state, count(*) AS n FROM pipeline_nodes GROUP BY state")).fetchall()
    counts = {"cameras": len(cameras), "offline": 0, "online": 0, "dvrs_offline": 0, "dvrs_online": 0}
    online_now: dict[UUID, bool] = {}
    by_dvr: dict[UUID, list[dict]] = defaultdict(list)
    for cam in cameras:
        by_dvr[cam["dvr_id"]].append(cam)
        last = cam["last_frame"]
        alive = last is not None and now - last <= threshold
        online_now[cam["id"]] = alive
        silent_since = last or cam["created_at"]
        if alive and cam["status"] != "online":
            await _transition(app, "camera", cam["id"], cam["id"], cam["name"], "online", cam["status"], last, now)
            counts["online"] += 1
        elif not alive and cam["status"] != "offline" and now - silent_since > threshold:
            await _transition(app, "camera", cam["id"], cam["id"], cam["name"], "offline", cam["status"], last, now,
                              node_id=cam["node_id"])
            counts["offline"] += 1
    for dvr_id, members in by_dvr.items():
        alive = any(online_now[c["id"]] for c in members)
        status = members[0]["dvr_status"]
        last = max((c["last_frame"] for c in members if c["last_frame"]), default=None)
        silent_since = last or min(c["created_at"] for c in members)
        if alive and status != "online":
            await _transition(app, "dvr", dvr_id, members[0]["id"], members[0]["dvr_name"], "online", status, last, now)
            counts["dvrs_online"] += 1
        elif not alive and status != "offline" and now - silent_since > threshold:
            await _transition(app, "dvr", dvr_id, members[0]["id"], members[0]["dvr_name"], "offline", status, last,
                              now)
            counts["dvrs_offline"] += 1
    metrics = app.metrics
    for state in ("active", "draining", "offline"):
        metrics.nodes.labels(state=state).set(sum(r["n"] for r in nodes if r["state"] == state))
    async with app.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM cameras WHERE is_active AND status = 'offline'")
        metrics.offline_cameras.set((await cur.fetchone())["n"])
    return counts


async def _transition(app, device_type: str, device_id: UUID, camera_id: UUID, name: str, status: str,
                      previous: str, last_frame: datetime | None, now: datetime, *, node_id: UUID | None = None) -> None:
    table, seen = ("cameras", "last_frame_time") if device_type == "camera" else ("dvrs", "last_seen")
    silent = None if last_frame is None else round((now - last_frame).total_seconds(), 1)
    details = {"previous_status": previous, "last_frame_time": last_frame.isoformat() if last_frame else None,
               "silent_seconds": silent, "node_id": str(node_id) if node_id else None, "name": name}
    async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
        # the status decides under the row lock: a concurrent manual change is not overwritten blindly
        cur = await conn.execute(
            f"UPDATE {table} SET status = %s, {seen} = GREATEST({seen}, %s)"  # GREATEST skips NULLs
            " WHERE id = %s AND status::text <> %s RETURNING id", (status, last_frame, device_id, status))
        if await cur.fetchone() is None:
            return
        await conn.execute(
            "INSERT INTO device_connectivity_logs (device_type, device_id, event, details) VALUES (%s, %s, %s, %s)",
            (device_type, device_id, "connected" if status == "online" else "disconnected", Jsonb(details)))
        alerts = AlertRepository(conn)
        if status == "offline":
            what = "camera" if device_type == "camera" else "DVR"
            since = f"since {last_frame.isoformat()}" if last_frame else "ever since it was added"
            cur = await conn.execute(
                "INSERT INTO alerts (camera_id, alert_type, severity, message, device_type, device_id,"
                " trigger_evidence) VALUES (%s, %s, 'high', %s, %s, %s, %s) RETURNING id",
                (camera_id, f"{device_type}_offline", f'{what} "{name}" is offline: no frames {since}',
                 device_type, device_id, Jsonb(details)))
            alert = await alerts.get((await cur.fetchone())["id"])
            await feed.record(conn, [feed.FeedItem("alert", alert_message(alert), alert.camera_id, alert.site_id,
                                                   severity=alert.severity, person_ids=())])
        else:
            cur = await conn.execute(
                "SELECT id FROM alerts WHERE device_id = %s AND alert_type = %s"
                " AND status IN ('pending', 'sent', 'acknowledged')", (device_id, f"{device_type}_offline"))
            for row in await cur.fetchall():
                await alerts.resolve(row["id"], None, note=f"{device_type} back online")
    report = log.warning if status == "offline" else log.info
    report(f"{device_type} {status}", device_id=str(device_id), name=name, silent_s=silent)
