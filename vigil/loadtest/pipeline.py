"""`vigil loadtest pipeline`: the sample video replayed as N cameras (looping files at their
native rate, or the RTSP test server) through a real portable pipeline node (child process,
nodeproc.py) publishing to a real control plane (child process), while this process reads the
event feed.

Measured per stream: processed fps, decoded fps, dropped frames; frame-to-feed latency: the
capture time of the frame an event describes (Event.event_time: a person's first observation,
a face's best frame) → the event's arrival on EventService.Subscribe, counted once per event;
CPU and RSS of the node and of the control plane.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from vigil.api.v1 import event_pb2, event_pb2_grpc, node_pb2, node_pb2_grpc
from vigil.loadtest.common import ControlPlane, ProcessSampler, create_fixtures, percentiles, settings_env
from vigil.settings import VigilSettings
from vigil.stack.process import Child, child_env, vigil_argv


@dataclass
class PipelineOptions:
    streams: int = 1
    duration_s: float = 30.0
    warmup_s: float = 8.0
    rtsp: bool = False
    rate: str = "native"  # native | max (files only)
    video: str = "people_walk"


class NodeChild:
    """vigil.loadtest.nodeproc as a Child whose stdout (one JSON line a second) is read as it comes."""

    def __init__(self, settings: VigilSettings, config: dict, log_file: Path, control_target: str):
        self.log_file = log_file
        # control_target: the load test's own control plane, not the settings' default
        self.child = Child("pipeline node", vigil_argv()[:2] + ["vigil.loadtest.nodeproc", json.dumps(config)],
                           child_env(**settings_env(settings), VIGIL_NODE__CONTROL_URL=control_target,
                                     VIGIL_LOG_LEVEL="warning"), log_file, capture_stdout=True)
        self.latest: dict = {}
        self.node_id: str | None = None
        self.registered = asyncio.Event()
        self._reader: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return self.child.pid

    async def start(self) -> None:
        self.child.start()
        self._reader = asyncio.create_task(asyncio.to_thread(self._read, asyncio.get_running_loop()))

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        """On a thread: the child's stdout until it closes."""
        for line in self.child.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("type") == "registered":
                self.node_id = message["node_id"]
                loop.call_soon_threadsafe(self.registered.set)
            else:
                self.latest = message

    def exited(self) -> int | None:
        return self.child.exited()

    async def stop(self) -> None:
        await asyncio.to_thread(self.child.stop, 30.0)
        if self._reader:
            await asyncio.wait([self._reader], timeout=5)

    def tail(self, lines: int = 15) -> str:
        return self.child.log_tail(lines)


def _totals(stats: dict) -> dict[str, dict]:
    return stats.get("streams", {})


