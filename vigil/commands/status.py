"""`vigil status`: the fleet as one control plane sees it."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from vigil.commands.common import cli_settings, fail


def status(
    key: Annotated[str, typer.Option(envvar="VIGIL_API_KEY", help="API key with nodes:read (or VIGIL_API_KEY).")],
    address: Annotated[str | None, typer.Option(help="host:port of the control plane.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The fleet: nodes and their streams, streams without a node, offline cameras, alert counts."""
    import asyncio

    import grpc

    from vigil.status import fetch_status, render

    settings = cli_settings()
    target = address or f"{settings.control.host}:{settings.control.port}"
    try:
        found = asyncio.run(fetch_status(target, key))
    except grpc.aio.AioRpcError as exc:
        raise fail(f"{exc.code().name}: {exc.details()}") from exc
    if as_json:
        print(json.dumps(found, indent=2))
    else:
        render(found, Console())
