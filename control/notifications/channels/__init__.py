"""One class per channel type, each with `async send(message: Notification) -> DeliveryResult`."""

from __future__ import annotations

import aiohttp

from vigil.control.notifications.channels.email import EmailChannel
from vigil.control.notifications.channels.telegram import TelegramChannel
from vigil.control.notifications.channels.webhook import WebhookChannel
from vigil.control.notifications.channels.whatsapp import WhatsAppChannel
from vigil.storage.repositories.channel_settings import (
    EmailSettings,
    TelegramSettings,
    WebhookSettings,
    WhatsAppSettings,
)
from vigil.storage.repositories.notifications import Channel

Sender = WebhookChannel | EmailChannel | TelegramChannel | WhatsAppChannel

__all__ = ["EmailChannel", "Sender", "TelegramChannel", "WebhookChannel", "WhatsAppChannel", "sender_for"]


def sender_for(channel: Channel, secret: str | None, session: aiohttp.ClientSession) -> Sender:
    """The sender of a stored channel, given its decrypted secret and the HTTP session to use."""
    timeout = channel.delivery.timeout_seconds
    match channel.settings:
        case WebhookSettings() as settings:
            return WebhookChannel(settings, secret, session, timeout)
        case EmailSettings() as settings:
            return EmailChannel(settings, secret, timeout)
        case TelegramSettings() as settings:
            return TelegramChannel(settings, secret, session, timeout)
        case WhatsAppSettings() as settings:
            return WhatsAppChannel(settings, secret, session, timeout)
    raise TypeError(f"no sender for {type(channel.settings).__name__}")
