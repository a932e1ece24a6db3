"""`vigil control serve`: the gRPC control plane."""

from __future__ import annotations

import typer

from vigil.commands.common import cli_settings, fail

control_app = typer.Typer(help="The gRPC control plane.", no_args_is_help=True)


@control_app.command("serve")
def control_serve() -> None:
    """Serve the gRPC API (health and reflection included) until Ctrl+C / SIGTERM."""
    import asyncio

    from vigil.api_build import ApiOutOfDate, ensure_current

    settings = cli_settings()
    try:
        ensure_current()  # before importing the servicers, which import the generated code
    except ApiOutOfDate as exc:
        raise fail(str(exc), 2) from exc
    from vigil.control.server import serve

    asyncio.run(serve(settings))
