"""Event-feed delivery at fleet scale: EventService.SubscribeBatches against raw Redis XREAD of the
same stream by as many readers, in the same run.

    .venv/bin/python bench/feed.py [--scenarios broadcast,filtered] [--rate 2000] [--seconds 15] [--json PATH]

Scenarios (issue 13): broadcast = 100 subscribers each receiving every event; filtered = 1,000
subscribers each filtered to one of 10 sites (events spread evenly over the sites). A producer
appends event messages to the Redis stream at --rate per second, as the outbox relay writes them,
each stamped with its send time (event_time). For each scenario, (1) baseline: as many plain Redis
XREAD loops (1,000 entries per read, each decoding the JSON, filtering by site and parsing the
matching events, as a subscriber would); (2) as many SubscribeBatches streams on one control-plane
child (--max-items, --max-delay-ms). Clients run as asyncio tasks in --procs processes on the same
machine. Latency = send → receipt in the client, per item; delivered = items received / items
the subscribers' filters match; replica CPU = the control plane's CPU time / wall time over the
run (100 % = one core), and the client processes' likewise. Runs on the bench stack
(bench/benchenv.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import multiprocessing as mp
import os
import time
import uuid
from array import array
from datetime import UTC, datetime

import numpy as np
from benchenv import bench_settings, bench_stack

SCENARIOS = {
    "broadcast": {"subscribers": 100, "sites": 1},  # target: >= 99.9 % delivered, p99 <= 100 ms (stretch 50)
    "filtered": {"subscribers": 1000, "sites": 10},  # target: >= 99.9 % delivered
}
STREAMS_PER_CHANNEL = 50  # gRPC clients: one HTTP/2 connection per this many subscriptions


def _payload(camera_id: str, site_id: str) -> dict:
    from google.protobuf import timestamp_pb2

    from vigil.api.v1 import common_pb2, event_pb2

    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(time.time_ns())
    event = event_pb2.Event(id=str(uuid.uuid4()), camera_id=camera_id, site_id=site_id,
                            event_type=common_pb2.EVENT_TYPE_HUMAN_DETECTED, confidence=0.9, track_id="t",
                            event_time=ts, frame_width=1280, frame_height=720)
    return {"kind": "event", "camera_id": camera_id, "site_id": site_id, "event_type": "human_detected",
            "person_ids": [], "message": base64.b64encode(event.SerializeToString()).decode()}


async def _produce(redis_url: str, sites: list[tuple[str, str]], rate: float, seconds: float, label: str
                   ) -> dict[str, int]:
    """Append events round-robin over the (site, camera) pairs; the number sent per site."""
    import redis.asyncio as aioredis

    from vigil.storage.bus import EVENTS_STREAM

    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    tick = 0.01
    sent = dict.fromkeys((site for site, _ in sites), 0)
    total, carry, n, t0 = 0, 0.0, 0, time.monotonic()
    next_report = t0 + 5
    while time.monotonic() - t0 < seconds:
        carry += rate * tick
        k, carry = int(carry), carry - int(carry)
        if k:
            pipe = client.pipeline(transaction=False)
            for _ in range(k):
                site, camera = sites[total % len(sites)]
                pipe.xadd(EVENTS_STREAM, {"data": json.dumps(_payload(camera, site))}, maxlen=200_000,
                          approximate=True)
                sent[site] += 1
                total += 1
            await pipe.execute()
        n += 1
        if time.monotonic() >= next_report:
            print(f"  {label}: {total:,} events sent ({time.monotonic() - t0:.0f} s)", flush=True)
            next_report += 5
        delay = t0 + n * tick - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    await client.aclose()
    return sent


def _client_proc(mode: str, options: dict, site_ids: list[str], ready, out) -> None:
    asyncio.run(_clients(mode, options, site_ids, ready, out))


async def _clients(mode: str, options: dict, site_ids: list[str], ready, out) -> None:  # noqa: C901
    """This process's subscribers (one per entry of site_ids, filtered to that site) until told to stop;
    puts (latencies in ns, those of each batch's newest item, CPU seconds while measuring) on `out`."""
    import grpc

    from vigil.api.v1 import event_pb2, event_pb2_grpc

    latencies = array("q")
    newest = array("q")  # per batch: its last item's latency (the part that batching does not add)
    started: list[int] = []
    stop_at: list[float | None] = [None]

    def stopped() -> bool:
        return stop_at[0] is not None and time.monotonic() > stop_at[0]

    async def batches_one(stub, site_id: str) -> None:
        request = event_pb2.SubscribeBatchesRequest(filter=event_pb2.SubscribeRequest(site_ids=[site_id]),
                                                    max_items=options["max_items"],
                                                    max_delay_ms=options["max_delay_ms"])
        call = stub.SubscribeBatches(request, metadata=(("authorization", f"Bearer {options['key']}"),))
        await call.read()  # the first keepalive: joined
        started.append(1)
        while (batch := await call.read()) is not grpc.aio.EOF:
            now = time.time_ns()
            for item in batch.items:
                t = item.event.event_time
                latencies.append(now - (t.seconds * 1_000_000_000 + t.nanos))
            if batch.items:
                newest.append(latencies[-1])
            if stopped():
                call.cancel()
                return

    async def redis_one(client, site_id: str) -> None:
        from vigil.storage.bus import EVENTS_STREAM

        position = "$"
        started.append(1)
        while not stopped():
            response = await client.xread({EVENTS_STREAM: position}, count=1000, block=1000)
            now = time.time_ns()
            for _stream, entries in response or []:
                for entry_id, fields in entries:
                    position = entry_id
                    payload = json.loads(fields["data"])
                    if payload["site_id"] != site_id:
                        continue
                    t = event_pb2.Event.FromString(base64.b64decode(payload["message"])).event_time
                    latencies.append(now - (t.seconds * 1_000_000_000 + t.nanos))

    if mode == "batches":
        channels = [grpc.aio.insecure_channel(options["target"], options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(0, len(site_ids), STREAMS_PER_CHANNEL)]
        stubs = [event_pb2_grpc.EventServiceStub(c) for c in channels]
        tasks = [asyncio.create_task(batches_one(stubs[i // STREAMS_PER_CHANNEL], s)) for i, s in enumerate(site_ids)]
    else:
        import redis.asyncio as aioredis

        clients = [aioredis.Redis.from_url(options["redis_url"], decode_responses=True) for _ in site_ids]
        tasks = [asyncio.create_task(redis_one(c, s)) for c, s in zip(clients, site_ids)]
    async with asyncio.timeout(180):
        while len(started) < len(site_ids):
            failed = [t for t in tasks if t.done() and t.exception()]
            if failed:
                raise failed[0].exception()
            await asyncio.sleep(0.05)
    gc.collect()
    gc.freeze()  # as the control plane does (control/server.py): no full collection pauses the measuring client
    ready.set()
    cpu0 = time.process_time()
    await asyncio.sleep(options["seconds"] + options["drain_s"])
    stop_at[0] = time.monotonic()
    await asyncio.wait(tasks, timeout=5)
    for t in tasks:
        t.cancel()
    out.put((np.frombuffer(latencies, dtype=np.int64).copy(), np.frombuffer(newest, dtype=np.int64).copy(),
             time.process_time() - cpu0))


def _cpu_seconds(pid: int) -> float:
    import psutil

    process = psutil.Process(pid)
    times = [process.cpu_times()] + [c.cpu_times() for c in process.children(recursive=True)]
    return sum(t.user + t.system for t in times)


def run_mode(mode: str, scenario: str, args, options: dict, sites: list[tuple[str, str]], control_pid: int) -> dict:
    subscribers = SCENARIOS[scenario]["subscribers"]
    site_of = [sites[i % len(sites)][0] for i in range(subscribers)]
    label = f"{scenario}/{'raw Redis XREAD' if mode == 'redis' else 'SubscribeBatches'}"
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    shares = [site_of[i::args.procs] for i in range(args.procs)]
    readies = [ctx.Event() for _ in shares]
    procs = [ctx.Process(target=_client_proc, args=(mode, options, share, ready, out))
             for share, ready in zip(shares, readies)]
    print(f"  {label}: starting {subscribers} subscribers in {args.procs} processes", flush=True)
    for p in procs:
        p.start()
    for ready, p in zip(readies, procs):
        while not ready.wait(1):
            if not p.is_alive():
                raise SystemExit(f"{label}: a client process exited while subscribing (code {p.exitcode})")
    time.sleep(0.5)
    load_before = os.getloadavg()[0]
    cpu0, wall0 = _cpu_seconds(control_pid), time.monotonic()
    sent = asyncio.run(_produce(options["redis_url"], sites, args.rate, args.seconds, label))
    reports = [out.get(timeout=120) for _ in procs]
    wall = time.monotonic() - wall0
    cpu = (_cpu_seconds(control_pid) - cpu0) / wall
    arrays = [latencies for latencies, _, _ in reports]
    newest = np.concatenate([n for _, n, _ in reports]) / 1e6
    clients_cpu = sum(cpu_s for _, _, cpu_s in reports) / (args.seconds + options["drain_s"])
    for p in procs:
        p.join(10)
    lat = np.concatenate(arrays) / 1e6 if arrays else np.zeros(0)
    expected = sum(sent[site] for site in site_of)
    result = {
        "mode": mode,
        "subscribers": subscribers,
        "sent": sum(sent.values()),
        "expected": expected,
        "delivered": int(lat.size),
        "delivered_pct": round(100 * lat.size / max(expected, 1), 3),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
        "max_ms": round(float(lat.max()), 1) if lat.size else None,
        # batches only: the latency of each batch's newest item, i.e. without the wait for the batch to fill
        "batches": int(newest.size),
        "newest_item_p50_ms": round(float(np.percentile(newest, 50)), 1) if newest.size else None,
        "newest_item_p99_ms": round(float(np.percentile(newest, 99)), 1) if newest.size else None,
        "deliveries_per_s": round(lat.size / args.seconds),
        "replica_cpu_pct": round(100 * cpu, 1) if mode == "batches" else None,
        "clients_cpu_pct": round(100 * clients_cpu, 1),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(f"  {label}: {result['delivered_pct']:.3f} % delivered, p50 {result['p50_ms']} ms, "
          f"p99 {result['p99_ms']} ms (newest item of a batch: p50 {result['newest_item_p50_ms']}, p99 "
          f"{result['newest_item_p99_ms']}), replica CPU {result['replica_cpu_pct']} %, clients' CPU "
          f"{result['clients_cpu_pct']} %, load {result['load_avg_1m']}", flush=True)
    return result


def _verdict(scenario: str, r: dict) -> dict:
    delivered = r["delivered_pct"] >= 99.9
    if scenario == "broadcast":
        p99 = r["p99_ms"] is not None and r["p99_ms"] <= 100
        stretch = r["p99_ms"] is not None and r["p99_ms"] <= 50
        return {"delivered_99_9": delivered, "p99_le_100ms": p99, "p99_le_50ms_stretch": stretch}
    return {"delivered_99_9": delivered}


def _print_table(results: dict) -> None:
    print(f"\n{'scenario':<10} {'path':<26} {'delivered':>10} {'p50 ms':>8} {'p99 ms':>8} {'deliveries/s':>13} "
          f"{'replica CPU':>12}")
    for scenario, row in results.items():
        for key, name in (("baseline", "raw Redis XREAD"), ("batches", "SubscribeBatches")):
            r = row.get(key)
            if r is None:
                continue
            cpu = f"{r['replica_cpu_pct']:.0f} %" if r["replica_cpu_pct"] is not None else ""
            print(f"{scenario:<10} {name:<26} {r['delivered_pct']:>9.3f}% {r['p50_ms'] or 0:>8.1f} "
                  f"{r['p99_ms'] or 0:>8.1f} {r['deliveries_per_s']:>13,} {cpu:>12}")
        if "targets_met" in row:
            print(f"{scenario:<10} targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}"
                                                        for k, v in row["targets_met"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="broadcast,filtered", help=f"of {', '.join(SCENARIOS)}")
    parser.add_argument("--rate", type=float, default=2000, help="events per second")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--procs", type=int, default=4, help="client processes per path")
    parser.add_argument("--subscribers", type=int, default=None, help="override the scenarios' subscriber counts "
                        "(smoke runs)")
    parser.add_argument("--max-items", type=int, default=256, help="SubscribeBatchesRequest.max_items")
    parser.add_argument("--max-delay-ms", type=int, default=50, help="SubscribeBatchesRequest.max_delay_ms")
    parser.add_argument("--modes", default="redis,batches", help="which paths to run (redis, batches)")
    parser.add_argument("--json", default=None, help="write the figures here")
    parser.add_argument("--profile", default=None,
                        help="py-spy record the control plane during the SubscribeBatches runs into this file "
                             "(raw collapsed stacks); needs py-spy in the venv")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    if args.subscribers:
        for name in scenarios:
            SCENARIOS[name]["subscribers"] = args.subscribers
    modes = args.modes.split(",")
    settings = bench_settings()
    stack = bench_stack(settings)
    from vigil.loadtest.common import ControlPlane, create_fixtures

    fixtures = asyncio.run(create_fixtures(settings, 1))
    sites = [(str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(max(SCENARIOS[s]["sites"] for s in scenarios))]
    control = ControlPlane(settings, settings.resolved_state_dir() / "logs" / "bench-feed-control.log")
    options = {"target": control.target, "key": fixtures.admin_key, "redis_url": stack.endpoints.redis_url,
               "seconds": args.seconds, "drain_s": 5.0, "max_items": args.max_items,
               "max_delay_ms": args.max_delay_ms}
    load_start = os.getloadavg()
    results: dict = {}
    try:
        asyncio.run(control.start())
        spy = None
        if args.profile and "batches" in modes:
            import subprocess
            import sys

            spy = subprocess.Popen([str(__import__("pathlib").Path(sys.executable).parent / "py-spy"), "record",
                                    "--pid", str(control.pid), "--format", "raw", "--rate", "50",
                                    "--output", args.profile, "--nonblocking", "--idle"])
        for scenario in scenarios:
            shape = SCENARIOS[scenario]
            print(f"{scenario}: {shape['subscribers']} subscribers, {shape['sites']} site(s), {args.rate:g} events/s, "
                  f"{args.seconds:g} s; batches of <= {args.max_items} items / {args.max_delay_ms} ms", flush=True)
            row = {**shape, "rate": args.rate}
            for mode in modes:
                row["baseline" if mode == "redis" else "batches"] = run_mode(
                    mode, scenario, args, options, sites[:shape["sites"]], control.pid)
            if "batches" in row:
                row["targets_met"] = _verdict(scenario, row["batches"])
            results[scenario] = row
        if spy is not None:
            import signal

            spy.send_signal(signal.SIGINT)
            spy.wait(30)
    finally:
        control.stop()

    _print_table(results)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"date": datetime.now(UTC).isoformat(timespec="seconds"),
                       "load_avg_at_start": [round(x, 2) for x in load_start],
                       "args": vars(args), "scenarios": results}, fh, indent=2)


if __name__ == "__main__":
    main()
