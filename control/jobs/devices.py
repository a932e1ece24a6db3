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
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from vigil.control.ingest import feed
from vigil.logs import get_logger
from vigil.storage.db import acting_as
from vigil.storage.repositories.alerts import AlertRepository
from vigil.storage.repositories.devices import DeviceRepository, StreamingCamera
from vigil.storage.repositories.nodes import NodeRepository

log = get_logger("vigil.control.jobs.devices")


async def check_devices(app) -> dict[str, Any]:
    threshold = timedelta(seconds=app.settings.jobs.device_offline_after_s)
    now = datetime.now(UTC)
    async with app.pool.connection() as conn:
        cameras = await DeviceRepository(conn).streaming_cameras()
        nodes = await NodeRepository(conn).count_by_state()
    counts = {"cameras": len(cameras), "offline": 0, "online": 0, "dvrs_offline": 0, "dvrs_online": 0}
    online_now: dict[UUID, bool] = {}
    by_dvr: dict[UUID, list[StreamingCamera]] = defaultdict(list)
    for cam in cameras:
        by_dvr[cam.dvr_id].append(cam)
        last = cam.last_frame
        alive = last is not None and now - last <= threshold
        online_now[cam.id] = alive
        silent_since = last or cam.created_at
        if alive and cam.status != "online":
            await _transition(app, "camera", cam.id, cam.id, cam.name, "online", cam.status, last, now)
            counts["online"] += 1
        elif not alive and cam.status != "offline" and now - silent_since > threshold:
            await _transition(app, "camera", cam.id, cam.id, cam.name, "offline", cam.status, last, now,
                              node_id=cam.node_id)
            counts["offline"] += 1
    for dvr_id, members in by_dvr.items():
        alive = any(online_now[c.id] for c in members)
        status = members[0].dvr_status
        last = max((c.last_frame for c in members if c.last_frame), default=None)
        silent_since = last or min(c.created_at for c in members)
        if alive and status != "online":
            await _transition(app, "dvr", dvr_id, members[0].id, members[0].dvr_name, "online", status, last, now)
            counts["dvrs_online"] += 1
        elif not alive and status != "offline" and now - silent_since > threshold:
            await _transition(app, "dvr", dvr_id, members[0].id, members[0].dvr_name, "offline", status, last, now)
            counts["dvrs_offline"] += 1
    metrics = app.metrics
    for state in ("active", "draining", "offline"):
        metrics.nodes.labels(state=state).set(nodes.get(state, 0))
    async with app.pool.connection() as conn:
        metrics.offline_cameras.set(await DeviceRepository(conn).offline_camera_count())
    return counts


async def _transition(
    app,
    device_type: str,
    device_id: UUID,
    camera_id: UUID,
    name: str,
    status: str,
    previous: str,
    last_frame: datetime | None,
    now: datetime,
    *,
    node_id: UUID | None = None,
) -> None:
    silent = None if last_frame is None else round((now - last_frame).total_seconds(), 1)
    details = {"previous_status": previous, "last_frame_time": last_frame.isoformat() if last_frame else None,
               "silent_seconds": silent, "node_id": str(node_id) if node_id else None, "name": name}
    async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
        devices = DeviceRepository(conn)
        if not await devices.set_status(device_type, device_id, status, last_frame):
            return
        await devices.log_connectivity(device_type, device_id, "connected" if status == "online" else "disconnected",
                                       details)
        alerts = AlertRepository(conn)
        if status == "offline":
            what = "camera" if device_type == "camera" else "DVR"
            since = f"since {last_frame.isoformat()}" if last_frame else "ever since it was added"
            alert = await alerts.insert_device_alert(camera_id, device_type, device_id,
                                                     f'{what} "{name}" is offline: no frames {since}', details)
            await feed.record(conn, [feed.FeedItem.of_alert(alert)])
        else:
            for alert_id in await alerts.open_device_alert_ids(device_id, f"{device_type}_offline"):
                resolved, change = await alerts.transition(alert_id, "resolved", None,
                                                           note=f"{device_type} back online")
                await feed.record_status_change(conn, resolved, change)
    report = log.warning if status == "offline" else log.info
    report(f"{device_type} {status}", device_id=str(device_id), name=name, silent_s=silent)
