"""The `vigil` command."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vigil.demo.cli import demo
from vigil.loadtest.cli import loadtest_app
from vigil.logs import configure_logging
from vigil.models.cli import models_app
from vigil.samples.cli import samples_app
from vigil.pipeline.cli import node_app
from vigil.settings import VigilSettings, load_settings

app = typer.Typer(help="Vigil: GPU video analytics platform.", no_args_is_help=True, pretty_exceptions_enable=False)
stack_app = typer.Typer(help="The embedded service stack (PostgreSQL, Valkey, SeaweedFS S3, Triton).",
                        no_args_is_help=True)
db_app = typer.Typer(help="Database schema and maintenance.", no_args_is_help=True)
config_app = typer.Typer(help="Effective configuration.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for the gRPC API.", no_args_is_help=True)
control_app = typer.Typer(help="The gRPC control plane.", no_args_is_help=True)
events_app = typer.Typer(help="The live event feed.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(keys_app, name="keys")
app.add_typer(control_app, name="control")
app.add_typer(events_app, name="events")

app.add_typer(models_app, name="models")
app.add_typer(samples_app, name="samples")
app.add_typer(node_app, name="node")
app.add_typer(loadtest_app, name="loadtest")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.command("demo")(demo)

console = Console()
err = Console(stderr=True)


def _settings() -> VigilSettings:
    try:
        settings = load_settings()
    except Exception as exc:  # pydantic ValidationError: name the setting
        err.print(f"[red]invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


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

    settings = _settings()
    try:
        stack = Stack(settings)
        with console.status("starting the stack…") as spinner:
            rows = stack.up(
                migrate=migrate,
                on_ready=lambda s: spinner.console.log(f"{s.name} ready: {s.health.detail}"),
            )
    except (StackError, MigrationError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    console.print(_status_table(rows))


@stack_app.command("status")
def stack_status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Show each service, its address and health. Exit status 1 when any is unhealthy."""
    from vigil.stack import Stack

    rows = Stack(_settings()).status()
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

    stopped = Stack(_settings()).down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@stack_app.command("logs")
