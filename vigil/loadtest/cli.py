"""`vigil loadtest` commands: live progress (rich), a final table, --json for the results."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from vigil.commands.common import cli_settings

loadtest_app = typer.Typer(help="Load tests: synthetic cameras against a real control plane (and pipeline node).",
                           no_args_is_help=True)
console = Console()


def _stack(settings) -> None:
    from vigil.stack import Stack

    with console.status("starting the embedded stack (idempotent)…"):
        Stack(settings).up()


def _progress_line(p: dict) -> str:
    parts = [f"{p.get('phase', 'running')}", f"{p.get('elapsed_s', 0):5.1f}/{p.get('duration_s', 0):.0f} s"]
    for key, label, fmt in (("updates_per_s", "updates/s", "{:,.0f}"), ("events_per_s", "events/s", "{:,.1f}"),
                            ("ack_p99_ms", "ack p99 ms", "{:.1f}"), ("lag_s", "lag s", "{:.2f}"),
                            ("fps_total", "fps", "{:.1f}"), ("events", "events", "{}"),
                            ("latency_p95_ms", "feed p95 ms", "{:.0f}"),
                            ("cpu_percent", "control CPU %", "{:.0f}"), ("rss_mb", "control MB", "{:.0f}"),
                            ("node_cpu", "node CPU %", "{:.0f}"), ("node_rss_mb", "node MB", "{:.0f}"),
                            ("control_cpu", "control CPU %", "{:.0f}")):
        if p.get(key) is not None:
            parts.append(f"{label} [bold]{fmt.format(p[key])}[/bold]")
    return "  ".join(parts)


def _run_live(coro_factory) -> dict:
    with Live(console=console, refresh_per_second=4, transient=True) as live:
        def progress(p: dict) -> None:
            live.update(_progress_line(p))
        return asyncio.run(coro_factory(progress))


def _ms(d: dict) -> str:
    return " / ".join("-" if d[k] is None else f"{d[k]:.1f}" for k in ("p50", "p95", "p99"))


@loadtest_app.command("control")
def control(
    cameras: Annotated[int, typer.Option(min=1, help="Virtual cameras (one Publish stream each).")] = 4,
    fps: Annotated[float, typer.Option(min=0.1, help="Frames per second per camera.")] = 10.0,
    objects: Annotated[int, typer.Option(min=1, help="Tracked objects per frame (each one update per frame).")] = 5,
    duration: Annotated[float, typer.Option(min=1, help="Measured seconds (after the warm-up).")] = 20.0,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds driven before measuring.")] = 3.0,
    track_seconds: Annotated[float, typer.Option(min=0.5, help="Life of a track: START … END, then a new one.")] = 10.0,
    face_every: Annotated[int, typer.Option(min=0, help="Every n-th object is a face track with an embedding "
                                                        "(0: bodies only).")] = 2,
    gallery: Annotated[int, typer.Option(min=0, help="Enrolled faces of the synthetic model version.")] = 1000,
    window: Annotated[int, typer.Option(min=1, max=256, help="Unacked batches per stream.")] = 16,
    target: Annotated[str | None, typer.Option(help="host:port of a running control plane (default: start "
                                                    "one as a child process).")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the results here.")] = None,
) -> None:
    """Drive IngestService with synthetic track batches (no video) and measure the control plane alone."""
    from vigil.loadtest.common import write_json
    from vigil.loadtest.control import ControlOptions, run_control

    settings = cli_settings(log_level="warning")
    _stack(settings)
    o = ControlOptions(cameras=cameras, fps=fps, objects=objects, duration_s=duration, warmup_s=warmup,
                       track_seconds=track_seconds, face_every=face_every, gallery=gallery, window=window)
    console.print(f"loadtest control: {cameras} cameras × {fps:g} fps × {objects} objects = "
                  f"{cameras * fps * objects:,.0f} track updates/s offered, {duration:g} s")
    log_dir = settings.resolved_state_dir() / "logs"
    result = _run_live(lambda progress: run_control(settings, o, log_dir=log_dir, progress=progress, target=target))
    table = Table(title="control plane under synthetic load", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("track updates/s (acked)", f"{result['track_updates_per_s']:,.0f} of "
                                              f"{result['offered_updates_per_s']:,.0f} offered")
    table.add_row("events/s (on the feed)", f"{result['events_per_s']:,.1f}")
    table.add_row("batches/s", f"{result['batches_per_s']:,.1f}")
    table.add_row("ack latency ms p50/p95/p99", _ms(result["ack_latency_ms"]))
    table.add_row("capture → feed ms p50/p95/p99", _ms(result["feed_latency_ms"]))
    table.add_row("max lag behind schedule s", f"{result['max_lag_s']:.2f}")
    table.add_row("rejected / retried batches", f"{result['rejected_batches']} / {result['retried_batches']}")
    cp = result["control_plane"]
    if cp:
        table.add_row("control plane CPU % avg/max", f"{cp['cpu_percent_avg']:.0f} / {cp['cpu_percent_max']:.0f}")
        table.add_row("control plane RSS MB avg/max", f"{cp['rss_mb_avg']:.0f} / {cp['rss_mb_max']:.0f}")
    console.print(table)
    for error in result["errors"]:
        console.print(f"[yellow]{error}[/yellow]")
    write_json(json_path, result)
    if json_path:
        console.print(f"[dim]results in {json_path}[/dim]")
    if result["track_updates_per_s"] <= 0:
        raise typer.Exit(1)


@loadtest_app.command("pipeline")
def pipeline(
    streams: Annotated[int, typer.Option(min=1, max=256, help="Cameras replaying the sample video.")] = 1,
    duration: Annotated[float, typer.Option(min=1, help="Measured seconds (after the warm-up).")] = 30.0,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds run before measuring.")] = 8.0,
    rtsp: Annotated[bool, typer.Option("--rtsp", help="Serve the video over the RTSP test server instead of "
                                                     "looping the file.")] = False,
    rate: Annotated[str, typer.Option(help="File replay rate: native (real time) or max.")] = "native",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the results here.")] = None,
) -> None:
    """Replay the sample video as N cameras through a portable pipeline node and a control plane."""
    from vigil.loadtest.common import write_json
    from vigil.loadtest.pipeline import PipelineOptions, run_pipeline

    if rate not in ("native", "max"):
        raise typer.BadParameter("--rate must be native or max")
    settings = cli_settings(log_level="warning")
    _stack(settings)
    o = PipelineOptions(streams=streams, duration_s=duration, warmup_s=warmup, rtsp=rtsp, rate=rate)
    console.print(f"loadtest pipeline: {streams} stream(s) of people_walk.mp4 "
                  f"({'RTSP test server' if rtsp else 'file, rate ' + rate}), {duration:g} s")
    log_dir = settings.resolved_state_dir() / "logs"
    result = _run_live(lambda progress: run_pipeline(settings, o, log_dir=log_dir, progress=progress))
    table = Table(title=f"pipeline: {result['fps_total']:.1f} fps in total; frame → feed ms p50/p95/p99 "
                        f"{_ms(result['frame_to_feed_latency_ms'])} over {result['events']} events",
                  title_justify="left")
    for col in ("stream", "processed fps", "decoded fps", "dropped", "events", "error"):
        table.add_column(col, justify="left" if col == "error" else "right")
    for s in result["streams"]:
        table.add_row(str(s["stream"]), f"{s['processed_fps']:.1f}", f"{s['decoded_fps']:.1f}",
                      str(s["dropped_frames"]), str(s["events"]), s["error"][:40])
    console.print(table)
    n, c = result["node"], result["control_plane"]
    console.print(f"node: CPU {n['cpu_percent_avg']:.0f} % avg, RSS {n['rss_mb_max']:.0f} MB "
                  f"({n['rss_mb_per_stream']:.0f} MB per stream); control plane: CPU {c['cpu_percent_avg']:.0f} % "
                  f"avg, RSS {c['rss_mb_max']:.0f} MB")
    write_json(json_path, result)
    if json_path:
        console.print(f"[dim]results in {json_path}[/dim]")


