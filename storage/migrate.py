"""A small migration runner over plain SQL files.

Why not Alembic or yoyo: the schema is hand-written PostgreSQL (partitioning, RLS, plpgsql,
pgvector); there is no ORM model to autogenerate from, and plain .sql files are what a DBA
reviews and what `psql -f` can apply by hand. The runner adds what matters: order, a version
table with checksums, one transaction per file, and an advisory lock so that replicas starting
together migrate once.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x76696769  # 'vigi': one advisory lock id for all migrators


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @cached_property
    def sql(self) -> str:
        return self.path.read_text()

    @cached_property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    applied_at: datetime | None


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_snake_case.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    duration_ms INTEGER NOT NULL
)
"""


def _applied(conn: psycopg.Connection) -> dict[int, tuple[str, datetime]]:
    conn.execute(_VERSION_TABLE)
    rows = conn.execute("SELECT version, checksum, applied_at FROM schema_migrations").fetchall()
    return {version: (checksum, applied_at) for version, checksum, applied_at in rows}


def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply every pending migration in order; returns those applied. Safe to run concurrently."""
    migrations = discover(directory)
    applied_now: list[Migration] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            applied = _applied(conn)
            for m in migrations:
                if m.version in applied:
                    if applied[m.version][0] != m.checksum:
                        raise MigrationError(
                            f"migration {m.path.name} was changed after it was applied; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                started = time.monotonic()
                try:
                    with conn.transaction():
                        conn.execute(m.sql)
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum, duration_ms)"
                            " VALUES (%s, %s, %s, %s)",
                            (m.version, m.name, m.checksum, int((time.monotonic() - started) * 1000)),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {m.path.name} failed and was rolled back: {exc}") from exc
                applied_now.append(m)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def status(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[MigrationState]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        applied = _applied(conn)
    return [MigrationState(m, applied.get(m.version, (None, None))[1]) for m in discover(directory)]
