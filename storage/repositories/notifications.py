"""Notification channels (secrets encrypted at rest) and the record of delivery attempts.

Webhook and e-mail settings live in notification_channels.config beside the seed's delivery keys;
Telegram and WhatsApp settings in their own tables. One secret per channel, in the column of its
type, encrypted with SecretBox and bound to that column and channel. The delivery table is also
the durable queue: attempts are claimed with conditional updates, so replicas never both start
the same attempt. What a channel's settings may be is channel_settings.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from vigil.errors import InvalidArgument, NotFound
from vigil.storage.crypto import SecretBox
from vigil.storage.locks import transaction_lock
from vigil.storage.repositories.base import (
    BY_CREATED_AT,
    BY_NAME,
    Page,
    as_uuid,
    aware,
    check_updatable,
    delete_row,
    fetch_all,
    fetch_one,
    fetch_page,
    guarded,
    uuid_list,
)
from vigil.storage.repositories.channel_settings import (
    SETTINGS_TYPES,
    ChannelSettings,
    DeliveryPolicy,
    EmailSettings,
    TelegramSettings,
    WebhookSettings,
    check_name,
    check_policy,
    check_secret,
    check_settings,
)
from vigil.storage.repositories.filters import Filters

# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Channel:
    """A notification channel as stored, without its secret."""

    id: UUID
    name: str
    settings: ChannelSettings
    delivery: DeliveryPolicy
    is_active: bool
    has_secret: bool  # webhook signing secret, SMTP password, bot token or API key
    created_by: UUID | None
    created_at: datetime

    @property
    def channel_type(self) -> str:
        return self.settings.channel_type


@dataclass(frozen=True)
class DeliveryResult:
    """What came of one attempt, as its channel reports it; finish() records it."""

    delivered: bool
    response_code: int | None = None  # HTTP status or SMTP reply code; None without a response
    error: str | None = None  # never contains secrets
    retryable: bool = False  # for failures: may another attempt succeed?

    @classmethod
    def success(cls, response_code: int | None, note: str | None = None) -> DeliveryResult:
        return cls(True, response_code, note)

    @classmethod
    def failure(cls, error: str, *, response_code: int | None = None, retryable: bool) -> DeliveryResult:
        return cls(False, response_code, error, retryable)


@dataclass(frozen=True)
class Delivery:
    """One row of notification_deliveries: an attempt, scheduled, running or finished."""

    id: UUID
    alert_id: UUID
    channel_id: UUID
    channel_type: str
    attempt: int
    status: str  # queued | sending | delivered | failed | gave_up
    response_code: int | None
    error: str | None
    latency_ms: int | None
    created_at: datetime  # when the attempt was scheduled
    attempted_at: datetime | None  # when it started
    next_attempt_at: datetime | None  # queued: when due; failed: when the retry is due


RESOURCE = "notification_channel"
DELIVERY_STATUSES = ("queued", "sending", "delivered", "failed", "gave_up")
_UPDATABLE = ("name", "is_active", "delivery", "settings", "secret")

# channel type -> (table, column, key column) holding its secret
_SECRET_COLUMNS = {
    "webhook": ("notification_channels", "signing_secret_encrypted", "id"),
    "email": ("notification_channels", "smtp_password_encrypted", "id"),
    "telegram": ("telegram_configs", "bot_token_encrypted", "channel_id"),
    "whatsapp": ("whatsapp_configs", "api_key_encrypted", "channel_id"),
}


def _secret_context(channel_type: str, channel_id: UUID) -> str:
    # binds the ciphertext to its column and channel: copied elsewhere, it does not decrypt
    table, column, _ = _SECRET_COLUMNS[channel_type]
    return f"{table}.{column}:{channel_id}"


# --------------------------------------------------------------------------- rows <-> channels

_CHANNEL_SELECT = sql.SQL("""id, name, channel_type::text AS channel_type, config, is_active, created_by, created_at,
    CASE channel_type WHEN 'webhook' THEN signing_secret_encrypted IS NOT NULL
                      WHEN 'email' THEN smtp_password_encrypted IS NOT NULL
                      ELSE TRUE END AS has_secret,
    (SELECT jsonb_build_object('chat_id', t.chat_id, 'base_url', t.base_url, 'message_template', t.message_template)
       FROM telegram_configs t WHERE t.channel_id = notification_channels.id) AS telegram,
    (SELECT jsonb_build_object('phone_number_id', w.phone_number_id, 'recipients', w.recipient_groups,
                               'base_url', w.base_url, 'message_template', w.message_template)
       FROM whatsapp_configs w WHERE w.channel_id = notification_channels.id) AS whatsapp""")

_POLICY_KEYS = ("timeout_seconds", "retry_count", "rate_limit_per_min")


class _ChannelRow:
    """Builds Channel models from rows (the base helpers call from_row)."""

    @staticmethod
    def from_row(row: Mapping[str, Any]) -> Channel:
        config = row["config"]
        policy = DeliveryPolicy(**{k: config[k] for k in _POLICY_KEYS if k in config})
        kind = row["channel_type"]
        stored = row[kind] if kind in ("telegram", "whatsapp") else config
        settings_type = SETTINGS_TYPES[kind]
        settings = settings_type(**{f.name: _frozen(stored[f.name]) for f in fields(settings_type) if f.name in stored})
        return Channel(id=row["id"], name=row["name"], settings=settings, delivery=policy,
                       is_active=row["is_active"], has_secret=row["has_secret"], created_by=row["created_by"],
                       created_at=row["created_at"])


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _config(settings: ChannelSettings, policy: DeliveryPolicy) -> Jsonb:
    """notification_channels.config: the delivery keys, plus the settings of webhook and e-mail."""
    config: dict[str, Any] = asdict(policy)
    if isinstance(settings, (WebhookSettings, EmailSettings)):
        config |= asdict(settings)
    return Jsonb(config)


def _type_table_values(settings: ChannelSettings) -> tuple[str, dict[str, Any]]:
    """The Telegram / WhatsApp table and its columns; no template means the schema's default."""
    if isinstance(settings, TelegramSettings):
        return "telegram_configs", {"chat_id": settings.chat_id, "base_url": settings.base_url,
                                    "message_template": settings.message_template or sql.DEFAULT}
    return "whatsapp_configs", {"phone_number_id": settings.phone_number_id,
                                "recipient_groups": Jsonb(list(settings.recipients)), "base_url": settings.base_url,
                                "message_template": settings.message_template or sql.DEFAULT}


