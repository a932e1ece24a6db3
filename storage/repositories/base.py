"""What every repository shares: psycopg-error translation into vigil.errors, keyset pages and
small SQL builders over frozen dataclass models.

A database error caused by the request comes out as the error the API layer maps (the field for
INVALID_ARGUMENT, the resource for NOT_FOUND and ALREADY_EXISTS), so none surfaces as INTERNAL.
Every statement runs in a savepoint (`guarded`): a failed call writes nothing and leaves the
caller's transaction usable.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar
from uuid import UUID

import psycopg
from psycopg import errors, sql

from vigil.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RepositoryError,
)
from vigil.storage.repositories.filters import Filters

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


# --------------------------------------------------------------------------- psycopg errors


# Constraints whose violation does not name the API field by itself: CHECK constraints carry no
# column, and a composite key lists its scope first (dvr_id, channel_number) while the caller's
# mistake is the other column. Otherwise the first column of the violated key is the field.
CONSTRAINT_FIELDS = {
    "chk_embedding_quality": "face_quality",
    "chk_embedding_confidence": "confidence",
    "chk_embedding_dim": "embedding",
    "chk_embedding_dim_range": "embedding",
    "chk_events_confidence": "confidence",
    "chk_suspicious_confidence": "confidence",
    "chk_alert_rules_confidence": "confidence_threshold",
    "chk_model_versions_string": "version_string",
    "chk_model_versions_embedding_dim": "embedding_dim",
    "chk_model_versions_match_threshold": "match_threshold",
    "check_rate_limits_positive": "rate_limit_per_minute",
    "chk_api_keys_expiry": "expires_at",
    "chk_api_keys_key_hash_format": "key_hash",
    "chk_clips_duration": "duration",
    "chk_clips_time_range": "end_time",
    "uq_cameras_dvr_channel": "channel_number",
    "uq_aliases_person_name": "alias_name",
    "uq_labels_person_label": "label",
    "uq_watchlist_entry": "person_id",
    "uq_model_versions_string_dim": "version_string",
    "fk_embeddings_model_version": "model_version",
    # Tables under row-level security: PostgreSQL leaves the key out of their errors' details.
    "fk_events_camera": "camera_id",
    "fk_events_person": "person_id",
    "fk_events_cluster": "cluster_id",
    "fk_alerts_camera": "camera_id",
    "fk_alerts_rule": "alert_rule_id",
    "fk_alerts_person": "person_id",
    "fk_alerts_ack_by": "acknowledged_by",
    "fk_alerts_resolved_by": "resolved_by",
    "fk_persons_creator": "created_by",
    "fk_persons_primary_embedding": "primary_face_embedding_id",
    "fk_media_camera": "camera_id",
    "fk_audit_user": "user_id",
}

_KEY_DETAIL = re.compile(r"Key \((?P<columns>[^)]*)\)=\((?P<value>.*)\) ", re.S)
_QUOTED_INPUT = re.compile(r': "(?P<value>.*)"$', re.S)
_VARCHAR_LIMIT = re.compile(r"character varying\((\d+)\)")
_NUMERIC_LIMIT = re.compile(r"less than 10\^(-?\d+)")
_INT_RANGES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}


def translate(exc: psycopg.Error, resource: str, values: Mapping[str, Any] = {},
              parents: Mapping[str, str] = {}) -> RepositoryError | None:
    """The repository error for a database error caused by the request, or None (a real fault).

    `values` are the fields the statement was given, used to find which one the server rejected
    (data errors do not name their column). `parents` maps foreign-key columns that identify the
    resource a call is made on (e.g. person_id of add_alias) to its name: a missing parent is
    NOT_FOUND, a missing reference in a request body is INVALID_ARGUMENT.
    """
    diag = exc.diag
    if isinstance(exc, errors.UniqueViolation):
        return AlreadyExists(resource, _constraint_field(diag) or resource)
    if isinstance(exc, errors.ForeignKeyViolation):
        return _foreign_key_error(diag, resource, parents)
    if isinstance(exc, errors.CheckViolation):
        field = CONSTRAINT_FIELDS.get(diag.constraint_name or "", diag.constraint_name or resource)
        return InvalidArgument(field, f"violates {diag.constraint_name}")
    if isinstance(exc, errors.NotNullViolation):
        return InvalidArgument(diag.column_name or resource, "is required")
    if isinstance(exc, psycopg.DataError):
        return InvalidArgument(_offending_field(diag, values) or resource, diag.message_primary or str(exc))
    if isinstance(exc, errors.InsufficientPrivilege):
        return PermissionDenied(diag.message_primary or str(exc))
    return None


def _constraint_field(diag) -> str | None:
    name = diag.constraint_name or ""
    if name in CONSTRAINT_FIELDS:
        return CONSTRAINT_FIELDS[name]
    if name.endswith("_pkey"):  # every primary key is id, or (id, timestamp) on partitioned tables
        return "id"
    # "Key (camera_id)=(...) is not present ...": absent where the role may not read the key
    match = _KEY_DETAIL.match(diag.message_detail or "")
    return match["columns"].split(", ")[0] if match else None


def _foreign_key_error(diag, resource: str, parents: Mapping[str, str]) -> RepositoryError:
    if (diag.message_primary or "").startswith("update or delete"):
        return FailedPrecondition(f"{resource} is still referenced ({diag.message_primary})")
    field = _constraint_field(diag) or resource
    match = _KEY_DETAIL.match(diag.message_detail or "")
    value = match["value"].split(", ")[0] if match else None
    if field in parents:
        return NotFound(parents[field], value)
    return InvalidArgument(field, f"refers to a missing row ({value})")


def _offending_field(diag, values: Mapping[str, Any]) -> str | None:
    """Which of the given values the server rejected in a data error."""
    message = diag.message_primary or ""
    if quoted := _QUOTED_INPUT.search(message):
        for field, value in values.items():
            candidates = value if isinstance(value, (list, tuple, set, frozenset)) else (value,)
            if any(str(v) == quoted["value"] for v in candidates if v is not None):
                return field
    if limit := _VARCHAR_LIMIT.search(message):
        return _first(values, lambda v: isinstance(v, str) and len(v) > int(limit[1]))
    if limit := _NUMERIC_LIMIT.search(diag.message_detail or ""):
        bound = 10 ** int(limit[1])
        return _first(values, lambda v: isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)
                      and abs(v) >= bound)
    for type_name, bound in _INT_RANGES.items():
        if message.startswith(f"{type_name} out of range"):
            return _first(values, lambda v: isinstance(v, int) and not isinstance(v, bool) and not -bound <= v < bound)  # noqa: B023
    return None


def _first(values: Mapping[str, Any], predicate: Callable[[Any], bool]) -> str | None:
    return next((field for field, value in values.items() if predicate(value)), None)


@asynccontextmanager
async def guarded(conn: psycopg.AsyncConnection, resource: str, values: Mapping[str, Any] = {},
                  parents: Mapping[str, str] = {}) -> AsyncIterator[None]:
    """A savepoint (or a transaction, outside one) whose database errors come out translated.

    On any error the savepoint is rolled back first, so the call writes nothing and the
    caller's transaction stays usable.
    """
    try:
        async with conn.transaction():
            yield
    except psycopg.Error as exc:
        translated = translate(exc, resource, values, parents)
        if translated is None:
            raise
        raise translated from exc


@asynccontextmanager
async def translated(resource: str, values: Mapping[str, Any] = {},
                     parents: Mapping[str, str] = {}) -> AsyncIterator[None]:
    """Database errors translated as guarded() does, without its savepoint (two round trips fewer):
    for statements run inside a savepoint of the caller's that rolls back on error (a batch's on
    the ingest path)."""
    try:
        yield
    except psycopg.Error as exc:
        found = translate(exc, resource, values, parents)
        if found is None:
            raise
        raise found from exc


# --------------------------------------------------------------------------- argument checks


def as_uuid(field: str, value: UUID | str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidArgument(field, f"not a UUID: {value!r}") from None


def optional_uuid(field: str, value: UUID | str | None) -> UUID | None:
    return None if value is None else as_uuid(field, value)


def uuid_list(field: str, values: Iterable[UUID | str] | None) -> list[UUID] | None:
    return None if values is None else [as_uuid(field, v) for v in values]


def aware(field: str, value: datetime | None) -> datetime | None:
    """Timestamps must carry a time zone: a naive one would be read in the session's zone."""
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise InvalidArgument(field, "must be a timezone-aware datetime")
    return value


