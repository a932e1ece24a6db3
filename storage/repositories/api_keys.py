"""API keys for integrations: `vgl_<prefix>_<secret>`, shown once, stored only as a SHA-256 hash.

The secret carries 256 random bits, so a plain SHA-256 is enough (no slow KDF needed: there is
nothing to brute-force), and the lookup by hash uses the unique index. The prefix is stored in
clear to identify a key in listings and logs.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from vigil.errors import InvalidArgument, NotFound
from vigil.storage.repositories.base import (
    BY_CREATED_AT,
    Page,
    as_uuid,
    aware,
    columns_of,
    fetch_one,
    fetch_page,
    guarded,
    insert_row,
    optional_uuid,
)
from vigil.storage.repositories.filters import Filters

KEY_SCHEME = "vgl"
SECRET_BYTES = 32
_PREFIX_BYTES = 4
_KEY_FORMAT = re.compile(rf"^({KEY_SCHEME}_[0-9a-f]{{{2 * _PREFIX_BYTES}}})_[A-Za-z0-9_-]{{43}}$")
_SCOPE = re.compile(r"^[a-z_]+:[a-z_]+$")  # "<resource>:<action>" as in roles.permissions


@dataclass(frozen=True)
class ApiKey:
    id: UUID
    name: str | None
    description: str | None
    key_prefix: str  # e.g. "vgl_1a2b3c4d": enough to recognise a key, useless to use it
    role: str
    user_id: UUID | None
    site_id: UUID | None
    scopes: tuple[str, ...]  # narrows the role; empty = everything the role allows
    rate_limit_per_minute: int
    last_used_at: datetime | None
    request_count: int
    is_active: bool
    created_by: UUID | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    metadata: dict[str, Any]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiKey:
        return cls(**{**row, "scopes": tuple(row["scopes"])})


@dataclass(frozen=True)
class CreatedApiKey:
    key: ApiKey
    plaintext: str = field(repr=False)  # returned this once; only its hash is stored


class AuthStatus(enum.Enum):
    OK = "ok"
    UNKNOWN = "unknown"  # malformed, or no such key
    REVOKED = "revoked"
    EXPIRED = "expired"
    SUSPENDED = "suspended"  # is_active = false


@dataclass(frozen=True)
class AuthResult:
    status: AuthStatus
    key: ApiKey | None  # set for every status but UNKNOWN, so the refusal can be logged against it

    @property
    def ok(self) -> bool:
        return self.status is AuthStatus.OK


_COLUMNS = columns_of(ApiKey)


def _hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _scopes(scopes: Iterable[str]) -> list[str]:
    scopes = list(scopes)
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE.match(scope):
            raise InvalidArgument("scopes", f"{scope!r} is not of the form <resource>:<action>")
    return scopes


class ApiKeyRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def create(self, name: str, role: str, *, scopes: Iterable[str] = (), expires_at: datetime | None = None,
                     rate_limit_per_minute: int = 60, user_id: UUID | str | None = None,
                     site_id: UUID | str | None = None, description: str | None = None,
                     created_by: UUID | str | None = None, metadata: dict[str, Any] | None = None) -> CreatedApiKey:
        prefix = f"{KEY_SCHEME}_{secrets.token_hex(_PREFIX_BYTES)}"
        plaintext = f"{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
        values = {
            "name": name, "role": role, "scopes": _scopes(scopes), "expires_at": aware("expires_at", expires_at),
            "rate_limit_per_minute": rate_limit_per_minute, "user_id": optional_uuid("user_id", user_id),
            "site_id": optional_uuid("site_id", site_id), "description": description,
            "created_by": optional_uuid("created_by", created_by), "metadata": Jsonb(metadata or {}),
            "key_prefix": prefix, "key_hash": _hash(plaintext),
        }
        key = await insert_row(self.conn, "api_keys", values, ApiKey, _COLUMNS, "api_key")
        return CreatedApiKey(key, plaintext)

    async def get(self, key_id: UUID | str) -> ApiKey:
        key_id = as_uuid("key_id", key_id)
        key = await fetch_one(self.conn, ApiKey, sql.SQL("SELECT {} FROM api_keys WHERE id = %s").format(_COLUMNS),
                              (key_id,))
        if key is None:
            raise NotFound("api_key", key_id)
        return key

    async def list(self, *, user_id: UUID | str | None = None, include_revoked: bool = False, page_size: int = 0,
                   page_token: str | None = None) -> Page[ApiKey]:
        filters = Filters().eq("user_id", optional_uuid("user_id", user_id))
        if not include_revoked:
            filters.raw("revoked_at IS NULL")
        return await fetch_page(self.conn, ApiKey, select=_COLUMNS, table="api_keys", filters=filters,
                                keyset=BY_CREATED_AT, page_size=page_size, page_token=page_token, resource="api_key")

    async def authenticate(self, plaintext: str) -> AuthResult:
        """The key behind a presented secret and whether it may be used now (by the database clock)."""
        if not isinstance(plaintext, str) or not _KEY_FORMAT.match(plaintext):
            return AuthResult(AuthStatus.UNKNOWN, None)
        digest = _hash(plaintext)
        cur = await self.conn.execute(sql.SQL(
            "SELECT {}, key_hash, coalesce(expires_at <= now(), false) AS expired FROM api_keys WHERE key_hash = %s"
        ).format(_COLUMNS), (digest,))
        row = await cur.fetchone()
        # the index found the row; the constant-time comparison keeps the final check timing-neutral
        if row is None or not hmac.compare_digest(row.pop("key_hash"), digest):
            return AuthResult(AuthStatus.UNKNOWN, None)
        expired = row.pop("expired")
        key = ApiKey.from_row(row)
        if key.revoked_at is not None:
            return AuthResult(AuthStatus.REVOKED, key)
        if expired:
            return AuthResult(AuthStatus.EXPIRED, key)
        if not key.is_active:
            return AuthResult(AuthStatus.SUSPENDED, key)
        return AuthResult(AuthStatus.OK, key)

    async def revoke(self, key_id: UUID | str) -> ApiKey:
        """Permanent; revoking twice keeps the first revocation time."""
        key_id = as_uuid("key_id", key_id)
        async with guarded(self.conn, "api_key"):
            key = await fetch_one(self.conn, ApiKey, sql.SQL(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s RETURNING {}"
            ).format(_COLUMNS), (key_id,))
        if key is None:
            raise NotFound("api_key", key_id)
        return key

    async def touch_last_used(self, key_id: UUID | str) -> None:
        """Count a request (not audited: the audit trigger ignores these two columns)."""
        key_id = as_uuid("key_id", key_id)
        async with guarded(self.conn, "api_key"):
            cur = await self.conn.execute(
                "UPDATE api_keys SET last_used_at = now(), request_count = request_count + 1 WHERE id = %s", (key_id,))
        if cur.rowcount == 0:
            raise NotFound("api_key", key_id)
