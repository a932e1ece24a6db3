"""`vigil samples build`: the recorded test video, built from real media in registry packages."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vigil.commands.common import cli_settings

samples_app = typer.Typer(help="Sample media: recorded test video with ground truth, and an RTSP test server.",
                          no_args_is_help=True)
console = Console(soft_wrap=True)
err = Console(stderr=True)


@samples_app.command("build")
def build(
    cache_dir: Annotated[Path | None, typer.Option(help="Where the media go (default: <state_dir>/media).")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild the videos even when the cache is complete.")] = False,
) -> None:
    """Fetch the photos and vtest.avi, render people_walk.mp4, transcode people_street.mp4,
    and write a ground-truth manifest beside each video. Idempotent."""
    from vigil.models.errors import SampleMediaError
    from vigil.samples.videos import build_sample_videos, default_cache_dir

    cli_settings()  # an invalid configuration exits 2; logging configured
    started = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        try:
            videos = build_sample_videos(cache_dir or default_cache_dir(), force=force, progress=progress)
        except SampleMediaError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc

    for video in videos.values():
        people = ", ".join(f"{a.name} {a.first_frame}-{a.last_frame}" for a in video.appearances)
        console.print(f"[bold]{video.name}[/bold]: {video.path}  {video.width}x{video.height} {video.codec} "
                      f"{video.fps:g} fps, {video.frames} frames ({video.duration_s:.1f} s)"
                      + (f"; {people}" if people else "; real footage, no ground truth"))
        console.print(f"  manifest {video.manifest_path}")
        for name, photo in video.enrol.items():
            console.print(f"  enrol {name} from {photo}")
    console.print(f"done in {time.monotonic() - started:.1f} s")
