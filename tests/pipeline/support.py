"""Helpers of the suites that run a real pipeline node on the test stack (plain functions; the fixtures
are in tests/fixtures/replay.py)."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from tests.fixtures.control import database
from vigil.api.v1 import node_pb2
from vigil.pipeline.node import build_node
from vigil.storage.repositories.sites import CameraRepository

MEDIA_CACHE = Path(__file__).resolve().parents[2] / ".vigil" / "media"


async def add_camera(app, dvr, channel: int, url: str, fps: int):
    async with database(app) as conn:
        return await CameraRepository(conn).create(dvr.id, channel, f"replay-{channel}", rtsp_url=url, fps=fps)


async def set_active(app, camera_id, active: bool) -> None:
    async with database(app) as conn:
        await CameraRepository(conn).update(camera_id, {"is_active": active})
    app.nodes.reconciler.wake()


@asynccontextmanager
async def running_node(control, settings, endpoints, api_keys, model_version, tmp_path: Path):
    address, app = control
    node_settings = settings.node.model_copy(update={
        "control_url": address, "embedding_model_version": model_version, "capacity_streams": 64,
        "backend": "portable", "spool_dir": tmp_path / "spool", "publish_interval_s": 0.2})
    node = build_node(settings.model_copy(update={"node": node_settings}), endpoints,
                      api_key=api_keys["api_client"], name=f"test-node-{uuid.uuid4().hex[:6]}")
    stop = asyncio.Event()
    task = asyncio.create_task(node.run(stop))
    app.nodes.reconciler.wake()
    try:
        yield node
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


def stream_state(node, camera_id) -> node_pb2.StreamStats | None:
    backend = node.agent.backend
    stream = backend._streams.get(camera_id)
    return None if stream is None else stream.counters


async def until(predicate, timeout_s: float, what: str):
    async with asyncio.timeout(timeout_s):
        while not (result := predicate()):
            await asyncio.sleep(0.2)
    assert result, what
    return result


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return iw * ih / (aw * ah + bw * bh - iw * ih)
