"""Watchlists (VIP, blacklist, suspect, custom) and the persons on them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from vigil.errors import NotFound
from vigil.storage.repositories.base import (
    BY_NAME,
    Keyset,
    Page,
    as_uuid,
    check_updatable,
    columns_of,
    delete_row,
    fetch_all,
    fetch_one,
    fetch_page,
    guarded,
    insert_row,
    optional_uuid,
    parse_timestamp,
    update_row,
)
from vigil.storage.repositories.filters import Filters


@dataclass(frozen=True)
class Watchlist:
    id: UUID
    name: str
    description: str | None
    watch_type: str
    is_active: bool
    created_by: UUID | None  # None when created by a service key (audit_logs names it)
    created_at: datetime


@dataclass(frozen=True)
class WatchlistEntry:
    id: UUID
    watchlist_id: UUID
    person_id: UUID
    added_by: UUID | None
    added_at: datetime
    notes: str | None


_WATCHLIST_COLUMNS = columns_of(Watchlist)
_ENTRY_COLUMNS = columns_of(WatchlistEntry)
_UPDATABLE = ("name", "description", "watch_type", "is_active")
_NEWEST_ENTRIES_FIRST = Keyset(("added_at", "id"), (parse_timestamp, UUID))


class WatchlistRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def create(self, name: str, watch_type: str, created_by: UUID | str | None, *, description: str | None = None,
                     is_active: bool = True) -> Watchlist:
        values = {"name": name, "watch_type": watch_type, "created_by": optional_uuid("created_by", created_by),
                  "description": description, "is_active": is_active}
        return await insert_row(self.conn, "watchlists", values, Watchlist, _WATCHLIST_COLUMNS, "watchlist")

    async def get(self, watchlist_id: UUID | str) -> Watchlist:
        watchlist_id = as_uuid("watchlist_id", watchlist_id)
        found = await fetch_one(self.conn, Watchlist, sql.SQL(
            "SELECT {} FROM watchlists WHERE id = %s").format(_WATCHLIST_COLUMNS), (watchlist_id,))
        if found is None:
            raise NotFound("watchlist", watchlist_id)
        return found

    async def list(self, *, watch_types: list[str] | None = None, is_active: bool | None = None, page_size: int = 0,
                   page_token: str | None = None) -> Page[Watchlist]:
        filters = Filters().any("watch_type", watch_types or None, cast="watchlist_type_enum")
        filters.eq("is_active", is_active)
        return await fetch_page(self.conn, Watchlist, select=_WATCHLIST_COLUMNS, table="watchlists", filters=filters,
                                keyset=BY_NAME, page_size=page_size, page_token=page_token,
                                resource="watchlist", values={"watch_types": watch_types})

    async def update(self, watchlist_id: UUID | str, changes: dict[str, Any]) -> Watchlist:
        check_updatable("watchlist", changes, _UPDATABLE)
        return await update_row(self.conn, "watchlists", as_uuid("watchlist_id", watchlist_id), changes, Watchlist,
                                _WATCHLIST_COLUMNS, "watchlist")

    async def delete(self, watchlist_id: UUID | str) -> None:
        await delete_row(self.conn, "watchlists", as_uuid("watchlist_id", watchlist_id), "watchlist")

    # ----------------------------------------------------------------------- entries

    async def add_person(self, watchlist_id: UUID | str, person_id: UUID | str, added_by: UUID | str | None, *,
                         notes: str | None = None) -> WatchlistEntry:
        values = {"watchlist_id": as_uuid("watchlist_id", watchlist_id), "person_id": as_uuid("person_id", person_id),
                  "added_by": optional_uuid("added_by", added_by), "notes": notes}
        return await insert_row(self.conn, "watchlist_entries", values, WatchlistEntry, _ENTRY_COLUMNS,
                                "watchlist_entry", parents={"watchlist_id": "watchlist"})

    async def remove_person(self, watchlist_id: UUID | str, person_id: UUID | str) -> None:
        watchlist_id, person_id = as_uuid("watchlist_id", watchlist_id), as_uuid("person_id", person_id)
        await self._delete_entries("watchlist_id = %s AND person_id = %s", (watchlist_id, person_id),
                                   f"{watchlist_id}/{person_id}")

    async def remove_entry(self, entry_id: UUID | str) -> None:
        entry_id = as_uuid("id", entry_id)
        await self._delete_entries("id = %s", (entry_id,), entry_id)

    async def _delete_entries(self, condition: str, params: tuple, label: object) -> None:
        async with guarded(self.conn, "watchlist_entry"):
            cur = await self.conn.execute(sql.SQL("DELETE FROM watchlist_entries WHERE " + condition), params)
        if cur.rowcount == 0:
            raise NotFound("watchlist_entry", label)

    async def entries(self, watchlist_id: UUID | str | None = None, *, person_id: UUID | str | None = None,
                      page_size: int = 0, page_token: str | None = None) -> Page[WatchlistEntry]:
        """Most recently added first, of one watchlist and/or one person."""
        filters = Filters().eq("watchlist_id", optional_uuid("watchlist_id", watchlist_id))
        filters.eq("person_id", optional_uuid("person_id", person_id))
        return await fetch_page(self.conn, WatchlistEntry, select=_ENTRY_COLUMNS, table="watchlist_entries",
                                filters=filters, keyset=_NEWEST_ENTRIES_FIRST, page_size=page_size,
                                page_token=page_token, resource="watchlist_entry")

    async def entry_counts(self, watchlist_ids: list[UUID]) -> dict[UUID, int]:
        cur = await self.conn.execute("SELECT watchlist_id, count(*) AS n FROM watchlist_entries"
                                      " WHERE watchlist_id = ANY(%s) GROUP BY watchlist_id", (watchlist_ids,))
        return {row["watchlist_id"]: row["n"] for row in await cur.fetchall()}

    async def active_watchlists_of(self, person_id: UUID | str) -> list[Watchlist]:
        """The active watchlists a recognised person is on (what a match should alert about)."""
        query = sql.SQL("SELECT {} FROM watchlists w WHERE w.is_active AND EXISTS"
                        " (SELECT 1 FROM watchlist_entries e WHERE e.watchlist_id = w.id AND e.person_id = %s)"
                        " ORDER BY w.name, w.id").format(_WATCHLIST_COLUMNS)
        return await fetch_all(self.conn, Watchlist, query, (as_uuid("person_id", person_id),))
