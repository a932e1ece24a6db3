"""Memory: RSS of an idle control plane and of the same control plane under the synthetic load,
and of a portable pipeline node per stream (1 and 4 streams of the sample video at native rate).

    .venv/bin/python bench/memory.py [--streams 1 4] [--seconds 20]

Baselines in the same run: the control plane at idle (just started, SERVING), and the node at one
stream; the per-stream figure is the marginal RSS between the first and the last stream count.
Runs on the bench stack (bench/benchenv.py), with the node and the control plane as child
processes (vigil/loadtest); RSS covers each process tree.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from benchenv import bench_settings, bench_stack


async def idle_control(settings) -> float:
    from vigil.loadtest.common import ControlPlane, ProcessSampler

    control = ControlPlane(settings, settings.resolved_state_dir() / "logs" / "bench-memory-control.log")
    try:
        await control.start()
        await asyncio.sleep(3)
        return ProcessSampler(control.pid).rss() / 2**20
    finally:
        control.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    settings = bench_settings()
    bench_stack(settings, models=True)
    from vigil.loadtest.control import ControlOptions, run_control
    from vigil.loadtest.pipeline import PipelineOptions, run_pipeline

    logs = settings.resolved_state_dir() / "logs"
    idle = asyncio.run(idle_control(settings))
    loaded = asyncio.run(run_control(settings, ControlOptions(cameras=8, fps=25, objects=50, duration_s=args.seconds,
                                                              gallery=10_000), log_dir=logs))
    print(f"control plane RSS: idle {idle:.0f} MB; under {loaded['track_updates_per_s']:,.0f} track updates/s "
          f"{loaded['control_plane']['rss_mb_max']:.0f} MB (x{loaded['control_plane']['rss_mb_max'] / idle:.2f} idle)")
    nodes = {}
    for n in args.streams:
        r = asyncio.run(run_pipeline(settings, PipelineOptions(streams=n, duration_s=args.seconds, warmup_s=8),
                                     log_dir=logs))
        nodes[n] = r
        print(f"pipeline node, {n} stream(s): RSS {r['node']['rss_mb_max']:.0f} MB "
              f"({r['node']['rss_mb_max'] / n:.0f} MB per stream), {r['fps_total']:.1f} fps, control plane "
              f"{r['control_plane']['rss_mb_max']:.0f} MB", flush=True)
    lo, hi = min(nodes), max(nodes)
    if hi > lo:
        marginal = (nodes[hi]["node"]["rss_mb_max"] - nodes[lo]["node"]["rss_mb_max"]) / (hi - lo)
        print(f"node: marginal RSS per added stream {marginal:.0f} MB; {hi} streams / {lo} stream(s) RSS ratio "
              f"{nodes[hi]['node']['rss_mb_max'] / nodes[lo]['node']['rss_mb_max']:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"control_idle_mb": idle, "control_loaded": loaded, "nodes": nodes}, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
