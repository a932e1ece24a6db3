"""The person registry with its labels and aliases."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from vigil.errors import InvalidArgument, NotFound
from vigil.storage.repositories.base import (
    BY_CREATED_AT,
    Keyset,
    Page,
    as_uuid,
    check_updatable,
    columns_of,
    decode_page_token,
    delete_row,
    encode_page_token,
    fetch_all,
    fetch_one,
    fetch_page,
    guarded,
    insert_row,
    optional_uuid,
    page_limit,
    update_row,
    uuid_list,
)
from vigil.storage.repositories.faces import FaceEmbeddingRepository
from vigil.storage.repositories.filters import Filters


@dataclass(frozen=True)
class Person:
    id: UUID
    name: str | None  # None for an unknown person
    status: str
    role: str | None
    department: str | None
    company: str | None
    notes: str | None
    primary_face_embedding_id: UUID | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PersonLabel:
    id: UUID
    person_id: UUID
    label: str
    created_by: UUID | None
    created_at: datetime


@dataclass(frozen=True)
class PersonAlias:
    id: UUID
    person_id: UUID
    alias_name: str
    created_at: datetime


@dataclass(frozen=True)
class PersonDetails:
    """What a person shows beside their row: labels (in the enum's order), aliases (by name), face count."""
    labels: list[str]
    aliases: list[str]
    face_count: int


_PERSON_COLUMNS = columns_of(Person)
_LABEL_COLUMNS = columns_of(PersonLabel)
_ALIAS_COLUMNS = columns_of(PersonAlias)
_PERSON_UPDATABLE = ("name", "status", "role", "department", "company", "notes")
_OF_PERSON = {"person_id": "person"}  # a missing person_id is the resource the call is on
_BY_LABEL = Keyset(("label", "id"), (str, UUID), descending=False)
_BY_ALIAS_NAME = Keyset(("alias_name", "id"), (str, UUID), descending=False)


def _like_pattern(text: str) -> str:
    """Substring match for ILIKE with the caller's % and _ taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _flag(text: str) -> bool:
    if text not in ("True", "False"):
        raise ValueError(f"not a flag: {text!r}")
    return text == "True"


# Sort key of list_by_name: named persons first, by name, then id. A NULL name cannot take part
# in a row comparison, hence the flag and COALESCE.
_NAME_SORT_KEY = sql.SQL("name IS NULL, COALESCE(name, ''), id")
_BY_NAME_UNNAMED_LAST = Keyset(("unnamed", "name", "id"), (_flag, str, UUID), descending=False)


def _filters(*, statuses: Iterable[str] | None = None, labels: Iterable[str] | None = None,
             watchlist_ids: Iterable[UUID] | None = None, roles: Iterable[str] | None = None,
             search: str | None = None) -> Filters:
    """WHERE conditions on persons: each list matches any of its values, an empty one everything."""
    filters = Filters().any("status", statuses or None, cast="person_status_enum")
    if labels:
        filters.raw("EXISTS (SELECT 1 FROM person_labels l"
                    " WHERE l.person_id = persons.id AND l.label = ANY(%s::person_label_enum[]))", list(labels))
    if watchlist_ids:
        filters.raw("EXISTS (SELECT 1 FROM watchlist_entries w"
                    " WHERE w.person_id = persons.id AND w.watchlist_id = ANY(%s))", list(watchlist_ids))
    filters.any("role", roles or None)
    if search:
        pattern = _like_pattern(search)
        filters.raw("(name ILIKE %s OR EXISTS (SELECT 1 FROM person_aliases a"
                    " WHERE a.person_id = persons.id AND a.alias_name ILIKE %s))", pattern, pattern)
    return filters


@dataclass(frozen=True)
class PersonStanding:
    """What alert rules ask about a person."""

    id: UUID
    status: str
    role: str | None
    name: str | None
    watchlist_ids: frozenset[UUID]  # the active watchlists they are on


class PersonRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def create(self, *, name: str | None = None, status: str = "unknown", role: str | None = None,
                     department: str | None = None, company: str | None = None, notes: str | None = None,
                     created_by: UUID | str | None = None) -> Person:
        values = {"name": name, "status": status, "role": role, "department": department, "company": company,
                  "notes": notes, "created_by": optional_uuid("created_by", created_by)}
        return await insert_row(self.conn, "persons", values, Person, _PERSON_COLUMNS, "person")

    async def get(self, person_id: UUID | str) -> Person:
        person_id = as_uuid("person_id", person_id)
        person = await fetch_one(self.conn, Person,
                                 sql.SQL("SELECT {} FROM persons WHERE id = %s").format(_PERSON_COLUMNS), (person_id,))
        if person is None:
            raise NotFound("person", person_id)
        return person

    async def list(self, *, status: str | None = None, label: str | None = None, search: str | None = None,
                   page_size: int = 0, page_token: str | None = None) -> Page[Person]:
        """Newest first. `search` matches a substring of the name or of any alias, case-insensitively."""
        filters = _filters(statuses=None if status is None else [status],
                           labels=None if label is None else [label], search=search)
        return await fetch_page(self.conn, Person, select=_PERSON_COLUMNS, table="persons", filters=filters,
                                keyset=BY_CREATED_AT, page_size=page_size, page_token=page_token,
                                resource="person", values={"status": status, "label": label})

    async def list_by_name(self, *, statuses: Iterable[str] | None = None, labels: Iterable[str] | None = None,
                           watchlist_ids: Iterable[UUID | str] | None = None, roles: Iterable[str] | None = None,
                           search: str | None = None, page_size: int = 0,
                           page_token: str | None = None) -> Page[Person]:
        """By name, unnamed persons last, then id. Persons with any of the statuses, any of the labels,
        on any of the watchlists, with any of the roles (empty or None: no condition); `search` as in list()."""
        limit = page_limit(page_size)
        filters = _filters(statuses=statuses, labels=labels, roles=roles, search=search,
                           watchlist_ids=uuid_list("watchlist_ids", watchlist_ids))
        if page_token:
            filters.raw(sql.SQL("({}) > (%s, %s, %s)").format(_NAME_SORT_KEY),
                        *decode_page_token(page_token, _BY_NAME_UNNAMED_LAST))
        query = sql.SQL("SELECT {} FROM persons WHERE {} ORDER BY {} LIMIT {}").format(
            _PERSON_COLUMNS, filters.sql(), _NAME_SORT_KEY,
            sql.Literal(limit + 1))  # one more row tells whether another page follows
        async with guarded(self.conn, "person", {"statuses": statuses, "labels": labels}):
            items = await fetch_all(self.conn, Person, query, filters.params)
        if len(items) <= limit:
            return Page(items, None)
        last = items[limit - 1]
        return Page(items[:limit], encode_page_token([last.name is None, last.name or "", last.id]))

    async def details(self, person_ids: Iterable[UUID]) -> dict[UUID, PersonDetails]:
        """Labels, aliases and face counts of many persons in one round trip."""
        cur = await self.conn.execute(
            "SELECT p.id,"
            " ARRAY(SELECT l.label::text FROM person_labels l WHERE l.person_id = p.id ORDER BY l.label) AS labels,"
            " ARRAY(SELECT a.alias_name FROM person_aliases a WHERE a.person_id = p.id ORDER BY a.alias_name)"
            " AS aliases,"
            " (SELECT count(*) FROM face_embeddings f WHERE f.person_id = p.id) AS face_count"
            " FROM unnest(%s::uuid[]) AS p(id)", (list(person_ids),))
        return {row["id"]: PersonDetails(row["labels"], row["aliases"], row["face_count"])
                for row in await cur.fetchall()}

    async def standings(self, person_ids: Iterable[UUID | str]) -> dict[UUID, PersonStanding]:
        """The persons that exist among these ids, with the active watchlists each is on."""
        cur = await self.conn.execute(
            "SELECT p.id, p.status::text AS status, p.role, p.name,"
            " ARRAY(SELECT e.watchlist_id FROM watchlist_entries e JOIN watchlists w ON w.id = e.watchlist_id"
            "       WHERE e.person_id = p.id AND w.is_active) AS watchlist_ids"
            " FROM persons p WHERE p.id = ANY(%s)", ([as_uuid("person_ids", i) for i in person_ids],))
        return {row["id"]: PersonStanding(row["id"], row["status"], row["role"], row["name"],
                                          frozenset(row["watchlist_ids"])) for row in await cur.fetchall()}

    async def ids_matching(self, *, statuses: Sequence[str], labels: Sequence[str],
                           watchlist_ids: Sequence[UUID]) -> list[UUID]:
        """Ids of the persons with any of the statuses, any of the labels and on any of the watchlists
        (an empty list: no condition)."""
        cur = await self.conn.execute(
            """
            SELECT p.id FROM persons p
            WHERE (cardinality(%(statuses)s::person_status_enum[]) = 0
                   OR p.status = ANY(%(statuses)s::person_status_enum[]))
              AND (cardinality(%(labels)s::person_label_enum[]) = 0 OR EXISTS (
                    SELECT 1 FROM person_labels l
                    WHERE l.person_id = p.id AND l.label = ANY(%(labels)s::person_label_enum[])))
              AND (cardinality(%(watchlists)s::uuid[]) = 0 OR EXISTS (
                    SELECT 1 FROM watchlist_entries e JOIN watchlists w ON w.id = e.watchlist_id
                    WHERE e.person_id = p.id AND w.id = ANY(%(watchlists)s::uuid[])))
            """,
            {"statuses": list(statuses), "labels": list(labels), "watchlists": list(watchlist_ids)})
        return [row["id"] for row in await cur.fetchall()]

    async def alert_rules_naming(self, person_id: UUID | str) -> list[UUID]:
        """Ids of the alert rules that name this person (deleting the person would delete them too)."""
        cur = await self.conn.execute("SELECT id FROM alert_rules WHERE person_id = %s ORDER BY id",
                                      (as_uuid("person_id", person_id),))
        return [row["id"] for row in await cur.fetchall()]

    async def update(self, person_id: UUID | str, changes: dict[str, Any]) -> Person:
        check_updatable("person", changes, _PERSON_UPDATABLE)
        return await update_row(self.conn, "persons", as_uuid("person_id", person_id), changes, Person,
                                _PERSON_COLUMNS, "person")

    async def delete(self, person_id: UUID | str) -> None:
        """Deletes the person with their embeddings, labels, aliases and watchlist entries."""
        await delete_row(self.conn, "persons", as_uuid("person_id", person_id), "person")

    # ----------------------------------------------------------------------- labels

    async def add_label(
        self, person_id: UUID | str, label: str, *, created_by: UUID | str | None = None
    ) -> PersonLabel:
        values = {"person_id": as_uuid("person_id", person_id), "label": label,
                  "created_by": optional_uuid("created_by", created_by)}
        return await insert_row(self.conn, "person_labels", values, PersonLabel, _LABEL_COLUMNS, "person_label",
                                parents=_OF_PERSON)

    async def remove_label(self, person_id: UUID | str, label: str) -> None:
        person_id = as_uuid("person_id", person_id)
        async with guarded(self.conn, "person_label", {"label": label}):
            cur = await self.conn.execute(
                "DELETE FROM person_labels WHERE person_id = %s AND label = %s::person_label_enum", (person_id, label))
        if cur.rowcount == 0:
            raise NotFound("person_label", f"{person_id}/{label}")

    async def labels_page(self, person_id: UUID | str, *, page_size: int = 0,
                          page_token: str | None = None) -> Page[PersonLabel]:
        """list_labels() a page at a time."""
        return await fetch_page(self.conn, PersonLabel, select=_LABEL_COLUMNS, table="person_labels",
                                filters=Filters().eq("person_id", as_uuid("person_id", person_id)),
                                keyset=_BY_LABEL, page_size=page_size, page_token=page_token,
                                resource="person_label")

    async def list_labels(self, person_id: UUID | str) -> list[PersonLabel]:
        query = sql.SQL("SELECT {} FROM person_labels WHERE person_id = %s ORDER BY label").format(_LABEL_COLUMNS)
        return await fetch_all(self.conn, PersonLabel, query, (as_uuid("person_id", person_id),))

    # ----------------------------------------------------------------------- aliases

    async def add_alias(self, person_id: UUID | str, alias_name: str) -> PersonAlias:
        values = {"person_id": as_uuid("person_id", person_id), "alias_name": alias_name}
        return await insert_row(self.conn, "person_aliases", values, PersonAlias, _ALIAS_COLUMNS, "person_alias",
                                parents=_OF_PERSON)

    async def remove_alias(self, person_id: UUID | str, alias_name: str) -> None:
        person_id = as_uuid("person_id", person_id)
        async with guarded(self.conn, "person_alias"):
            cur = await self.conn.execute("DELETE FROM person_aliases WHERE person_id = %s AND alias_name = %s",
                                          (person_id, alias_name))
        if cur.rowcount == 0:
            raise NotFound("person_alias", f"{person_id}/{alias_name}")

    async def delete_alias(self, alias_id: UUID | str) -> PersonAlias:
        """Remove an alias by its id; returns the alias removed."""
        alias_id = as_uuid("alias_id", alias_id)
        async with guarded(self.conn, "person_alias"):
            removed = await fetch_one(self.conn, PersonAlias, sql.SQL(
                "DELETE FROM person_aliases WHERE id = %s RETURNING {}").format(_ALIAS_COLUMNS), (alias_id,))
        if removed is None:
            raise NotFound("person_alias", alias_id)
        return removed

    async def aliases_page(self, person_id: UUID | str, *, page_size: int = 0,
                           page_token: str | None = None) -> Page[PersonAlias]:
        """list_aliases() a page at a time."""
        return await fetch_page(self.conn, PersonAlias, select=_ALIAS_COLUMNS, table="person_aliases",
                                filters=Filters().eq("person_id", as_uuid("person_id", person_id)),
                                keyset=_BY_ALIAS_NAME, page_size=page_size, page_token=page_token,
                                resource="person_alias")

    async def list_aliases(self, person_id: UUID | str) -> list[PersonAlias]:
        query = sql.SQL("SELECT {} FROM person_aliases WHERE person_id = %s ORDER BY alias_name").format(_ALIAS_COLUMNS)
        return await fetch_all(self.conn, PersonAlias, query, (as_uuid("person_id", person_id),))

    # ----------------------------------------------------------------------- merges

    async def merge(self, target_id: UUID | str, source_ids: Iterable[UUID | str]) -> None:
        """Merge duplicate persons into the target and delete them. Their faces, labels, aliases and
        names (as aliases), watchlist entries, events, alerts and alert rules move to the target. The
        target keeps its primary faces; for a model version it has none of, a source's primary stays."""
        target_id = as_uuid("target_id", target_id)
        source_ids = list(dict.fromkeys(as_uuid("source_ids", s) for s in source_ids))
        if target_id in source_ids:
            raise InvalidArgument("source_ids", "a person cannot be merged into itself")
        await self._require_all([target_id, *source_ids])
        ids = {"target": target_id, "sources": source_ids}
        async with guarded(self.conn, "person"):
            for statement in _MERGE_STATEMENTS:
                await self.conn.execute(statement, ids)
        await FaceEmbeddingRepository(self.conn).settle_primaries(target_id)

    async def _require_all(self, person_ids: list[UUID]) -> None:
        cur = await self.conn.execute("SELECT id FROM persons WHERE id = ANY(%s)", (person_ids,))
        found = {row["id"] for row in await cur.fetchall()}
        for person_id in person_ids:
            if person_id not in found:
                raise NotFound("person", person_id)


# What merge() runs, in order: everything that refers to a source moves before the sources go.
_MERGE_STATEMENTS = (
    # Source faces keep their primary flag only where the target has no primary of that version.
    "UPDATE face_embeddings f SET person_id = %(target)s, is_primary = f.is_primary AND NOT EXISTS"
    " (SELECT 1 FROM face_embeddings t WHERE t.person_id = %(target)s AND t.model_version = f.model_version"
    " AND t.is_primary) WHERE f.person_id = ANY(%(sources)s)",
    "INSERT INTO person_labels (person_id, label, created_by, created_at)"
    " SELECT %(target)s, label, created_by, created_at FROM person_labels WHERE person_id = ANY(%(sources)s)"
    " ON CONFLICT (person_id, label) DO NOTHING",
    "INSERT INTO person_aliases (person_id, alias_name)"
    " SELECT %(target)s, alias FROM (SELECT alias_name AS alias FROM person_aliases"
    " WHERE person_id = ANY(%(sources)s) UNION SELECT name FROM persons WHERE id = ANY(%(sources)s)) s"
    " WHERE alias IS NOT NULL AND alias IS DISTINCT FROM (SELECT name FROM persons WHERE id = %(target)s)"
    " ON CONFLICT (person_id, alias_name) DO NOTHING",
    # One entry per watchlist: the target's own, else the earliest of the sources'.
    "UPDATE watchlist_entries SET person_id = %(target)s WHERE id IN"
    " (SELECT DISTINCT ON (watchlist_id) id FROM watchlist_entries WHERE person_id = ANY(%(sources)s)"
    " AND watchlist_id NOT IN (SELECT watchlist_id FROM watchlist_entries WHERE person_id = %(target)s)"
    " ORDER BY watchlist_id, added_at, id)",
    "UPDATE events SET person_id = %(target)s WHERE person_id = ANY(%(sources)s)",
    "UPDATE alerts SET person_id = %(target)s WHERE person_id = ANY(%(sources)s)",
    "UPDATE alert_rules SET person_id = %(target)s WHERE person_id = ANY(%(sources)s)",
    "DELETE FROM persons WHERE id = ANY(%(sources)s)",
)