async def run_pipeline(settings: VigilSettings, o: PipelineOptions, *, log_dir: Path,  # noqa: C901
                       progress: Callable[[dict], None] | None = None) -> dict:
    from vigil.samples import RtspTestServer, load_sample_videos

    video = load_sample_videos()[o.video]
    rtsp = None
    if o.rtsp:
        rtsp = RtspTestServer({o.video: video.path}).start()
        urls = [rtsp.url(o.video)] * o.streams
    else:
        urls = [f"file://{video.path}?loop=true&rate={o.rate}"] * o.streams
    control = ControlPlane(settings, log_dir / "loadtest-control.log")
    node: NodeChild | None = None
    try:
        # cameras without a URL in the database: the node is handed its streams directly
        fixtures = await create_fixtures(settings, o.streams)
        await control.start()
        control_sampler = ProcessSampler(control.pid)
        node = NodeChild(settings, {"key": fixtures.node_key, "name": f"loadtest-node-{uuid.uuid4().hex[:6]}",
                                    "streams": list(zip(fixtures.camera_ids, urls)), "fps": round(video.fps)},
                         log_dir / "loadtest-node.log", control.target)
        async with grpc.aio.insecure_channel(control.target) as channel:
            admin_md = (("authorization", f"Bearer {fixtures.admin_key}"),)
            events = event_pb2_grpc.EventServiceStub(channel)
            call = events.Subscribe(event_pb2.SubscribeRequest(camera_ids=fixtures.camera_ids,
                                                               kinds=[event_pb2.FEED_ITEM_KIND_EVENT]),
                                    metadata=admin_md)
            await call.initial_metadata()
            latencies: list[float] = []
            per_camera_events: dict[str, int] = {}
            seen: set[str] = set()
            measuring = {"on": False}

            async def read_feed() -> None:
                try:
                    async for response in call:
                        if response.WhichOneof("item") != "event" or response.event.id in seen:
                            continue
                        seen.add(response.event.id)
                        if measuring["on"]:
                            latencies.append(time.time() - response.event.event_time.ToNanoseconds() / 1e9)
                            per_camera_events[response.event.camera_id] = \
                                per_camera_events.get(response.event.camera_id, 0) + 1
                except grpc.aio.AioRpcError:
                    pass

            feed = asyncio.create_task(read_feed())
            await node.start()
            deadline = time.monotonic() + 180
            while not node.registered.is_set():
                if node.exited() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the pipeline node did not register. Last lines of {node.log_file}:\n"
                                       f"{node.tail()}")
                await asyncio.sleep(0.3)
            try:  # drained: the control plane assigns it nothing else
                await node_pb2_grpc.NodeServiceStub(channel).DrainNode(
                    node_pb2.DrainNodeRequest(id=node.node_id), metadata=admin_md, timeout=10)
            except grpc.aio.AioRpcError:
                pass
            node_sampler = ProcessSampler(node.pid)
            warm_until = time.monotonic() + o.warmup_s
            while time.monotonic() < warm_until:
                if node.exited() is not None:
                    raise RuntimeError(f"the pipeline node exited. Last lines:\n{node.tail()}")
                if progress:
                    progress({"phase": "warm-up", "elapsed_s": 0.0, "duration_s": o.duration_s})
                await asyncio.sleep(0.5)
            base = json.loads(json.dumps(_totals(node.latest)))
            t0 = time.monotonic()
            node_sampler.restart()
            control_sampler.restart()
            measuring["on"] = True
            last, last_t = base, t0
            while (now := time.monotonic()) < t0 + o.duration_s:
                await asyncio.sleep(1.0)
                if node.exited() is not None:
                    raise RuntimeError(f"the pipeline node exited. Last lines:\n{node.tail()}")
                now = time.monotonic()
                cur = _totals(node.latest)
                ncpu, nrss = node_sampler.sample()
                ccpu, crss = control_sampler.sample()
                if progress:
                    fps = sum(s["processed"] - last.get(c, {}).get("processed", 0) for c, s in cur.items()) \
                        / max(now - last_t, 1e-6)
                    progress({"phase": "measuring", "elapsed_s": now - t0, "duration_s": o.duration_s,
                              "fps_total": fps, "events": len(latencies),
                              "latency_p95_ms": percentiles(latencies)["p95"], "node_cpu": ncpu,
                              "node_rss_mb": nrss / 2**20, "control_cpu": ccpu})
                last, last_t = json.loads(json.dumps(cur)), now
            elapsed = time.monotonic() - t0
            end = _totals(node.latest)
            measuring["on"] = False
            node_figures, control_figures = node_sampler.summary(), control_sampler.summary()
            publisher = node.latest.get("publisher", {})
            await node.stop()
            await asyncio.sleep(1.0)
            call.cancel()
            await asyncio.gather(feed, return_exceptions=True)
    finally:
        if node is not None:
            await node.stop()
        control.stop()
        if rtsp is not None:
            rtsp.stop()
    streams = []
    for i, camera_id in enumerate(fixtures.camera_ids):
        e, b = end.get(camera_id, {}), base.get(camera_id, {})
        streams.append({
            "stream": i + 1, "camera_id": camera_id,
            "processed_fps": round((e.get("processed", 0) - b.get("processed", 0)) / elapsed, 2),
            "decoded_fps": round((e.get("decoded", 0) - b.get("decoded", 0)) / elapsed, 2),
            "dropped_frames": e.get("dropped", 0) - b.get("dropped", 0),
            "dropped_total": e.get("dropped", 0), "reconnects": e.get("reconnects", 0),
            "events": per_camera_events.get(camera_id, 0), "error": e.get("error", "")})
    total_fps = sum(s["processed_fps"] for s in streams)
    return {
        "kind": "pipeline", "options": vars(o),
        "video": {"name": video.path.name, "width": video.width, "height": video.height, "fps": video.fps},
        "source": "rtsp" if o.rtsp else f"file (rate={o.rate})",
        "duration_s": round(elapsed, 2),
        "fps_total": round(total_fps, 2), "fps_per_stream_avg": round(total_fps / max(o.streams, 1), 2),
        "dropped_frames": sum(s["dropped_frames"] for s in streams),
        "events": len(latencies),
        "frame_to_feed_latency_ms": percentiles(latencies),
        "streams": streams,
        "node": {**node_figures, "rss_mb_per_stream": round(node_figures["rss_mb_max"] / max(o.streams, 1), 1)},
        "control_plane": control_figures,
        "publisher": publisher,
    }
