"""The person registry with its labels and aliases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from vigil.storage.repositories.base import (
    BY_CREATED_AT,
    NotFound,
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
    update_row,
)


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


_PERSON_COLUMNS = columns_of(Person)
_LABEL_COLUMNS = columns_of(PersonLabel)
_ALIAS_COLUMNS = columns_of(PersonAlias)
_PERSON_UPDATABLE = ("name", "status", "role", "department", "company", "notes")
_OF_PERSON = {"person_id": "person"}  # a missing person_id is the resource the call is on


def _like_pattern(text: str) -> str:
    """Substring match for ILIKE with the caller's % and _ taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


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
        where, params = [], []
        if status is not None:
            where.append(sql.SQL("status = %s::person_status_enum"))
            params.append(status)
        if label is not None:
            where.append(sql.SQL("EXISTS (SELECT 1 FROM person_labels l"
                                 " WHERE l.person_id = persons.id AND l.label = %s::person_label_enum)"))
            params.append(label)
        if search:
            pattern = _like_pattern(search)
            where.append(sql.SQL("(name ILIKE %s OR EXISTS (SELECT 1 FROM person_aliases a"
                                 " WHERE a.person_id = persons.id AND a.alias_name ILIKE %s))"))
            params.extend([pattern, pattern])
        return await fetch_page(self.conn, Person, select=_PERSON_COLUMNS, table="persons", where=where,
                                params=params, keyset=BY_CREATED_AT, page_size=page_size, page_token=page_token,
                                resource="person", values={"status": status, "label": label})

    async def update(self, person_id: UUID | str, changes: dict[str, Any]) -> Person:
        check_updatable("person", changes, _PERSON_UPDATABLE)
        return await update_row(self.conn, "persons", as_uuid("person_id", person_id), changes, Person,
                                _PERSON_COLUMNS, "person")

    async def delete(self, person_id: UUID | str) -> None:
        """Deletes the person with their embeddings, labels, aliases and watchlist entries."""
        await delete_row(self.conn, "persons", as_uuid("person_id", person_id), "person")

    # ----------------------------------------------------------------------- labels

    async def add_label(self, person_id: UUID | str, label: str, *, created_by: UUID | str | None = None) -> PersonLabel:
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

    async def list_aliases(self, person_id: UUID | str) -> list[PersonAlias]:
        query = sql.SQL("SELECT {} FROM person_aliases WHERE person_id = %s ORDER BY alias_name").format(_ALIAS_COLUMNS)
        return await fetch_all(self.conn, PersonAlias, query, (as_uuid("person_id", person_id),))
