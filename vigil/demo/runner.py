"""The demo from start to summary. Setup runs step by step with a spinner; then the control
plane and the node run as children while the feed is shown live; the embedded stack is left
running at the end (the next run starts in seconds)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from vigil.api.v1 import common_pb2, event_pb2, node_pb2
from vigil.demo.feed import Feed, StreamTally, enum_name, footer
from vigil.demo.scenario import SITE, WATCHLIST, Api, Scenario, configure
from vigil.demo.setup import SetupError, create_keys, sample_videos, serve_models, start_stack
from vigil.logs import get_logger
from vigil.settings import VigilSettings
from vigil.stack.process import Child, ChildError, child_env, free_port, port_is_free, vigil_argv

log = get_logger("vigil.demo")

NODE_NAME = "demo-node"
NODE_CAPACITY = 4
CONTROL_START_TIMEOUT_S = 60.0
NODE_REGISTER_TIMEOUT_S = 120.0
ASSIGN_TIMEOUT_S = 60.0
QUIET_AFTER_END_S = 4.0  # the last batches of an ended stream reach the feed within this
MAX_WAIT_AFTER_END_S = 15.0
POLL_S = 1.0


@dataclass(frozen=True)
class Options:
    loop: bool = False
    speed: str = "native"  # native | max
    media_dir: Path | None = None


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why and what to do."""