def stack_logs(
    service: Annotated[str, typer.Argument(help="postgres, valkey, seaweedfs or triton.")],
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many of the last lines.")] = 40,
) -> None:
    """Print the end of a service's log (the files are under <state_dir>/logs/)."""
    from vigil.stack import Stack

    stack = Stack(_settings())
    by_name = {svc.name: svc for svc in stack.services}
    if service not in by_name:
        raise _fail(f"unknown service {service!r}; choose one of {', '.join(by_name)}", 2)
    svc = by_name[service]
    if svc.external:
        raise _fail(f"{service} is external ({svc.address}); read its logs where it runs", 2)
    console.print(f"[dim]{svc.process.log_file}[/dim]")
    print(svc.process.log_tail(lines))


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations in order (one transaction each)."""
    from vigil.endpoints import resolve
    from vigil.storage.migrate import MigrationError, migrate

    settings = _settings()
    try:
        applied = migrate(resolve(settings).database_dsn)
    except MigrationError as exc:
        raise _fail(str(exc)) from exc
    except Exception as exc:  # connection refused and friends
        raise _fail(f"{exc}. Is the database up? Try `vigil stack up`.") from exc
    console.print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(m.path.name for m in applied) if applied else
                                                             " (schema is current)"))


@db_app.command("status")
def db_status() -> None:
    """List migrations and when each was applied."""
    from vigil.endpoints import resolve
    from vigil.storage.migrate import status

    table = Table("version", "name", "applied at")
    for state in status(resolve(_settings()).database_dsn):
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

    with psycopg.connect(resolve(_settings()).database_dsn, autocommit=True) as conn:
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


ROLES = ("super_admin", "admin", "operator", "viewer", "api_client")


async def _with_keys(settings: VigilSettings, work):
    from vigil.endpoints import resolve
    from vigil.storage.db import create_pool
    from vigil.storage.repositories.api_keys import ApiKeyRepository

    pool = create_pool(resolve(settings).database_dsn, min_size=1, max_size=1)
    await pool.open(wait=True, timeout=10)
    try:
        async with pool.connection() as conn:
            return await work(ApiKeyRepository(conn))
    finally:
        await pool.close()


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help=f"RBAC role of the key: {', '.join(ROLES)}.")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "cli",
    expires_in_days: Annotated[int | None, typer.Option(help="Expire after this many days.")] = None,
    rate_limit: Annotated[int, typer.Option(help="Requests per minute.")] = 600,
    scope: Annotated[list[str] | None, typer.Option(help="Narrow the role to resource:action (repeatable).")] = None,
    user: Annotated[str | None, typer.Option(help="User id the key acts as (site isolation).")] = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    import asyncio
    from datetime import datetime, timedelta, timezone

    from vigil.errors import RepositoryError

    if role not in ROLES:
        raise _fail(f"--role must be one of {', '.join(ROLES)}", 2)
    settings = _settings()
    expires = datetime.now(timezone.utc) + timedelta(days=expires_in_days) if expires_in_days else None
    try:
        created = asyncio.run(_with_keys(settings, lambda repo: repo.create(
            name, role, scopes=scope or (), expires_at=expires, rate_limit_per_minute=rate_limit, user_id=user)))
    except RepositoryError as exc:
        raise _fail(str(exc), 2) from exc
    err.print(f"created key {created.key.key_prefix} (id {created.key.id}, role {role}); "
              "store it now, it is not shown again:")
    print(created.plaintext)


@keys_app.command("list")
def keys_list(all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False) -> None:
    """List API keys (prefixes only)."""
    import asyncio

    page = asyncio.run(_with_keys(_settings(), lambda repo: repo.list(include_revoked=all_keys, page_size=1000)))
    table = Table("id", "prefix", "name", "role", "expires", "revoked", "last used", "requests")
    for k in page.items:
        table.add_row(str(k.id), k.key_prefix, k.name or "", k.role, str(k.expires_at or "-"),
                      str(k.revoked_at or "-"), str(k.last_used_at or "-"), str(k.request_count))
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (see `vigil keys list`).")]) -> None:
    """Revoke an API key for good."""
    import asyncio

    from vigil.errors import RepositoryError

    try:
        key = asyncio.run(_with_keys(_settings(), lambda repo: repo.revoke(key_id)))
    except RepositoryError as exc:
        raise _fail(str(exc), 2) from exc
    console.print(f"revoked {key.key_prefix} at {key.revoked_at}")


@control_app.command("serve")
def control_serve() -> None:
    """Serve the gRPC API (health and reflection included) until Ctrl+C / SIGTERM."""
    import asyncio

    from vigil.control.server import serve

    asyncio.run(serve(_settings()))


@events_app.command("tail")
def events_tail(
    key: Annotated[str, typer.Option(envvar="VIGIL_API_KEY", help="API key (or VIGIL_API_KEY).")],
    camera: Annotated[list[str] | None, typer.Option(help="Only these camera ids (repeatable).")] = None,
    resume: Annotated[str, typer.Option(help="Resume token: replay everything after it.")] = "",
    address: Annotated[str | None, typer.Option(help="host:port of the control plane.")] = None,
) -> None:
    """Print feed messages (events, suspicious activities, alerts) as they happen, one per line."""
    import asyncio

    import grpc

    from vigil.api.v1 import event_pb2, event_pb2_grpc

    settings = _settings()
    target = address or f"{settings.control.host}:{settings.control.port}"

    def describe(item, kind: str) -> str:
        from vigil.api.v1 import common_pb2

        if kind == "event":
            kind_name = common_pb2.EventType.Name(item.event_type).removeprefix("EVENT_TYPE_").lower()
            who = f"person {item.person_id}" if item.person_id else (
                f"cluster {item.cluster_id}" if item.cluster_id else "")
            return f"{kind_name:18} track {item.track_id:8} {who}"
        if kind == "suspicious_activity":
            activity = common_pb2.ActivityType.Name(item.activity_type).removeprefix("ACTIVITY_TYPE_").lower()
            severity = common_pb2.Severity.Name(item.severity).removeprefix("SEVERITY_").lower()
            return f"{activity:18} {severity} zone {item.zone_id or '-'}"
        if kind == "alert":
            severity = common_pb2.Severity.Name(item.severity).removeprefix("SEVERITY_").lower()
            return f"{severity:8} {item.message}"
        return str(item).replace("\n", " ")

    async def tail() -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            call = event_pb2_grpc.EventServiceStub(channel).Subscribe(
                event_pb2.SubscribeRequest(camera_ids=camera or [], resume_token=resume),
                metadata=(("authorization", f"Bearer {key}"),))
            async for response in call:
                kind = response.WhichOneof("item")
                if kind in (None, "keepalive"):
                    continue
                print(f"{response.resume_token}  {kind:19} {describe(getattr(response, kind), kind)}", flush=True)

    try:
        asyncio.run(tail())
    except grpc.aio.AioRpcError as exc:
        raise _fail(f"{exc.code().name}: {exc.details()}") from exc
    except KeyboardInterrupt:
        pass


@app.command("status")
def status(
    key: Annotated[str, typer.Option(envvar="VIGIL_API_KEY", help="API key with nodes:read (or VIGIL_API_KEY).")],
    address: Annotated[str | None, typer.Option(help="host:port of the control plane.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The fleet: nodes and their streams, streams without a node, offline cameras, alert counts."""
    import asyncio

    import grpc

    from vigil.status import fetch_status, render

    settings = _settings()
    target = address or f"{settings.control.host}:{settings.control.port}"
    try:
        found = asyncio.run(fetch_status(target, key))
    except grpc.aio.AioRpcError as exc:
        raise _fail(f"{exc.code().name}: {exc.details()}") from exc
    if as_json:
        print(json.dumps(found, indent=2))
    else:
        render(found, Console())


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (secrets hidden) and the resolved service addresses."""
    from vigil.endpoints import resolve

    settings = _settings()
    print(settings.model_dump_json(indent=2))
    print(json.dumps({"endpoints": resolve(settings).redacted()}, indent=2))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