# --------------------------------------------------------------------------- channels


class ChannelRepository:
    def __init__(self, conn: psycopg.AsyncConnection, secrets: SecretBox):
        self.conn = conn
        self.secrets = secrets

    async def create(self, name: str, settings: ChannelSettings, *, secret: str | None = None,
                     delivery: DeliveryPolicy = DeliveryPolicy(), is_active: bool = True,  # noqa: B008
                     created_by: UUID | str | None = None) -> Channel:
        """`secret` is the webhook signing secret, SMTP password, bot token or API key."""
        check_name(name)
        check_settings(settings)
        check_policy(delivery)
        check_secret(settings, secret)
        channel_id = uuid4()  # known before the insert: the ciphertext is bound to it
        kind = settings.channel_type
        values: dict[str, Any] = {"id": channel_id, "name": name, "channel_type": kind,
                                  "config": _config(settings, delivery), "is_active": is_active,
                                  "created_by": None if created_by is None else as_uuid("created_by", created_by)}
        type_table, type_values = None, {}
        if kind in ("webhook", "email"):
            values[_SECRET_COLUMNS[kind][1]] = self._encrypt(kind, channel_id, secret)
        else:
            type_table, type_values = _type_table_values(settings)
            type_values |= {"channel_id": channel_id,
                            _SECRET_COLUMNS[kind][1]: self._encrypt(kind, channel_id, secret)}
        async with guarded(self.conn, RESOURCE, values | type_values):
            await self.conn.execute(_insert("notification_channels", values), _params(values))
            if type_table:
                await self.conn.execute(_insert(type_table, type_values), _params(type_values))
        return await self.get(channel_id)

    async def get(self, channel_id: UUID | str) -> Channel:
        channel_id = as_uuid("channel_id", channel_id)
        channel = await fetch_one(self.conn, _ChannelRow, sql.SQL(
            "SELECT {} FROM notification_channels WHERE id = %s").format(_CHANNEL_SELECT), (channel_id,))
        if channel is None:
            raise NotFound(RESOURCE, channel_id)
        return channel

    async def list(self, *, channel_types: Iterable[str] | None = None, is_active: bool | None = None,
                   page_size: int = 0, page_token: str | None = None) -> Page[Channel]:
        """Ordered by name."""
        channel_types = None if channel_types is None else list(channel_types)
        filters = Filters().any("channel_type", channel_types, cast="channel_type_enum").eq("is_active", is_active)
        return await fetch_page(self.conn, _ChannelRow, select=_CHANNEL_SELECT, table="notification_channels",
                                filters=filters, keyset=BY_NAME, page_size=page_size,
                                page_token=page_token, resource=RESOURCE, values={"channel_types": channel_types})

    async def update(self, channel_id: UUID | str, changes: Mapping[str, Any]) -> Channel:
        """Changes name, is_active, delivery (a DeliveryPolicy), settings (of the same type) and/or
        secret (None clears an optional one). The channel type cannot change."""
        check_updatable(RESOURCE, changes, _UPDATABLE)
        current = await self.get(channel_id)
        kind = current.channel_type
        settings = changes.get("settings", current.settings)
        if settings.channel_type != kind:
            raise InvalidArgument("config", f"the channel type cannot change (it is {kind})")
        policy = changes.get("delivery", current.delivery)
        values: dict[str, Any] = {}
        if "name" in changes:
            values["name"] = check_name(changes["name"])
        if "is_active" in changes:
            values["is_active"] = bool(changes["is_active"])
        if "settings" in changes or "delivery" in changes:
            values["config"] = _config(check_settings(settings), check_policy(policy))
        type_values: dict[str, Any] = {}
        if kind in ("telegram", "whatsapp") and "settings" in changes:
            type_values = _type_table_values(settings)[1]
        if "secret" in changes:
            secret = check_secret(settings, changes["secret"])
            target = values if kind in ("webhook", "email") else type_values
            target[_SECRET_COLUMNS[kind][1]] = self._encrypt(kind, current.id, secret)
        async with guarded(self.conn, RESOURCE, values | type_values):
            if values:
                await self.conn.execute(_update("notification_channels", "id", values), [*_params(values), current.id])
            if type_values:
                table = _SECRET_COLUMNS[kind][0]
                await self.conn.execute(_update(table, "channel_id", type_values), [*_params(type_values), current.id])
        return await self.get(current.id)

    async def delete(self, channel_id: UUID | str) -> None:
        """Its Telegram / WhatsApp settings and its delivery record go with it (ON DELETE CASCADE)."""
        await delete_row(self.conn, "notification_channels", as_uuid("channel_id", channel_id), RESOURCE)

    async def secret(self, channel: Channel) -> str | None:
        """Decrypts on demand; only the dispatcher that sends through the channel should call this."""
        table, column, key = _SECRET_COLUMNS[channel.channel_type]
        cur = await self.conn.execute(sql.SQL("SELECT {} AS secret FROM {} WHERE {} = %s").format(
            sql.Identifier(column), sql.Identifier(table), sql.Identifier(key)), (channel.id,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(RESOURCE, channel.id)
        blob = row["secret"]
        return None if blob is None else self.secrets.decrypt(bytes(blob), _secret_context(channel.channel_type,
                                                                                           channel.id))

    def _encrypt(self, channel_type: str, channel_id: UUID, secret: str | None) -> bytes | None:
        return None if secret is None else self.secrets.encrypt(secret, _secret_context(channel_type, channel_id))


# Values may be sql.DEFAULT: the column's default is written, and no parameter is passed for it.

def _slot(value: Any) -> sql.Composable:
    return value if value is sql.DEFAULT else sql.Placeholder()


def _params(values: Mapping[str, Any]) -> list[Any]:
    return [v for v in values.values() if v is not sql.DEFAULT]


def _insert(table: str, values: Mapping[str, Any]) -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(_slot(v) for v in values.values()))


def _update(table: str, key: str, values: Mapping[str, Any]) -> sql.Composed:
    return sql.SQL("UPDATE {} SET {} WHERE {} = %s").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), _slot(v)) for c, v in values.items()),
        sql.Identifier(key))


