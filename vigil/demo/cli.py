"""`vigil demo`: the main job on the embedded defaults (see vigil/demo/__init__.py)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


class Speed(str, Enum):
    native = "native"
    max = "max"


def demo(
    loop: Annotated[bool, typer.Option("--loop", help="Replay the videos until Ctrl+C instead of stopping "
                                                       "when they end.")] = False,
    speed: Annotated[Speed, typer.Option(help="native: replay at the videos' own frame rate, like live cameras; "
                                              "max: as fast as the node decodes.")] = Speed.native,
    media_dir: Annotated[Path | None, typer.Option(help="Where the sample videos are built "
                                                        "(default: <state_dir>/media).")] = None,
) -> None:
    """Run the main job: start the embedded stack, a control plane and a pipeline node, replay two
    recorded cameras through detection, recognition and alerts, and show the live feed until the
    videos end (or Ctrl+C); then print a summary. The stack keeps running afterwards."""
    from vigil.commands.common import cli_settings
    from vigil.demo.runner import Options, run

    # piped (a CI log, a test): one line per feed item, however long, rather than wrapped at 80
    console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
    settings = cli_settings(configure_logs=False, out=console)  # the runner logs to <state_dir>/logs/demo.log
    code = run(settings, Options(loop=loop, speed=speed.value, media_dir=media_dir), console)
    raise typer.Exit(code)
