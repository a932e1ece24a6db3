"""PostgreSQL advisory locks by name, which let control-plane replicas take turns.

Names are hashed with hashtext(), so any text is a lock. A transaction-scoped lock is released
with its transaction; a session-scoped one with unlock() or its connection (a replica that dies
mid-run releases it too).
"""

from __future__ import annotations

import psycopg


async def try_transaction_lock(conn: psycopg.AsyncConnection, name: str) -> bool:
    """Take the lock for the rest of the current transaction, unless another session holds it."""
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s)) AS mine", (name,))
    return (await cur.fetchone())["mine"]


async def transaction_lock(conn: psycopg.AsyncConnection, namespace: str, key: str) -> None:
    """Wait for the lock on (namespace, key) and hold it for the rest of the current transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", (namespace, key))


async def try_session_lock(conn: psycopg.AsyncConnection, name: str) -> bool:
    """Take the lock for this connection's session until unlock(), unless another session holds it."""
    cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s)) AS mine", (name,))
    return (await cur.fetchone())["mine"]


async def unlock_session_lock(conn: psycopg.AsyncConnection, name: str) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))
