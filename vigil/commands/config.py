"""`vigil config show`: the effective configuration."""

from __future__ import annotations

import json

import typer

from vigil.commands.common import cli_settings

config_app = typer.Typer(help="Effective configuration.", no_args_is_help=True)


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (secrets hidden) and the resolved service addresses."""
    from vigil.endpoints import resolve

    settings = cli_settings()
    print(settings.model_dump_json(indent=2))
    print(json.dumps({"endpoints": resolve(settings).redacted()}, indent=2))
