"""The search log (ChronoTrace's `searches`): one row per search with who ran it, what it asked
(query type, model version, filters), what it found (result count, top score, matched persons in
metadata) and where its time went."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from vigil.errors import InvalidArgument
from vigil.storage.repositories.base import (
    BY_CREATED_AT,
    Page,
    aware,
    columns_of,
    fetch_page,
    insert_row,
    optional_uuid,
)
from vigil.storage.repositories.filters import Filters

QUERY_TYPES = ("text", "face", "image", "person", "event")  # searches.query_type, see 0015


@dataclass(frozen=True)
class SearchTimings:
    """Milliseconds: the probe's embedding, the k-NN search, the other queries, and the whole."""

    embed_ms: float = 0.0
    vector_ms: float = 0.0
    db_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class SearchRecord:
    id: UUID
    user_id: UUID | None
    api_key_id: UUID | None
    query_type: str
    model_version: str | None
    filters: dict[str, Any]
    result_count: int
    top_score: float | None
    execution_time_ms: float
    embed_time_ms: float
    vector_time_ms: float
    db_time_ms: float
    ip_address: IPv4Address | IPv6Address | None
    metadata: dict[str, Any]
    created_at: datetime


_COLUMNS = columns_of(SearchRecord, top_score=sql.SQL("top_score::float8"),
                      execution_time_ms=sql.SQL("coalesce(execution_time_ms, 0)::float8"),
                      embed_time_ms=sql.SQL("coalesce(embed_time_ms, 0)::float8"),
                      vector_time_ms=sql.SQL("coalesce(vector_time_ms, 0)::float8"),
                      db_time_ms=sql.SQL("coalesce(db_time_ms, 0)::float8"),
                      result_count=sql.SQL("coalesce(result_count, 0)"))


def _query_type(value: str) -> str:
    if value not in QUERY_TYPES:
        raise InvalidArgument("query_type", f"must be one of {', '.join(QUERY_TYPES)}")
    return value


def _milliseconds(field: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidArgument(field, "must be a finite number of milliseconds >= 0")
    return float(value)


def _ip(value: str | None) -> IPv4Address | IPv6Address | None:
    try:
        return None if value is None else ip_address(value)
    except ValueError:
        return None  # a peer that is no IP address (a Unix socket) is recorded without one


class SearchRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def record(self, query_type: str, *, user_id: UUID | str | None, api_key_id: UUID | str | None,
                     model_version: str | None, filters: dict[str, Any], result_count: int,
                     top_score: float | None, timings: SearchTimings, client_ip: str | None = None,
                     metadata: dict[str, Any] | None = None) -> SearchRecord:
        """Log one search. `top_score` is the best similarity found (None when nothing was)."""
        if top_score is not None and not (math.isfinite(top_score) and -1.0 <= top_score <= 1.0):
            raise InvalidArgument("top_score", "must be a similarity in [-1, 1]")
        values = {
            "user_id": optional_uuid("user_id", user_id),
            "api_key_id": optional_uuid("api_key_id", api_key_id),
            "query_type": _query_type(query_type),
            "model_version": model_version,
            "filters": Jsonb(filters),
            "result_count": result_count,
            "top_score": None if top_score is None else round(top_score, 4),
            "execution_time_ms": _milliseconds("timings.total_ms", timings.total_ms),
            "embed_time_ms": _milliseconds("timings.embed_ms", timings.embed_ms),
            "vector_time_ms": _milliseconds("timings.vector_ms", timings.vector_ms),
            "db_time_ms": _milliseconds("timings.db_ms", timings.db_ms),
            "ip_address": _ip(client_ip),
            "metadata": Jsonb(metadata or {}),
        }
        return await insert_row(self.conn, "searches", values, SearchRecord, _COLUMNS, "search",
                                parents={"model_version": "model_version"})

    async def list(self, *, query_types: list[str] | None = None, user_id: UUID | str | None = None,
                   api_key_id: UUID | str | None = None, since: datetime | None = None,
                   until: datetime | None = None, page_size: int = 0, page_token: str | None = None
                   ) -> Page[SearchRecord]:
        """Newest first; `since` is inclusive, `until` exclusive; empty or None query_types: any."""
        filters = Filters().any("query_type", [_query_type(t) for t in query_types] if query_types else None)
        filters.eq("user_id", optional_uuid("user_id", user_id))
        filters.eq("api_key_id", optional_uuid("api_key_id", api_key_id))
        filters.range("created_at", aware("since", since), aware("until", until))
        return await fetch_page(self.conn, SearchRecord, select=_COLUMNS, table="searches", filters=filters,
                                keyset=BY_CREATED_AT, page_size=page_size, page_token=page_token, resource="search",
                                values={"query_types": query_types})