# --------------------------------------------------------------------------- deliveries

_DELIVERY_COLUMNS = sql.SQL("""notification_deliveries.id, notification_deliveries.alert_id,
    notification_deliveries.channel_id,
    (SELECT c.channel_type::text FROM notification_channels c
      WHERE c.id = notification_deliveries.channel_id) AS channel_type,
    notification_deliveries.attempt, notification_deliveries.status::text AS status,
    notification_deliveries.response_code, notification_deliveries.error, notification_deliveries.latency_ms,
    notification_deliveries.created_at, notification_deliveries.attempted_at,
    notification_deliveries.next_attempt_at""")

# Due attempts, per channel at most min(the free slots the dispatcher reports, what the channel's
# rate limit leaves of the last minute), oldest first; rows another replica holds are skipped.
# Channels are few (seed: ~50), so this is a few index probes per channel, however long a
# dead channel's backlog grows.
_CLAIM_DUE = sql.SQL("""
WITH free AS (SELECT * FROM unnest(%(channel_ids)s::uuid[], %(slots)s::int[]) AS f(channel_id, slots)),
picked AS (
    SELECT due.id FROM notification_channels c
    LEFT JOIN free ON free.channel_id = c.id
    CROSS JOIN LATERAL (
        SELECT d.id FROM notification_deliveries d
        WHERE d.channel_id = c.id AND d.status = 'queued' AND d.next_attempt_at <= now()
        ORDER BY d.next_attempt_at, d.id
        LIMIT GREATEST(0, LEAST(
            COALESCE(free.slots, %(default_slots)s),
            -- the channel's concurrency holds across replicas, as its rate limit does
            COALESCE(%(channel_limit)s::int, 2147483647) - (SELECT count(*) FROM notification_deliveries s
                                                            WHERE s.channel_id = c.id AND s.status = 'sending'),
            COALESCE((c.config->>'rate_limit_per_min')::int, 60)
              - (SELECT count(*) FROM notification_deliveries r
                 WHERE r.channel_id = c.id AND r.attempted_at > now() - interval '1 minute')))
        FOR UPDATE OF d SKIP LOCKED
    ) due
)
UPDATE notification_deliveries SET status = 'sending', attempted_at = now(), next_attempt_at = NULL
FROM picked WHERE notification_deliveries.id = picked.id
RETURNING {}""").format(_DELIVERY_COLUMNS)

