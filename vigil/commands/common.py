"""What every `vigil` command module shares: loading the settings (an invalid one exits 2, naming
the setting), the error exit and the consoles."""

from __future__ import annotations

import typer
from rich.console import Console

from vigil.logs import configure_logging
from vigil.settings import VigilSettings, load_settings

console = Console()
err = Console(stderr=True)


def cli_settings(*, log_level: str | None = None, configure_logs: bool = True,
                 out: Console | None = None) -> VigilSettings:
    """The effective settings; logging configured at `log_level` (default: the settings') unless the
    command logs its own way (configure_logs=False). `out`: where an invalid configuration is told."""
    try:
        settings = load_settings()
    except Exception as exc:  # pydantic ValidationError: name the setting
        (out or err).print(f"[red]invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from exc
    if configure_logs:
        configure_logging(log_level or settings.log_level, settings.log_format)
    return settings


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print the error; the caller raises what this returns (`raise fail(...) from exc`)."""
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)
