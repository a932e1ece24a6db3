"""`vigil node run`: a pipeline node on this machine."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from vigil.logs import configure_logging

node_app = typer.Typer(help="Pipeline nodes: decode, detect, track, embed; publish to the control plane.",
                       no_args_is_help=True)
err = Console(stderr=True)


@node_app.command("run")
def run(
    control: Annotated[str | None, typer.Option(help="Control plane host:port (VIGIL_NODE__CONTROL_URL).")] = None,
    key: Annotated[str | None, typer.Option(help="API key of role api_client (VIGIL_NODE__API_KEY).",
                                            envvar="VIGIL_NODE__API_KEY", show_envvar=False)] = None,
    name: Annotated[str | None, typer.Option(help="Node name (default: the host name).")] = None,
    backend: Annotated[str | None, typer.Option(help="auto, portable or deepstream.")] = None,
    capacity: Annotated[int | None, typer.Option(help="Most streams this node accepts.")] = None,
) -> None:
    """Register with the control plane, run the assigned camera streams, heartbeat; Ctrl+C stops
    the streams (their tracks end) and flushes what is left to publish (or spools it)."""
    from vigil.models.errors import InferenceError
    from vigil.pipeline.agent import RegistrationRefused
    from vigil.pipeline.node import NodeConfigError, run_node
    from vigil.settings import load_settings

    overrides = {k: v for k, v in {"control_url": control, "name": name, "backend": backend,
                                   "capacity_streams": capacity}.items() if v is not None}
    try:
        settings = load_settings()
        if overrides:
            settings = settings.model_copy(update={"node": settings.node.model_copy(update=overrides)})
    except Exception as exc:  # pydantic ValidationError names the setting
        err.print(f"[red]invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(run_node(settings, api_key=key))
    except (NodeConfigError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    except RegistrationRefused as exc:
        err.print(f"[red]the control plane refused the node:[/red] {exc}. Check the API key and its role "
                  "(api_client) and the node settings.")
        raise typer.Exit(2) from exc
    except InferenceError as exc:
        err.print(f"[red]inference unavailable:[/red] {exc}")
        raise typer.Exit(1) from exc