def unit_interval(field: str, value: float) -> float:
    if not isinstance(value, (int, float, Decimal)) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidArgument(field, f"must be a number in [0, 1], got {value!r}")
    return float(value)


def check_updatable(resource: str, changes: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Partial updates name their fields (FieldMask semantics); anything else is refused."""
    allowed = set(allowed)
    for field in changes:
        if field not in allowed:
            raise InvalidArgument(
                field, f"is not an updatable field of {resource} (allowed: {', '.join(sorted(allowed))})"
            )


# --------------------------------------------------------------------------- models and SQL


def columns_of(model: type, **expressions: sql.Composable) -> sql.Composed:
    """The select list for a dataclass model: its field names as columns, or `expression AS field`."""
    parts = []
    for f in dataclasses.fields(model):
        if f.name in expressions:
            parts.append(sql.SQL("{} AS {}").format(expressions[f.name], sql.Identifier(f.name)))
        else:
            parts.append(sql.Identifier(f.name))
    return sql.SQL(", ").join(parts)


def to_model(model: type[T], row: Mapping[str, Any]) -> T:
    """Build a model from a row; a model with a `from_row` classmethod converts its own columns."""
    if hasattr(model, "from_row"):
        return model.from_row(row)
    return model(**{f.name: row[f.name] for f in dataclasses.fields(model)})


async def fetch_one(conn: psycopg.AsyncConnection, model: type[T], query: sql.Composable,
                    params: Sequence[Any] | Mapping[str, Any] = ()) -> T | None:
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    return None if row is None else to_model(model, row)


async def fetch_all(conn: psycopg.AsyncConnection, model: type[T], query: sql.Composable,
                    params: Sequence[Any] | Mapping[str, Any] = ()) -> list[T]:
    cur = await conn.execute(query, params)
    return [to_model(model, row) for row in await cur.fetchall()]


async def insert_row(conn: psycopg.AsyncConnection, table: str, values: Mapping[str, Any], model: type[T],
                     returning: sql.Composable, resource: str, parents: Mapping[str, str] = {}) -> T:
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
        returning,
    )
    async with guarded(conn, resource, values, parents):
        return await fetch_one(conn, model, query, list(values.values()))


async def update_row(conn: psycopg.AsyncConnection, table: str, id: UUID, values: Mapping[str, Any],  # noqa: A002
                     model: type[T], returning: sql.Composable, resource: str) -> T:
    """Set the given columns of one row; NotFound when there is no such (visible) row."""
    if not values:
        found = await fetch_one(conn, model, sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
            returning, sql.Identifier(table)), (id,))
    else:
        query = sql.SQL("UPDATE {} SET {} WHERE id = %s RETURNING {}").format(
            sql.Identifier(table),
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values),
            returning,
        )
        async with guarded(conn, resource, values):
            found = await fetch_one(conn, model, query, [*values.values(), id])
    if found is None:
        raise NotFound(resource, id)
    return found


async def delete_row(conn: psycopg.AsyncConnection, table: str, id: UUID, resource: str) -> None:  # noqa: A002
    async with guarded(conn, resource):
        cur = await conn.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(table)), (id,))
    if cur.rowcount == 0:
        raise NotFound(resource, id)


# --------------------------------------------------------------------------- keyset pages


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str | None  # None on the last page


@dataclass(frozen=True)
class Keyset:
    """The sort key of a listing: columns (model fields too) and how to read each back from a token."""

    columns: tuple[str, ...]
    parsers: tuple[Callable[[str], Any], ...]
    descending: bool = True


def parse_timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("naive timestamp")
    return value


BY_CREATED_AT = Keyset(("created_at", "id"), (parse_timestamp, UUID))
BY_NAME = Keyset(("name", "id"), (str, UUID), descending=False)


def encode_page_token(key: Sequence[Any]) -> str:
    """Opaque token: base64url of JSON of the last row's sort key."""
    plain = [v.isoformat() if isinstance(v, datetime) else str(v) for v in key]
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_page_token(token: str, keyset: Keyset) -> tuple[Any, ...]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(raw, list) or len(raw) != len(keyset.parsers) or not all(isinstance(v, str) for v in raw):
            raise ValueError("wrong shape")
        return tuple(parse(v) for parse, v in zip(keyset.parsers, raw))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise InvalidArgument("page_token", "malformed page token") from None


def page_limit(page_size: int) -> int:
    """0 means the default (AIP-158); larger requests are capped."""
    if not isinstance(page_size, int) or page_size < 0:
        raise InvalidArgument("page_size", "must be a non-negative integer")
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


async def fetch_page(conn: psycopg.AsyncConnection, model: type[T], *, select: sql.Composable, table: str,
                     filters: Filters | None = None, keyset: Keyset, page_size: int, page_token: str | None,
                     resource: str, values: Mapping[str, Any] = {}) -> Page[T]:
    """One page of `SELECT select FROM table WHERE filters ORDER BY keyset` after the token's key."""
    limit = page_limit(page_size)
    conditions = Filters() if filters is None else filters.copy()
    key_columns = sql.SQL(", ").join(map(sql.Identifier, keyset.columns))
    if page_token:
        after = decode_page_token(page_token, keyset)
        conditions.raw(sql.SQL("({}) {} ({})").format(
            key_columns, sql.SQL("<" if keyset.descending else ">"),
            sql.SQL(", ").join(sql.Placeholder() * len(after))), *after)
    direction = sql.SQL(" DESC" if keyset.descending else " ASC")
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT {}").format(
        select, sql.Identifier(table), conditions.sql(),
        sql.SQL(", ").join(sql.Composed([sql.Identifier(c), direction]) for c in keyset.columns),
        sql.Literal(limit + 1),  # one more row tells whether another page follows
    )
    async with guarded(conn, resource, values):
        items = await fetch_all(conn, model, query, conditions.params)
    if len(items) <= limit:
        return Page(items, None)
    items = items[:limit]
    return Page(items, encode_page_token([getattr(items[-1], c) for c in keyset.columns]))
