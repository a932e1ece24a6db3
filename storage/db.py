"""PostgreSQL connections: one async pool per process, pgvector types registered on each connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

APP_ROLE = "vigil_app"  # the non-superuser role row-level security applies to (see migrations)


def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, statement_timeout_ms: int = 30_000,
                sql_alert_triggers: bool = False, name: str = "vigil") -> AsyncConnectionPool:
    """A pool that is not yet open: `await pool.open()` or `async with pool:`.

    The control plane evaluates alert rules itself, so the seed's SQL alert triggers are off on
    its connections unless asked for (see SCHEMA.md).
    """

    async def configure(conn: psycopg.AsyncConnection) -> None:
        await register_vector_async(conn)
        await conn.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
        await conn.execute(f"SET vigil.sql_alert_triggers = {'on' if sql_alert_triggers else 'off'}")
        await conn.commit()

    return AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        configure=configure,
        open=False,
        name=name,
    )


@asynccontextmanager
async def acting_as(pool: AsyncConnectionPool, *, user_id: UUID | None, role: str,
                    client_ip: str | None = None) -> AsyncIterator[psycopg.AsyncConnection]:
    """A transaction in which row-level security and audit triggers see this user.

    The settings are transaction-local (set_config(..., true)), so nothing leaks to the next
    borrower of the pooled connection.
    """
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {APP_ROLE}")
        await conn.execute(
            "SELECT set_config('app.current_user_id', %s, true), set_config('app.user_role', %s, true),"
            " set_config('app.client_ip', %s, true)",
            (str(user_id) if user_id else "", role, client_ip or ""),
        )
        yield conn
