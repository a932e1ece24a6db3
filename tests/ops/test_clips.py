"""Event clips end to end: a real portable node replays people_walk, a rule fires on the first
face, the control plane queues a clip around the alert, the node cuts it from its ring buffer of
encoded packets (stream copy), uploads it and reports it; the MP4 decodes and covers the alert
time. Also: the ring buffer on its own, and the node's /metrics parsed."""

from __future__ import annotations

import asyncio
import io
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.control import database
from tests.pipeline.support import add_camera, running_node, until
from vigil.api.v1 import media_pb2 as mpb
from vigil.pipeline.recording import ClipUnavailable, PacketRing
from vigil.storage.repositories.alerts import AlertRuleRepository


def decode(data: bytes) -> tuple[int, float]:
    with av.open(io.BytesIO(data)) as container:
        frames = sum(1 for _ in container.decode(video=0))
        return frames, container.duration / 1e6


def test_ring_buffer_cuts_mp4_by_stream_copy(videos):
    """Packets demuxed as the decoder thread does, stamped with their video time (a native-rate
    replay would take the video's 20 s)."""
    ring = PacketRing(seconds=8)
    origin = datetime.now(UTC)
    with av.open(str(videos["people_walk"].path)) as container:
        stream = container.streams.video[0]
        ring.start_segment(stream)
        for packet in container.demux(stream):
            if packet.size:
                ring.add(packet, origin + timedelta(seconds=float(packet.pts * packet.time_base)))
    first, last = ring.span()
    assert timedelta(seconds=8) <= last - first < timedelta(seconds=8 + 2.5)  # whole keyframe groups go

    start, end = last - timedelta(seconds=5), last - timedelta(seconds=2)
    clip = ring.cut(start, end)
    frames, seconds = decode(clip.data)
    assert clip.start_time <= start and clip.end_time >= end - timedelta(seconds=0.1)
    assert frames == clip.frames and frames >= 3 * 15  # from the keyframe before start
    assert abs(seconds - (clip.end_time - clip.start_time).total_seconds()) < 0.2
    with pytest.raises(ClipUnavailable):
        ring.cut(first - timedelta(seconds=60), first - timedelta(seconds=30))


async def test_alert_clip_from_a_running_node(control, settings, endpoints, api_keys, replay_model_version, replay_site,
                                              videos, app, media, as_role, db, tmp_path: Path):
    video = videos["people_walk"]
    camera = await add_camera(app, replay_site, 41, f"file://{video.path}?loop=true", 15)
    async with database(app) as conn:
        await AlertRuleRepository(conn).create("clip any face", None, camera_id=camera.id, event_type="face_detected",
                                               confidence_threshold=0.3, cooldown=timedelta(hours=1))
    async with running_node(control, settings, endpoints, api_keys, replay_model_version, tmp_path) as node:
        port = node.agent.metrics.serve("127.0.0.1", 0)
        alert = await until(lambda: db.execute(
            "SELECT id, (trigger_evidence->>'capture_time')::timestamptz FROM alerts WHERE camera_id = %s",
            (camera.id,)).fetchone(), 120, "an alert on the first face")
        clip_id = db.execute("SELECT id FROM clip_requests WHERE alert_id = %s", (alert[0],)).fetchone()[0]
        viewer = as_role("viewer")

        async def ready():
            async with asyncio.timeout(90):
                while True:
                    clip = (await media.GetClip(mpb.GetClipRequest(id=str(clip_id)), metadata=viewer)).clip
                    if clip.state in (mpb.CLIP_STATE_READY, mpb.CLIP_STATE_FAILED):
                        return clip
                    await asyncio.sleep(0.5)

        clip = await ready()
        assert clip.state == mpb.CLIP_STATE_READY, clip.error
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            families = {f.name: f.samples for f in text_string_to_metric_families(response.read().decode())}
    assert clip.alert_id == str(alert[0]) and clip.media_id and clip.size_bytes > 0
    url = (await media.GetMediaUrl(mpb.GetMediaUrlRequest(media_id=clip.media_id), metadata=viewer))
    assert url.content_type == "video/mp4"
    data = await asyncio.to_thread(lambda: urllib.request.urlopen(url.url, timeout=10).read())
    frames, seconds = decode(data)
    assert frames > 15 and seconds > 1
    produced = db.execute("SELECT v.start_time, v.end_time, v.alert_id, m.file_type::text, m.event_id"
                          " FROM video_clips v JOIN media_files m ON m.id = v.media_file_id WHERE m.id = %s",
                          (clip.media_id,)).fetchone()
    start, end, alert_id, file_type, event_id = produced
    assert start <= alert[1] < end  # covers the alert time
    assert alert_id == alert[0] and file_type == "video"
    assert event_id == db.execute("SELECT event_id FROM alerts WHERE id = %s", (alert[0],)).fetchone()[0]
    # the node's metrics endpoint: per-stream fps and dropped frames, queue depths, clips
    fps = {(s.labels["camera_id"], s.labels["kind"]) for s in families["vigil_node_stream_fps"]}
    assert (str(camera.id), "processed") in fps
    assert str(camera.id) in {s.labels["camera_id"] for s in families["vigil_node_stream_dropped_frames"]}
    assert "vigil_node_queue_depth" in families and "vigil_node_inference_seconds" in families
    async with database(app) as conn:
        await conn.execute("UPDATE cameras SET is_active = false WHERE id = %s", (camera.id,))
