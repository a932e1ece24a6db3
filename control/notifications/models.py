"""The values notification delivery works with: how a channel is configured, what is sent, and
what came of an attempt."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

# --------------------------------------------------------------------------- channel configuration


@dataclass(frozen=True)
class DeliveryPolicy:
    """Stored in notification_channels.config under the seed's key names."""

    timeout_seconds: float = 30.0  # for one attempt
    retry_count: int = 3  # retries after a failed attempt: at most retry_count + 1 attempts
    rate_limit_per_min: int = 60  # attempts started per minute; excess ones wait, none are dropped


@dataclass(frozen=True)
class WebhookSettings:
    channel_type: ClassVar[str] = "webhook"
    url: str


@dataclass(frozen=True)
class EmailSettings:
    channel_type: ClassVar[str] = "email"
    smtp_host: str
    from_address: str
    to_addresses: tuple[str, ...]
    smtp_port: int = 0  # 0: the port of the security mode (587, 465, 25)
    security: str = "starttls"  # starttls | tls | none
    username: str | None = None  # None: no authentication
    subject_template: str | None = None  # None: templates.EMAIL_SUBJECT
    body_template: str | None = None  # None: templates.EMAIL_BODY


@dataclass(frozen=True)
class TelegramSettings:
    channel_type: ClassVar[str] = "telegram"
    chat_id: str
    base_url: str | None = None  # None: https://api.telegram.org
    message_template: str | None = None  # None on create: the schema default (templates.TELEGRAM)


@dataclass(frozen=True)
class WhatsAppSettings:
    channel_type: ClassVar[str] = "whatsapp"
    phone_number_id: str
    recipients: tuple[str, ...]  # E.164 phone numbers or provider group ids
    base_url: str | None = None  # None: https://graph.facebook.com/v20.0
    message_template: str | None = None  # None on create: the schema default (templates.WHATSAPP)


ChannelSettings = WebhookSettings | EmailSettings | TelegramSettings | WhatsAppSettings
SETTINGS_TYPES: dict[str, type] = {t.channel_type: t for t in (WebhookSettings, EmailSettings, TelegramSettings,
                                                               WhatsAppSettings)}


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


# --------------------------------------------------------------------------- what is sent


@dataclass(frozen=True)
class Notification:
    """One alert, with what the message templates and the webhook body need."""

    alert_id: UUID
    alert_type: str
    severity: str
    message: str
    created_at: datetime
    camera_name: str
    location: str | None
    site_name: str
    person_name: str | None
    confidence: float | None  # in [0, 1]; None when the triggering event is gone
    document: dict[str, Any] = field(default_factory=dict)  # the alert in proto3 JSON form (webhook body)


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class DeliveryResult:
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
