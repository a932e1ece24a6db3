"""`vigil stack up | status | down | logs`: the embedded service stack."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from vigil.commands.common import cli_settings, console, fail

stack_app = typer.Typer(help="The embedded service stack (PostgreSQL, Valkey, SeaweedFS S3, Triton).",
                        no_args_is_help=True)


def _status_table(rows) -> Table:
    table = Table(title="Vigil stack", title_justify="left")
    for col in ("service", "mode", "address", "pid", "health"):
        table.add_column(col)
    for row in rows:
        mark = "[green]healthy[/green]" if row.health.ok else "[red]down[/red]"
        table.add_row(row.name, row.mode, row.address, str(row.pid or "-"), f"{mark}  {row.health.detail}")
    return table


@stack_app.command("up")
def stack_up(
    migrate: Annotated[bool, typer.Option(help="Apply database migrations once PostgreSQL is up.")] = True,
) -> None:
    """Start every embedded service not yet running, wait until healthy, migrate. Idempotent."""
    from vigil.stack import Stack, StackError
    from vigil.storage.migrate import MigrationError

    settings = cli_settings()
    try:
        stack = Stack(settings)
        with console.status("starting the stack…") as spinner:
            rows = stack.up(
                migrate=migrate,
                on_ready=lambda s: spinner.console.log(f"{s.name} ready: {s.health.detail}"),
            )
    except (StackError, MigrationError, ValueError) as exc:
        raise fail(str(exc)) from exc
    console.print(_status_table(rows))


@stack_app.command("status")
def stack_status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Show each service, its address and health. Exit status 1 when any is unhealthy."""
    from vigil.stack import Stack

    rows = Stack(cli_settings()).status()
    if as_json:
        print(json.dumps([
            {"service": r.name, "mode": r.mode, "address": r.address, "pid": r.pid,
             "healthy": r.health.ok, "detail": r.health.detail} for r in rows
        ], indent=2))
    else:
        console.print(_status_table(rows))
    if not all(r.health.ok for r in rows):
        raise typer.Exit(1)


@stack_app.command("down")
def stack_down() -> None:
    """Stop the embedded services of this state directory (data is kept)."""
    from vigil.stack import Stack

    stopped = Stack(cli_settings()).down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@stack_app.command("logs")
def stack_logs(
    service: Annotated[str, typer.Argument(help="postgres, valkey, seaweedfs or triton.")],
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many of the last lines.")] = 40,
) -> None:
    """Print the end of a service's log (the files are under <state_dir>/logs/)."""
    from vigil.stack import Stack

    stack = Stack(cli_settings())
    by_name = {svc.name: svc for svc in stack.services}
    if service not in by_name:
        raise fail(f"unknown service {service!r}; choose one of {', '.join(by_name)}", 2)
    svc = by_name[service]
    if svc.external:
        raise fail(f"{service} is external ({svc.address}); read its logs where it runs", 2)
    console.print(f"[dim]{svc.process.log_file}[/dim]")
    print(svc.process.log_tail(lines))
