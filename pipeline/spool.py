"""The publisher's on-disk spool: track batches the control plane has not acknowledged yet, and the
node's sequence counter, in one SQLite database (WAL mode) under the node's spool directory.

Rows are keyed by the batch's sequence, so reading them back in key order is publication order.
Every SQLite call runs on one dedicated thread (the event loop never waits on the disk) and is
shielded from cancellation: a write that was handed to the thread always completes and its
bookkeeping (count, highest sequence) is updated on that thread after the commit.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    sequence  INTEGER PRIMARY KEY,   -- TrackBatch.sequence: replay order
    camera_id TEXT NOT NULL,
    data      BLOB NOT NULL          -- serialized PublishRequest
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    sequence: int
    camera_id: str
    data: bytes


class SpoolLocked(RuntimeError):
    """Another process (or Publisher) holds this spool directory."""


class Spool:
    FILE = "spool.sqlite3"

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.path = self.directory / self.FILE
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        # maintained on the spool thread, read from the event loop (plain ints)
        self.count = 0
        self.max_sequence = 0

    # --- lifecycle

    async def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / "spool.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:  # two publishers on one spool would replay each other's batches
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise SpoolLocked(f"spool {self.directory} is in use by another publisher") from None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-spool")
        await self._call(self._open)

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect only on a new file: lets us shrink it
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")  # the spool may be the only copy of a batch
        conn.executescript(SCHEMA)
        self._conn = conn
        self.count, self.max_sequence = conn.execute(
            "SELECT count(*), coalesce(max(sequence), 0) FROM batches").fetchone()

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._call(self._close)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None

    async def _call(self, fn, *args):
        loop = asyncio.get_running_loop()
        if self._executor is None:
            raise RuntimeError("spool is not open")
        return await asyncio.shield(loop.run_in_executor(self._executor, fn, *args))

    # --- sequences

    async def reserve_sequences(self, count: int) -> tuple[int, int]:
        """A block of `count` fresh sequence numbers (first, last), persisted before it is handed out
        so that no number is used twice across restarts, whatever happened to the batches."""
        return await self._call(self._reserve, count)

    def _reserve(self, count: int) -> tuple[int, int]:
        conn = self._conn
        with _transaction(conn):
            row = conn.execute("SELECT value FROM meta WHERE key = 'sequence_reserved'").fetchone()
            # a spool written before the counter existed (or edited by hand) still wins
            start = max(row[0] if row else 0, self.max_sequence)
            last = start + count
            conn.execute("INSERT INTO meta (key, value) VALUES ('sequence_reserved', ?)"
                         " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (last,))
        return start + 1, last

    # --- batches

    async def put(self, batches: list[SpooledBatch]) -> None:
        if batches:
            await self._call(self._put, batches)

    def _put(self, batches: list[SpooledBatch]) -> None:
        conn = self._conn
        with _transaction(conn):
            before = conn.total_changes
            # OR IGNORE: a batch already spooled (sent from the spool, then broken) stays as it is
            conn.executemany("INSERT OR IGNORE INTO batches (sequence, camera_id, data) VALUES (?, ?, ?)",
                             [(b.sequence, b.camera_id, b.data) for b in batches])
            added = conn.total_changes - before
        self.count += added
        self.max_sequence = max(self.max_sequence, max(b.sequence for b in batches))

    async def read_after(self, sequence: int, limit: int) -> list[SpooledBatch]:
        """The oldest spooled batches with a sequence above `sequence`, in order."""
        return await self._call(self._read_after, sequence, limit)

    def _read_after(self, sequence: int, limit: int) -> list[SpooledBatch]:
        rows = self._conn.execute("SELECT sequence, camera_id, data FROM batches WHERE sequence > ?"
                                  " ORDER BY sequence LIMIT ?", (sequence, limit)).fetchall()
        return [SpooledBatch(s, c, bytes(d)) for s, c, d in rows]

    async def sequences(self) -> list[int]:
        return await self._call(lambda: [s for (s,) in self._conn.execute(
            "SELECT sequence FROM batches ORDER BY sequence")])

    async def delete(self, sequences: list[int]) -> None:
        if sequences:
            await self._call(self._delete, sequences)

    def _delete(self, sequences: list[int]) -> None:
        conn = self._conn
        with _transaction(conn):
            before = conn.total_changes
            conn.executemany("DELETE FROM batches WHERE sequence = ?", [(s,) for s in sequences])
            removed = conn.total_changes - before
        self.count -= removed
        if self.count == 0:  # drained: give the disk back (free pages, then the WAL)
            conn.executescript("PRAGMA incremental_vacuum;")  # execute() would free one page per call
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def size_on_disk(self) -> int:
        """Bytes of the spool's database and write-ahead log."""
        total = 0
        for path in (self.path, self.path.with_name(self.FILE + "-wal")):
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                pass
        return total


class _transaction:  # noqa: N801
    """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error (the connection runs in autocommit mode)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
