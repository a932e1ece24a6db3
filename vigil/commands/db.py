"""`vigil db migrate | status | partitions`: the database schema and its maintenance."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from vigil.commands.common import cli_settings, console, fail

db_app = typer.Typer(help="Database schema and maintenance.", no_args_is_help=True)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations in order (one transaction each)."""
    from vigil.endpoints import resolve
    from vigil.storage.migrate import MigrationError, migrate

    settings = cli_settings()
    try:
        applied = migrate(resolve(settings).database_dsn)
    except MigrationError as exc:
        raise fail(str(exc)) from exc
    except Exception as exc:  # connection refused and friends
        raise fail(f"{exc}. Is the database up? Try `vigil stack up`.") from exc
    names = ", ".join(m.path.name for m in applied)
    console.print(f"applied {len(applied)} migration(s)" + (f": {names}" if applied else " (schema is current)"))


@db_app.command("status")
def db_status() -> None:
    """List migrations and when each was applied."""
    from vigil.endpoints import resolve
    from vigil.storage.migrate import status

    table = Table("version", "name", "applied at")
    for state in status(resolve(cli_settings()).database_dsn):
        table.add_row(f"{state.migration.version:04d}", state.migration.name,
                      str(state.applied_at) if state.applied_at else "[yellow]pending[/yellow]")
    console.print(table)


@db_app.command("partitions")
def db_partitions(
    show: Annotated[bool, typer.Option("--list", help="Also list every partition afterwards.")] = False,
) -> None:
    """Create the current and upcoming monthly partitions and drop expired ones (per retention)."""
    import psycopg

    from vigil.endpoints import resolve
    from vigil.storage.partitions import list_partitions, maintain_partitions

    with psycopg.connect(resolve(cli_settings()).database_dsn, autocommit=True) as conn:
        actions = maintain_partitions(conn)
        for a in actions:
            console.print(f"{a.action:8} {a.partition}")
        if not actions:
            console.print("partitions are current; nothing expired")
        if show:
            table = Table("table", "partition", "bounds")
            for row in list_partitions(conn):
                table.add_row(*row)
            console.print(table)
