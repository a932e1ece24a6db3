"""`vigil keys create | list | revoke`: API keys for the gRPC API."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

import typer
from rich.table import Table

from vigil.commands.common import cli_settings, console, err, fail
from vigil.settings import VigilSettings

keys_app = typer.Typer(help="API keys for the gRPC API.", no_args_is_help=True)

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
    from datetime import datetime, timedelta

    from vigil.errors import RepositoryError

    if role not in ROLES:
        raise fail(f"--role must be one of {', '.join(ROLES)}", 2)
    settings = cli_settings()
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    try:
        created = asyncio.run(_with_keys(settings, lambda repo: repo.create(
            name, role, scopes=scope or (), expires_at=expires, rate_limit_per_minute=rate_limit, user_id=user)))
    except RepositoryError as exc:
        raise fail(str(exc), 2) from exc
    err.print(f"created key {created.key.key_prefix} (id {created.key.id}, role {role}); "
              "store it now, it is not shown again:")
    print(created.plaintext)


@keys_app.command("list")
def keys_list(all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False) -> None:
    """List API keys (prefixes only)."""
    import asyncio

    page = asyncio.run(_with_keys(cli_settings(), lambda repo: repo.list(include_revoked=all_keys, page_size=1000)))
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
        key = asyncio.run(_with_keys(cli_settings(), lambda repo: repo.revoke(key_id)))
    except RepositoryError as exc:
        raise fail(str(exc), 2) from exc
    console.print(f"revoked {key.key_prefix} at {key.revoked_at}")
