"""Notification channel settings as they are stored: the values of each channel type, the delivery
policy, and the checks a channel passes before it is stored. Bad input is InvalidArgument naming
the field as AlertService names it (e.g. "webhook.url", "delivery.retry_count").

Message templates are text with `{{placeholder}}` slots; which placeholders exist is decided here,
where templates are checked, and the control plane renders them with TEMPLATE_SLOT.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

from vigil.errors import InvalidArgument

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
    subject_template: str | None = None  # None: the control plane's default subject
    body_template: str | None = None  # None: the control plane's default body


@dataclass(frozen=True)
class TelegramSettings:
    channel_type: ClassVar[str] = "telegram"
    chat_id: str
    base_url: str | None = None  # None: https://api.telegram.org
    message_template: str | None = None  # None on create: the schema default


@dataclass(frozen=True)
class WhatsAppSettings:
    channel_type: ClassVar[str] = "whatsapp"
    phone_number_id: str
    recipients: tuple[str, ...]  # E.164 phone numbers or provider group ids
    base_url: str | None = None  # None: https://graph.facebook.com/v20.0
    message_template: str | None = None  # None on create: the schema default


ChannelSettings = WebhookSettings | EmailSettings | TelegramSettings | WhatsAppSettings
SETTINGS_TYPES: dict[str, type] = {t.channel_type: t for t in (WebhookSettings, EmailSettings, TelegramSettings,
                                                               WhatsAppSettings)}


# --------------------------------------------------------------------------- templates

PLACEHOLDERS = ("alert_id", "alert_type", "message", "severity", "timestamp", "camera_name", "location",
                "site_name", "person_name", "confidence")
TEMPLATE_SLOT = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def check_template(field: str, template: str, max_length: int) -> str:
    """The template, or InvalidArgument naming the field (too long, unknown placeholders)."""
    if len(template) > max_length:
        raise InvalidArgument(field, f"must be at most {max_length} characters")
    unknown = sorted({m[1] for m in TEMPLATE_SLOT.finditer(template)} - set(PLACEHOLDERS))
    if unknown:
        raise InvalidArgument(field, f"unknown placeholder(s) {', '.join(unknown)}; "
                                     f"known: {', '.join(PLACEHOLDERS)}")
    return template


# --------------------------------------------------------------------------- checks

SMTP_SECURITY = ("starttls", "tls", "none")
_ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\]+\.[^@\s<>(),;:\"\[\]\\]+$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise InvalidArgument("name", "must be 1..100 characters")
    return name


def check_policy(policy: DeliveryPolicy) -> DeliveryPolicy:
    timeout = policy.timeout_seconds
    if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or not 1 <= timeout <= 300:
        raise InvalidArgument("delivery.timeout", "must be between 1 s and 5 min")
    _int_in("delivery.retry_count", policy.retry_count, 0, 10)
    _int_in("delivery.rate_limit_per_minute", policy.rate_limit_per_min, 1, 10_000)
    return policy


def check_settings(settings: ChannelSettings) -> ChannelSettings:
    match settings:
        case WebhookSettings():
            _check_webhook_url(settings.url)
        case EmailSettings():
            _check_email(settings)
        case TelegramSettings():
            _check_base_url("telegram.base_url", settings.base_url)
            _text("telegram.chat_id", settings.chat_id, 50)
            if settings.message_template is not None:
                check_template("telegram.message_template", settings.message_template, 4096)
        case WhatsAppSettings():
            _check_base_url("whatsapp.base_url", settings.base_url)
            _text("whatsapp.phone_number_id", settings.phone_number_id, 50)
            _list("whatsapp.recipients", settings.recipients, 50)
            for recipient in settings.recipients:
                _text("whatsapp.recipients", recipient, 100)
            if settings.message_template is not None:
                check_template("whatsapp.message_template", settings.message_template, 4096)
        case _:
            raise InvalidArgument("config", f"unknown channel settings {type(settings).__name__}")
    return settings


def check_secret(settings: ChannelSettings, secret: str | None) -> str | None:
    """None means "none stored"; Telegram and WhatsApp cannot work without theirs."""
    match settings:
        case WebhookSettings() if secret is not None and not 16 <= len(secret) <= 256:
            raise InvalidArgument("webhook.signing_secret", "must be 16..256 characters")
        case EmailSettings() if secret is not None and not 1 <= len(secret) <= 256:
            raise InvalidArgument("email.password", "must be 1..256 characters")
        case TelegramSettings() if not secret or len(secret) > 256:
            raise InvalidArgument("telegram.bot_token", "is required (at most 256 characters)")
        case WhatsAppSettings() if not secret or len(secret) > 4096:
            raise InvalidArgument("whatsapp.api_key", "is required (at most 4096 characters)")
    return secret


def _check_webhook_url(url: str) -> None:
    """https://, or http:// to a loopback or private address (a receiver on the local network)."""
    parts = _url("webhook.url", url)
    if parts.scheme == "http" and not _is_local(parts.hostname or ""):
        raise InvalidArgument("webhook.url", "must be https:// (http:// only to loopback or private addresses)")


def _check_base_url(field: str, url: str | None) -> None:
    if url is not None:
        _url(field, url)


def _url(field: str, url: str):
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidArgument(field, "must be a URL of at most 2048 characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise InvalidArgument(field, f"not a valid URL: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(field, "must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise InvalidArgument(field, "must not contain credentials")
    return parts


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def _check_email(settings: EmailSettings) -> None:
    _text("email.smtp_host", settings.smtp_host, 255)
    _int_in("email.smtp_port", settings.smtp_port, 0, 65535)
    if settings.security not in SMTP_SECURITY:
        raise InvalidArgument("email.security", f"must be one of {', '.join(SMTP_SECURITY)}")
    if settings.username is not None:
        _text("email.username", settings.username, 256)
    _address("email.from_address", settings.from_address)
    _list("email.to_addresses", settings.to_addresses, 50)
    for address in settings.to_addresses:
        _address("email.to_addresses", address)
    if settings.subject_template is not None:
        check_template("email.subject_template", settings.subject_template, 256)
    if settings.body_template is not None:
        check_template("email.body_template", settings.body_template, 8192)


def _address(field: str, address: str) -> None:
    if not isinstance(address, str) or len(address) > 254 or not _ADDRESS.match(address):
        raise InvalidArgument(field, f"not an e-mail address (addr-spec, at most 254 characters): {address!r}")


def _text(field: str, value: str, max_length: int) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidArgument(field, f"is required, at most {max_length} characters")
    if any(c in value for c in "\r\n\x00"):
        raise InvalidArgument(field, "must be one line")


def _list(field: str, values: tuple[str, ...], max_items: int) -> None:
    if not isinstance(values, (tuple, list)) or not 1 <= len(values) <= max_items:
        raise InvalidArgument(field, f"must list 1..{max_items} entries")


def _int_in(field: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidArgument(field, f"must be an integer in {low}..{high}")