# The outcome of a claimed attempt; a row no longer 'sending' was concluded by someone else.
_FINISH = sql.SQL("""
UPDATE notification_deliveries
SET status = %(status)s::delivery_status_enum, response_code = %(response_code)s, error = %(error)s,
    latency_ms = %(latency_ms)s,
    next_attempt_at = now() + make_interval(secs => %(retry_in)s::float8)
WHERE id = %(id)s AND status = 'sending'
RETURNING {}""").format(_DELIVERY_COLUMNS)

# the next attempt of the same notification round (0028)
_SCHEDULE_RETRY = sql.SQL("""
INSERT INTO notification_deliveries (alert_id, channel_id, round, attempt, status, next_attempt_at)
SELECT alert_id, channel_id, round, attempt + 1, 'queued', next_attempt_at FROM notification_deliveries WHERE id = %s
ON CONFLICT ON CONSTRAINT uq_deliveries_attempt DO NOTHING""")


# What a notification says about an alert: the alert with its camera, site and person names. The
# source's confidence stands in when the alert has no trigger evidence (raised outside rule
# evaluation); neither source is FK-enforced, so it may be gone (partition retention).
_CONTENT = """
SELECT a.id, a.alert_type, a.severity::text AS severity, a.message, a.status::text AS status, a.created_at,
       a.sent_at, a.acknowledged_by, a.acknowledged_at, a.resolved_by, a.resolved_at, a.alert_rule_id,
       a.person_id, a.event_id, a.suspicious_activity_id, a.camera_id, a.trigger_rule_id,
       a.trigger_clause::text AS trigger_clause, a.track_id, a.trigger_evidence,
       c.name AS camera_name, c.location, s.id AS site_id, s.name AS site_name, p.name AS person_name,
       COALESCE((a.trigger_evidence->>'confidence')::float8,
                (SELECT e.confidence::float8 FROM events e WHERE e.id = a.event_id LIMIT 1),
                (SELECT sa.confidence::float8 FROM suspicious_activity_events sa
                  WHERE sa.id = a.suspicious_activity_id LIMIT 1)) AS confidence
FROM alerts a
JOIN cameras c ON c.id = a.camera_id
JOIN dvrs d ON d.id = c.dvr_id
JOIN sites s ON s.id = d.site_id
LEFT JOIN persons p ON p.id = a.person_id
WHERE a.id = %s
"""


class DeliveryRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def content(self, alert_id: UUID) -> dict[str, Any]:
        """The row a notification is written from: the alert's columns (enums as text) with
        camera_name, location, site_id, site_name, person_name and confidence; NotFound when gone."""
        cur = await self.conn.execute(_CONTENT, (alert_id,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound("alert", alert_id)
        return row

    async def enqueue(self, alert_id: UUID | str, channel_ids: Iterable[UUID | str], *,
                      new_round: bool = False) -> list[Delivery]:
        """Schedule first attempts, due now. Inactive or missing channels and an alert not (or no
        longer) there are skipped, and so is an alert already queued for a channel, so calling it
        twice is harmless. Call it inside the transaction that creates the alert and nothing is
        ever lost between the two (then wake a dispatcher, or let its next sweep find them).
        new_round: notify again (an open alert's severity rose), as the round after the alert's last."""
        alert_id = as_uuid("alert_id", alert_id)
        channel_ids = uuid_list("channel_ids", channel_ids)
        query = sql.SQL("""
            INSERT INTO notification_deliveries (alert_id, channel_id, round, attempt, status, next_attempt_at)
            SELECT a.id, c.id, CASE WHEN %s THEN COALESCE((SELECT max(d.round) FROM notification_deliveries d
                                                          WHERE d.alert_id = a.id), 0) + 1 ELSE 1 END,
                   1, 'queued', now()
            FROM alerts a JOIN notification_channels c ON c.id = ANY(%s) AND c.is_active
            WHERE a.id = %s
            ON CONFLICT ON CONSTRAINT uq_deliveries_attempt DO NOTHING
            RETURNING {}""").format(_DELIVERY_COLUMNS)
        async with guarded(self.conn, "notification_delivery"):
            return await fetch_all(self.conn, Delivery, query, (new_round, channel_ids, alert_id))

    async def claim_due(self, free_slots: Mapping[UUID, int], default_slots: int, *,
                        channel_limit: int | None = None) -> list[Delivery]:
        """Mark due attempts 'sending' and return them: per channel at most its free slots
        (`default_slots` for channels not named), so that at most `channel_limit` are sending
        across all replicas, and what its rate limit allows. Claims take turns across replicas:
        two claims at once would each count the other's rows as not yet 'sending' and together
        exceed the limit."""
        query_params = {"channel_ids": list(free_slots), "slots": list(free_slots.values()),
                        "default_slots": default_slots, "channel_limit": channel_limit}
        async with self.conn.transaction(), guarded(self.conn, "notification_delivery"):
            await transaction_lock(self.conn, "vigil.notifications", "claim")
            return await fetch_all(self.conn, Delivery, _CLAIM_DUE, query_params)

    async def stale(self, older_than_seconds: float) -> list[Delivery]:
        """Attempts 'sending' for longer than any attempt may take: their dispatcher died."""
        query = sql.SQL("SELECT {} FROM notification_deliveries WHERE status = 'sending'"
                        " AND attempted_at < now() - make_interval(secs => %s) ORDER BY attempted_at").format(
            _DELIVERY_COLUMNS)
        return await fetch_all(self.conn, Delivery, query, (older_than_seconds,))

    async def finish(self, delivery: Delivery, result: DeliveryResult, latency_ms: int,
                     retry_in: float | None) -> Delivery | None:
        """Record the outcome of a claimed attempt: 'delivered'; 'failed' with the next attempt
        queued `retry_in` seconds from now; or 'gave_up' when retry_in is None. None when the
        attempt was concluded elsewhere meanwhile (then nothing changes)."""
        status = "delivered" if result.delivered else "failed" if retry_in is not None else "gave_up"
        params = {"id": delivery.id, "status": status, "response_code": result.response_code,
                  "error": None if result.error is None else result.error[:2000],
                  "latency_ms": max(0, latency_ms), "retry_in": retry_in if status == "failed" else None}
        async with guarded(self.conn, "notification_delivery"):
            finished = await fetch_one(self.conn, Delivery, _FINISH, params)
            if finished is not None and status == "failed":
                await self.conn.execute(_SCHEDULE_RETRY, (finished.id,))
        return finished

    async def release(self, delivery: Delivery) -> None:
        """Put a claimed attempt back in the queue, due now (its dispatcher is shutting down)."""
        async with guarded(self.conn, "notification_delivery"):
            await self.conn.execute(
                "UPDATE notification_deliveries SET status = 'queued', attempted_at = NULL, next_attempt_at = now()"
                " WHERE id = %s AND status = 'sending'", (delivery.id,))

    async def list(self, *, alert_ids: Iterable[UUID | str] | None = None,
                   channel_ids: Iterable[UUID | str] | None = None, statuses: Iterable[str] | None = None,
                   since: datetime | None = None, until: datetime | None = None, page_size: int = 0,
                   page_token: str | None = None) -> Page[Delivery]:
        """Newest first (by created_at, the time an attempt was scheduled); `since` inclusive,
        `until` exclusive."""
        statuses = None if statuses is None else list(statuses)
        filters = Filters().any("alert_id", uuid_list("alert_ids", alert_ids))
        filters.any("channel_id", uuid_list("channel_ids", channel_ids))
        if statuses is not None:
            unknown = set(statuses) - set(DELIVERY_STATUSES)
            if unknown:
                raise InvalidArgument("statuses", f"unknown status(es) {', '.join(sorted(unknown))}")
        filters.any("status", statuses, cast="delivery_status_enum")
        filters.range("created_at", aware("since", since), aware("until", until))
        return await fetch_page(self.conn, Delivery, select=_DELIVERY_COLUMNS, table="notification_deliveries",
                                filters=filters, keyset=BY_CREATED_AT, page_size=page_size,
                                page_token=page_token, resource="notification_delivery")
