"""Event-feed delivery latency with many concurrent subscribers, against raw Redis reads of the
same stream by as many readers, in the same run.

    .venv/bin/python bench/feed.py [--subscribers 100] [--rate 2000] [--seconds 20] [--procs 2]

A producer appends feed messages (events, as the outbox relay writes them) to the Redis stream at
--rate per second, each stamped with its send time as event_time. (1) a control plane (child
process) serves EventService.Subscribe to --subscribers gRPC streams spread over --procs client
processes; (2) baseline: the same number of plain Redis XREAD loops over the same processes, each
decoding the message as a subscriber does. Latency = send → arrival in the client. Both figures
include the client processes' own CPU on the same 2 cores; the ratio is what the service adds.
Runs on the bench stack (bench/benchenv.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import time
import uuid

import numpy as np
from benchenv import bench_settings, bench_stack


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


async def _produce(redis_url: str, camera_id: str, site_id: str, rate: float, seconds: float) -> int:
    import redis.asyncio as aioredis

    from vigil.storage.bus import EVENTS_STREAM

    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    tick = 0.01
    per_tick = rate * tick
    sent, carry = 0, 0.0
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        carry += per_tick
        k, carry = int(carry), carry - int(carry)
        if k:
            pipe = client.pipeline(transaction=False)
            for _ in range(k):
                pipe.xadd(EVENTS_STREAM, {"data": json.dumps(_payload(camera_id, site_id))}, maxlen=200_000,
                          approximate=True)
            await pipe.execute()
            sent += k
        n += 1
        delay = t0 + n * tick - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    await client.aclose()
    return sent


def _client_proc(mode: str, target: str, key: str, redis_url: str, camera_id: str, count: int, seconds: float,
                 ready, out) -> None:
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    asyncio.run(_clients(mode, target, key, redis_url, camera_id, count, seconds, ready, out))


async def _clients(mode, target, key, redis_url, camera_id, count, seconds, ready, out) -> None:  # noqa: C901
    from vigil.api.v1 import event_pb2, event_pb2_grpc

    latencies: list[float] = []
    received = [0]
    stop_at = [None]

    async def grpc_one(stub) -> None:
        call = stub.Subscribe(event_pb2.SubscribeRequest(camera_ids=[camera_id]),
                              metadata=(("authorization", f"Bearer {key}"),))
        await call.initial_metadata()
        started.append(1)
        async for response in call:
            if response.WhichOneof("item") == "event":
                latencies.append(time.time() - response.event.event_time.ToNanoseconds() / 1e9)
                received[0] += 1
            if stop_at[0] and time.monotonic() > stop_at[0]:
                call.cancel()
                return

    async def redis_one(client) -> None:
        from vigil.storage.bus import EVENTS_STREAM

        position = "$"
        started.append(1)
        while not (stop_at[0] and time.monotonic() > stop_at[0]):
            response = await client.xread({EVENTS_STREAM: position}, count=100, block=1000)
            for _stream, entries in response or []:
                for entry_id, fields in entries:
                    position = entry_id
                    payload = json.loads(fields["data"])
                    if payload["camera_id"] != camera_id:
                        continue
                    event = event_pb2.Event.FromString(base64.b64decode(payload["message"]))
                    latencies.append(time.time() - event.event_time.ToNanoseconds() / 1e9)
                    received[0] += 1

    started: list[int] = []
    if mode == "grpc":
        import grpc

        channel = grpc.aio.insecure_channel(target)
        stub = event_pb2_grpc.EventServiceStub(channel)
        tasks = [asyncio.create_task(grpc_one(stub)) for _ in range(count)]
    else:
        import redis.asyncio as aioredis

        clients = [aioredis.Redis.from_url(redis_url, decode_responses=True) for _ in range(count)]
        tasks = [asyncio.create_task(redis_one(c)) for c in clients]
    while len(started) < count:
        await asyncio.sleep(0.05)
    ready.set()
    await asyncio.sleep(seconds + 2)
    stop_at[0] = time.monotonic()
    await asyncio.wait(tasks, timeout=5)
    for t in tasks:
        t.cancel()
    out.put(np.asarray(latencies, dtype=np.float64))


def run_mode(mode: str, args, target: str, key: str, redis_url: str, camera_id: str, site_id: str) -> dict:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    per = [args.subscribers // args.procs + (1 if i < args.subscribers % args.procs else 0) for i in range(args.procs)]
    readies = [ctx.Event() for _ in per]
    procs = [ctx.Process(target=_client_proc, args=(mode, target, key, redis_url, camera_id, n, args.seconds, r, out))
             for n, r in zip(per, readies)]
    for p in procs:
        p.start()
    for r in readies:
        r.wait(60)
    time.sleep(0.5)
    sent = asyncio.run(_produce(redis_url, camera_id, site_id, args.rate, args.seconds))
    arrays = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    lat = np.concatenate(arrays) if arrays else np.zeros(0)
    expected = sent * args.subscribers
    return {
        "mode": mode,
        "sent": sent,
        "delivered": int(lat.size),
        "delivered_ratio": round(lat.size / max(expected, 1), 4),
        "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)) * 1000, 1) if lat.size else None,
        "deliveries_per_s": round(lat.size / args.seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--json", default=None)
    parser.add_argument("--modes", default="redis,grpc", help="which paths to run (redis, grpc)")
    parser.add_argument("--profile", default=None,
                        help="py-spy record the control plane during the Subscribe run into this file (raw "
                             "collapsed stacks); needs py-spy in the venv")
    args = parser.parse_args()
    settings = bench_settings()
    stack = bench_stack(settings)
    from vigil.loadtest.common import ControlPlane, create_fixtures

    fixtures = asyncio.run(create_fixtures(settings, 1))
    redis_url = stack.endpoints.redis_url
    control = ControlPlane(settings, settings.resolved_state_dir() / "logs" / "bench-feed-control.log")
    try:
        asyncio.run(control.start())
        print(f"feed: {args.subscribers} subscribers over {args.procs} client processes, {args.rate:g} events/s, "
              f"{args.seconds:g} s")
        modes = args.modes.split(",")
        empty = {"delivered": 0, "delivered_ratio": 0.0, "p50_ms": None, "p99_ms": None, "deliveries_per_s": 0}
        base = run_mode("redis", args, control.target, fixtures.admin_key, redis_url, fixtures.camera_ids[0],
                        fixtures.site_id) if "redis" in modes else empty
        spy = None
        if args.profile and "grpc" in modes:
            import subprocess
            import sys

            spy = subprocess.Popen([str(__import__("pathlib").Path(sys.executable).parent / "py-spy"), "record",
                                    "--pid", str(control.pid), "--format", "raw", "--rate", "50",
                                    "--output", args.profile, "--nonblocking"])
        grpc_r = run_mode("grpc", args, control.target, fixtures.admin_key, redis_url, fixtures.camera_ids[0],
                          fixtures.site_id) if "grpc" in modes else empty
        if spy is not None:
            import signal

            spy.send_signal(signal.SIGINT)
            spy.wait(30)
    finally:
        control.stop()
    print(f"{'path':<28} {'delivered':>10} {'of sent':>8} {'p50 ms':>8} {'p99 ms':>8} {'deliveries/s':>13}")
    for r, name in ((base, "raw Redis XREAD (baseline)"), (grpc_r, "EventService.Subscribe")):
        print(f"{name:<28} {r['delivered']:>10} {r['delivered_ratio']:>8.3f} {r['p50_ms'] or 0:>8.1f} "
              f"{r['p99_ms'] or 0:>8.1f} {r['deliveries_per_s']:>13,}")
    ratio = (grpc_r["p99_ms"] or 0) / max(base["p99_ms"] or 1e-9, 1e-9)
    met = grpc_r["p99_ms"] is not None and grpc_r["p99_ms"] <= 50 and grpc_r["delivered_ratio"] > 0.99
    print(f"p99 ratio Subscribe / raw Redis: {ratio:.2f}; target p99 <= 50 ms: {'met' if met else 'MISSED'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"baseline": base, "subscribe": grpc_r, "p99_ratio": ratio, "args": vars(args)}, fh, indent=2)


if __name__ == "__main__":
    main()
