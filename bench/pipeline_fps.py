"""Portable-backend throughput on the sample video, against PyAV decode-only in the same run.

    .venv/bin/python bench/pipeline_fps.py [--streams 1 4 16] [--seconds 20]

Runs on the bench stack (bench/benchenv.py: its own state dir and ports), which it starts and
whose Triton it makes serve the face models (prepared when missing). Each
configuration replays people_walk.mp4 as N looping cameras as fast as the node can go (no
control plane: batches are counted, not sent) and prints processed frames per second in total
and per stream, next to the decode-only rate of the same N streams (N threads decoding the
same file with PyAV) and their ratio. Both figures are measured in this process, one after the
other, so the ratio survives a noisy machine better than either number alone.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
import uuid

import av
from benchenv import bench_settings, bench_stack

from vigil.models.faces import FaceAnalyzer
from vigil.pipeline.node import FACE_DETECTOR_FLOOR
from vigil.pipeline.portable.backend import PortableBackend
from vigil.pipeline.portable.objects import PreferredObjectDetector
from vigil.pipeline.snapshots import SnapshotWriter
from vigil.pipeline.streams import StreamSpec
from vigil.samples import load_sample_videos
from vigil.storage.objectstore import ObjectStore


def decode_only_fps(path: str, streams: int, seconds: float) -> float:
    """Frames per second decoded (to BGR arrays, as the pipeline does) by `streams` threads."""
    counts = [0] * streams
    stop = threading.Event()

    def run(i: int) -> None:
        while not stop.is_set():
            with av.open(path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    frame.to_ndarray(format="bgr24")
                    counts[i] += 1
                    if stop.is_set():
                        return

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(streams)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


async def pipeline_fps(path: str, streams: int, seconds: float, endpoints, node) -> tuple[float, int, int]:
    updates = 0

    async def publish(batch) -> None:
        nonlocal updates
        updates += len(batch.updates)

    analyzer = FaceAnalyzer(endpoints, score_threshold=FACE_DETECTOR_FLOOR, canvas_size=node.face_detector_canvas)
    analyzer.wait_until_ready(60)
    objects = PreferredObjectDetector(endpoints)
    backend = PortableBackend(
        node_id=uuid.uuid4(),
        analyzer=analyzer,
        publish=publish,
        model_version=node.embedding_model_version,
        objects=objects,
        object_every=node.object_detect_every,
        snapshots=SnapshotWriter(ObjectStore.from_endpoints(endpoints)),
    )
    await backend.start()
    for _ in range(streams):
        await backend.add_stream(StreamSpec(uuid.uuid4(), None, f"file://{path}?loop=true&rate=max", 15))
    await asyncio.sleep(3)  # warm-up: decoders started, Triton sessions hot
    before = sum(s.counters.processed for s in backend._streams.values())
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    processed = sum(s.counters.processed for s in backend._streams.values()) - before
    elapsed = time.perf_counter() - started
    dropped = sum(s.counters.dropped for s in backend._streams.values())
    await backend.stop()
    analyzer.close()
    objects.close()
    return processed / elapsed, dropped, updates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    settings = bench_settings()
    endpoints = bench_stack(settings, models=True).endpoints
    video = load_sample_videos()["people_walk"]
    print(f"video: {video.path.name} {video.width}x{video.height} @ {video.fps:g} fps, {video.frames} frames")
    print(f"{'streams':>7} {'decode-only fps':>16} {'pipeline fps':>13} {'per stream':>11} {'ratio':>6}")
    for n in args.streams:
        baseline = decode_only_fps(str(video.path), n, args.seconds)
        fps, dropped, _ = asyncio.run(pipeline_fps(str(video.path), n, args.seconds, endpoints,
                                                   settings.node))
        print(f"{n:>7} {baseline:>16.1f} {fps:>13.1f} {fps / n:>11.1f} {fps / baseline:>6.2f}"
              + (f"  ({dropped} dropped)" if dropped else ""), flush=True)
        if n == 4:
            print(f"        target at 4 streams: pipeline >= 50 % of decode-only: "
                  f"{'met' if fps / baseline >= 0.5 else 'MISSED'} ({fps / baseline:.1%})", flush=True)


if __name__ == "__main__":
    main()