def configure_file_logging(log_file: Path, level: str) -> None:
    """Structured JSON logs of the demo process go to a file: the terminal is for the person."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    logging.basicConfig(level=level.upper(), stream=out, format="%(message)s", force=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_: structlog.PrintLogger(out),
        cache_logger_on_first_use=False,
    )


class Steps:
    """One line per setup step: a spinner while it runs, then ✓ and its duration."""

    def __init__(self, console: Console):
        self.console = console

    @contextmanager
    def step(self, doing: str):
        started = time.monotonic()
        result = {"done": doing}
        with self.console.status(f"{doing}…"):
            try:
                yield result
            except BaseException:
                self.console.print(f"[red]✗[/red] {doing} [dim]({time.monotonic() - started:.1f} s)[/dim]")
                raise
        self.console.print(f"[green]✓[/green] {result['done']} [dim]({time.monotonic() - started:.1f} s)[/dim]")


def run(settings: VigilSettings, options: Options, console: Console) -> int:
    state_dir = settings.resolved_state_dir()
    logs = state_dir / "logs"
    configure_file_logging(logs / "demo.log", settings.log_level)
    console.print(f"[bold]Vigil demo[/bold] · state in {state_dir} · logs in {logs}")
    steps = Steps(console)
    children: list[Child] = []
    stack = None
    try:
        with steps.step("starting the embedded stack") as r:
            stack = start_stack(settings)
            r["done"] = "stack ready: " + ", ".join(f"{s.name} {urlsplit(s.address).netloc or s.address}"
                                                     for s in stack.status())
        with steps.step("building the sample videos") as r:
            videos = sample_videos(options.media_dir or state_dir / "media")
            r["done"] = "sample videos: " + ", ".join(
                f"{videos[n].path.name} ({videos[n].duration_s:.0f} s, {videos[n].fps:g} fps)"
                for n in ("people_walk", "people_street"))
        with steps.step("preparing the face models") as r:
            models = serve_models(stack, settings, videos["people_walk"].enrol["obama"])
            r["done"] = ("face models served by Triton: " + ", ".join(p.version_string for p in models.prepared)
                         + (" (Triton restarted to bind them)" if models.restarted_triton else ""))
        with steps.step("creating API keys") as r:
            keys = create_keys(stack)
            r["done"] = (f"API keys {keys.admin_prefix}… (admin, the demo) and {keys.node_prefix}… (api_client, "
                         f"the node)" + (f"; {keys.revoked} of earlier runs revoked" if keys.revoked else ""))
        return asyncio.run(_live(settings, options, console, steps, children, videos, models.embedder.version_string,
                                 keys))
    except (SetupError, DemoError, ChildError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        log.error("demo failed", error=str(exc))
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted during set-up[/yellow]")
        return 130
    finally:
        for child in reversed(children):
            if child.exited() is None:
                console.print(f"stopping the {child.name}… {child.stop()}")
        if stack is not None:
            console.print("[dim]The embedded stack keeps running (the next run starts faster); "
                          "stop it with `make stack-down` (or `.venv/bin/vigil stack down`).[/dim]")


def _control_port(settings: VigilSettings, console: Console) -> int:
    host, port = settings.control.host, settings.control.port
    if port_is_free(host, port):
        return port
    other = free_port(host)
    console.print(f"[yellow]port {port} on {host} is taken (another control plane?); the demo's control plane "
                  f"uses {other} instead (set VIGIL_CONTROL__PORT to choose)[/yellow]")
    return other


async def _wait_serving(target: str, child: Child) -> None:
    deadline = time.monotonic() + CONTROL_START_TIMEOUT_S
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if child.exited() is not None:
                raise child.failure(f"the control plane exited with code {child.exited()} while starting")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise child.failure(f"the control plane is not SERVING on {target} after "
                                    f"{CONTROL_START_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.3)


async def _find_node(api: Api, since: datetime) -> node_pb2.Node | None:
    response = await api.call(api.nodes.ListNodes, node_pb2.ListNodesRequest(
        page_size=1000, states=[node_pb2.NODE_STATE_ACTIVE]))
    ours = [n for n in response.nodes if n.name == NODE_NAME and n.register_time.ToDatetime(UTC) >= since]
    return max(ours, key=lambda n: n.register_time.ToDatetime(UTC), default=None)


async def _live(settings: VigilSettings, options: Options, console: Console, steps: Steps, children: list[Child],
                videos, model_version: str, keys) -> int:
    host = settings.control.host
    port = _control_port(settings, console)
    target = f"{host}:{port}"
    state_dir = settings.resolved_state_dir()
    control = Child("control plane", vigil_argv("control", "serve"),
                    child_env(VIGIL_CONTROL__HOST=host, VIGIL_CONTROL__PORT=str(port)),
                    state_dir / "logs" / "demo-control.log")
    with steps.step(f"starting the control plane on {target}") as r:
        children.append(control)
        control.start()
        await _wait_serving(target, control)
        r["done"] = f"control plane serving on {target} (pid {control.pid}, log {control.log_file.name})"

    async with grpc.aio.insecure_channel(target) as channel:
        api = Api(channel, keys.admin)
        with steps.step("configuring cameras, zones, watchlist and rules through the gRPC API") as r:
            try:
                scenario = await configure(api, videos, loop=options.loop, speed=options.speed,
                                           model_version=model_version)
            except grpc.aio.AioRpcError as exc:
                raise DemoError(f"configuring the demo through the API failed: {exc.code().name}: {exc.details()}. "
                                f"See {control.log_file}.") from exc
            made = f"{len(scenario.created)} objects created" if scenario.created else "reused from an earlier run"
            r["done"] = (f"site {SITE!r} configured ({made}): cameras "
                         f"{', '.join(repr(c.name) for c in scenario.cameras.values())}; restricted zones "
                         f"{', '.join(repr(z.name) for z in scenario.zones.values())}; {scenario.person.name} on "
                         f"watchlist {WATCHLIST!r}; {len(scenario.rules)} alert rules")
            log.info("scenario configured", created=scenario.created, rules=scenario.rules)
        if scenario.enrolled_quality is not None:
            console.print(f"  enrolled {scenario.person.name} from obama.jpg (face quality "
                          f"{scenario.enrolled_quality:.2f}); no video frame shows that photo")

        feed = Feed(api, scenario, links=console.is_terminal)
        # subscribe before the node starts, so that the first events are not missed
        call = api.events.SubscribeBatches(event_pb2.SubscribeBatchesRequest(
            filter=event_pb2.SubscribeRequest(camera_ids=list(scenario.camera_names()))), metadata=api.metadata)
        node = Child("pipeline node", vigil_argv("node", "run", "--name", NODE_NAME, "--capacity", str(NODE_CAPACITY),
                                                 "--backend", "portable"),
                     child_env(VIGIL_NODE__API_KEY=keys.node, VIGIL_NODE__CONTROL_URL=target),
                     state_dir / "logs" / "demo-node.log")
        since = datetime.now(UTC).replace(microsecond=0)
        with steps.step(f"starting pipeline node {NODE_NAME} (portable backend)") as r:
            children.append(node)
            node.start()
            deadline = time.monotonic() + NODE_REGISTER_TIMEOUT_S
            while (found := await _find_node(api, since)) is None:
                if node.exited() is not None:
                    raise node.failure(f"the pipeline node exited with code {node.exited()} before registering")
                if time.monotonic() > deadline:
                    raise node.failure(f"the pipeline node did not register within {NODE_REGISTER_TIMEOUT_S:.0f} s")
                await asyncio.sleep(0.5)
            r["done"] = f"pipeline node {NODE_NAME} registered (pid {node.pid}, log {node.log_file.name})"
        return await _watch(console, api, feed, call, found, scenario, videos, options, control, node, state_dir)


async def _watch(console: Console, api: Api, feed: Feed, call, registered_node: node_pb2.Node, scenario: Scenario,  # noqa: C901
                 videos, options: Options, control: Child, node: Child, state_dir: Path) -> int:
    node_id, registered = registered_node.id, registered_node.register_time.ToDatetime()
    streams = {c.id: StreamTally(c.name, videos[key].frames) for key, c in scenario.cameras.items()}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    started = time.monotonic()
    latest: dict[str, node_pb2.Node | None] = {"node": None}
    ended_at: float | None = None
    reason = "interrupted (Ctrl+C)"
    failure: str | None = None

    console.print()
    console.print(f"[bold]{'time':8}  {'camera':16}  {'what':52}  track  snapshot[/bold]")

    with Live(footer(None, streams, feed.tally, 0, options.loop), console=console, transient=True,
              refresh_per_second=4, redirect_stdout=False, redirect_stderr=False) as live:

        async def show_feed() -> None:
            try:
                async for batch in call:  # a keepalive is an empty batch
                    for response in batch.items:
                        line = await feed.describe(response)
                        if line is not None:
                            live.console.print(line)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.CANCELLED:
                    log.warning("feed ended", code=exc.code().name, details=exc.details())

        feed_task = asyncio.create_task(show_feed())
        try:
            while not stop.is_set():
                for child in (control, node):
                    if child.exited() is not None:
                        failure = f"the {child.name} exited with code {child.exited()}"
                        raise child.failure(failure)
                try:
                    current = (await api.call(api.nodes.GetNode, node_pb2.GetNodeRequest(id=node_id), timeout=5)).node
                    latest["node"] = current
                    # a node keeps its id across runs: until its first heartbeat after this run's
                    # registration, GetNode still shows the streams of the previous run
                    if current.last_heartbeat_time.ToDatetime() >= registered:
                        _update_streams(streams, current)
                except grpc.aio.AioRpcError as exc:
                    log.warning("GetNode failed", code=exc.code().name, details=exc.details())
                now = time.monotonic()
                if ended_at is None and not options.loop and _all_ended(streams):
                    ended_at = now
                if ended_at is not None and (now - feed.tally.last_item >= QUIET_AFTER_END_S
                                             or now - ended_at >= MAX_WAIT_AFTER_END_S):
                    reason = "both videos ended"
                    break
                if ended_at is None and now - started > ASSIGN_TIMEOUT_S and latest["node"] is not None \
                        and not any(s.state for s in streams.values()):
                    raise DemoError(f"no stream was assigned to {NODE_NAME} within {ASSIGN_TIMEOUT_S:.0f} s. "
                                    f"See {control.log_file} and {node.log_file}.")
                live.update(footer(latest["node"], streams, feed.tally, now - started, options.loop))
                try:
                    await asyncio.wait_for(stop.wait(), POLL_S)
                except TimeoutError:
                    pass
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)
            # the node first, so that it publishes what it holds while the control plane still listens
            live.update(footer(latest["node"], streams, feed.tally, time.monotonic() - started, options.loop))
            live.console.print(f"[dim]{reason if failure is None else failure}; stopping the pipeline node…[/dim]")
            node_end = await asyncio.to_thread(node.stop)
            await asyncio.sleep(0.5)  # the feed delivers what the node's last batches produced
            call.cancel()
            await asyncio.gather(feed_task, return_exceptions=True)
            control_end = await asyncio.to_thread(control.stop)
            log.info("children stopped", node=node_end, control=control_end, reason=reason)
    console.print(f"pipeline node {node_end}; control plane {control_end}")
    summary = _summary(feed, streams, time.monotonic() - started, reason, options)
    _print_summary(console, summary)
    path = state_dir / "logs" / "demo-summary.json"
    path.write_text(json.dumps(summary, indent=2))
    console.print(f"[dim]summary also written to {path}[/dim]")
    return 0


def _update_streams(streams: dict[str, StreamTally], node: node_pb2.Node) -> None:
    now = time.monotonic()
    for stats in node.streams:
        s = streams.get(stats.camera_id)
        if s is None:
            continue
        if s.last_poll is not None and stats.state == node_pb2.STREAM_STATE_RUNNING:
            s.processed_estimate += stats.processed_fps * (now - s.last_poll)
        s.last_poll = now
        s.state, s.processed_fps, s.decode_fps = stats.state, stats.processed_fps, stats.decode_fps
        s.active_tracks, s.dropped, s.reconnects, s.last_error = (
            stats.active_tracks, stats.dropped_frames, stats.reconnects, stats.last_error)
        if stats.state == node_pb2.STREAM_STATE_RUNNING and s.running_since is None:
            s.running_since = now
        if stats.state in (node_pb2.STREAM_STATE_STOPPED, node_pb2.STREAM_STATE_FAILED) and s.stopped_at is None:
            s.stopped_at = now


def _all_ended(streams: dict[str, StreamTally]) -> bool:
    return all(s.stopped_at is not None for s in streams.values())


def _summary(feed: Feed, streams: dict[str, StreamTally], elapsed_s: float, reason: str, options: Options) -> dict:
    t = feed.tally
    per_stream = []
    for s in streams.values():
        finished = s.state == node_pb2.STREAM_STATE_STOPPED and not options.loop
        # a file played to its end was decoded whole; what was not dropped was processed
        frames = max(0, s.frames_in_file - s.dropped) if finished else round(s.processed_estimate)
        seconds = (s.stopped_at or time.monotonic()) - s.running_since if s.running_since else 0.0
        per_stream.append({
            "camera": s.camera, "state": enum_name(node_pb2.StreamState, s.state, "STREAM_STATE_") if s.state else
            "never started", "frames_processed": frames, "frames_exact": finished, "dropped_frames": s.dropped,
            "fps": round(frames / seconds, 1) if seconds > 0 else 0.0, "reconnects": s.reconnects,
            "last_error": s.last_error})
    return {
        "ended": reason,
        "elapsed_s": round(elapsed_s, 1),
        "events": {enum_name(common_pb2.EventType, k, "EVENT_TYPE_"): v for k, v in sorted(t.events.items())},
        "activities": {
            enum_name(common_pb2.ActivityType, k, "ACTIVITY_TYPE_"): v for k, v in sorted(t.activities.items())
        },
        "alerts": [{"severity": sev, "rule": rule, "message": msg} for sev, rule, msg in t.alerts],
        "identities": [
            {
                "name": i.name,
                "tracks": len(i.tracks),
                "best_similarity": round(i.best_similarity, 3),
                "snapshot_url": i.snapshot,
            }
            for i in t.identities().values()
        ],
        "unknown_clusters": {label: len(tracks) for label, tracks in sorted(t.clusters().items())},
        "streams": per_stream,
    }


def _print_summary(console: Console, s: dict) -> None:
    console.print()
    console.print(f"[bold]Summary[/bold] — {s['ended']} after {s['elapsed_s']:.0f} s")
    events = ", ".join(f"{n} {k}" for k, n in s["events"].items()) or "none"
    activities = ", ".join(f"{n} {k}" for k, n in s["activities"].items()) or "none"
    console.print(f"  events: {events}")
    console.print(f"  suspicious activities: {activities}")
    by_rule: dict[str, int] = {}
    for a in s["alerts"]:
        by_rule[a["rule"]] = by_rule.get(a["rule"], 0) + 1
    console.print(f"  alerts: {len(s['alerts'])}" + (" (" + ", ".join(f"{n} {escape(r)}" for r, n in by_rule.items())
                                                      + ")" if by_rule else ""))
    if s["identities"]:
        for i in s["identities"]:
            console.print(
                f"  recognised: [green]{escape(i['name'])}[/green] on {i['tracks']} track(s), best similarity "
                f"{i['best_similarity']:.2f}"
            )
    else:
        console.print("  recognised: nobody")
    clusters = ", ".join(f"{escape(k)} ({n} track{'s' if n != 1 else ''})" for k, n in s["unknown_clusters"].items())
    console.print(f"  unknown faces: {len(s['unknown_clusters'])} cluster(s)" + (f": {clusters}" if clusters else ""))
    table = Table("stream", "state", "frames processed", "dropped", "fps", title=None, box=None, padding=(0, 2))
    for st in s["streams"]:
        frames = str(st["frames_processed"]) if st["frames_exact"] else f"≈{st['frames_processed']}"
        table.add_row(
            escape(st["camera"]),
            st["state"] + (f" ({escape(st['last_error'][:60])})" if st["last_error"] else ""),
            frames,
            str(st["dropped_frames"]),
            f"{st['fps']:.1f}",
        )
    console.print(table)
    if sys.stdout.isatty() and s["identities"]:
        for i in s["identities"]:
            if i["snapshot_url"]:
                console.print(f"  [link={i['snapshot_url']}]best snapshot of {escape(i['name'])}[/link]")
