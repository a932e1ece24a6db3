"""Audit entries written by the application (logins, key use, reviews, exports...).

Table changes are audited by the schema's triggers; this records what only the application
knows. Secret-looking values are redacted before they reach the table, like fn_audit_redact
does for trigger-written rows.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from vigil.errors import InvalidArgument
from vigil.storage.repositories.base import (
    Keyset,
    Page,
    as_uuid,
    aware,
    columns_of,
    fetch_page,
    guarded,
    optional_uuid,
    parse_timestamp,
)
from vigil.storage.repositories.filters import Filters

REDACTED = "[REDACTED]"
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# A key is secret when it names a password, secret, token, MFA secret, private or API key, a hash
# or a ciphertext; identifiers and flags about those (api_key_id, key_prefix, mfa_enabled) are not.
_SECRET_KEY = re.compile(r"password|passwd|secret|token|mfa|credential|(^|_)(api)?key$|_hash$|_encrypted$")
_NOT_SECRET_KEY = re.compile(r"(_id|_ids|_prefix|_enabled|_used|_count|_at)$")
_URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact(value: Any) -> Any:
    """A copy of a JSON-like document with secret values replaced, at any depth, and
    user:password@ removed from URLs."""
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_key(str(k)) and value[k] is not None else redact(value[k]) for k in value}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _URL_CREDENTIALS.sub(rf"\1{REDACTED}@", value)
    return value


def _is_secret_key(key: str) -> bool:
    key = key.lower()
    return bool(_SECRET_KEY.search(key)) and not _NOT_SECRET_KEY.search(key)


@dataclass(frozen=True)
class AuditEntry:
    id: UUID
    user_id: UUID | None  # None for service actions and API keys without a user
    action: str
    resource_type: str
    resource_id: UUID | None
    details: dict[str, Any]  # changed_fields, api_key_id and the action's context, redacted
    ip_address: IpAddress | None
    user_agent: str | None
    timestamp: datetime


_COLUMNS = columns_of(AuditEntry)
_NEWEST_FIRST = Keyset(("timestamp", "id"), (parse_timestamp, UUID))


def _client_ip(value: str | None) -> IpAddress | None:
    if value is None:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise InvalidArgument("client_ip", f"not an IP address: {value!r}") from None


class AuditLogRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def record(self, action: str, resource_type: str, *, resource_id: UUID | str | None = None,
                     user_id: UUID | str | None = None, api_key_id: UUID | str | None = None,
                     changed_fields: dict[str, Any] | None = None, details: dict[str, Any] | None = None,
                     client_ip: str | None = None, user_agent: str | None = None) -> AuditEntry:
        """audit_logs has no API key column: the key acting goes into details.api_key_id.

        Written without RETURNING: RLS lets anybody append but only admins and the entry's own
        user read it back, so the entry is built from what was written.
        """
        document = dict(details or {})
        if changed_fields is not None:
            document["changed_fields"] = changed_fields
        if api_key_id is not None:
            document["api_key_id"] = str(as_uuid("api_key_id", api_key_id))
        entry = AuditEntry(
            id=uuid.uuid4(), user_id=optional_uuid("user_id", user_id), action=action, resource_type=resource_type,
            resource_id=optional_uuid("resource_id", resource_id), details=redact(document),
            ip_address=_client_ip(client_ip), user_agent=user_agent, timestamp=datetime.now(UTC))
        values = {**dataclasses.asdict(entry), "details": Jsonb(entry.details)}
        query = sql.SQL("INSERT INTO audit_logs ({}) VALUES ({})").format(
            sql.SQL(", ").join(map(sql.Identifier, values)), sql.SQL(", ").join(sql.Placeholder() * len(values)))
        async with guarded(self.conn, "audit_entry", values):
            await self.conn.execute(query, list(values.values()))
        return entry

    async def list(
        self,
        *,
        user_id: UUID | str | None = None,
        api_key_id: UUID | str | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: UUID | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 0,
        page_token: str | None = None,
    ) -> Page[AuditEntry]:
        """Newest first; `since` is inclusive, `until` exclusive."""
        filters = Filters().eq("user_id", optional_uuid("user_id", user_id)).eq("action", action)
        filters.eq("resource_type", resource_type).eq("resource_id", optional_uuid("resource_id", resource_id))
        if api_key_id is not None:
            filters.raw("details ->> 'api_key_id' = %s", str(as_uuid("api_key_id", api_key_id)))
        filters.range("timestamp", aware("since", since), aware("until", until))
        return await fetch_page(self.conn, AuditEntry, select=_COLUMNS, table="audit_logs", filters=filters,
                                keyset=_NEWEST_FIRST, page_size=page_size, page_token=page_token,
                                resource="audit_entry")
