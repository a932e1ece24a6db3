"""Notification delivery: channels (webhook, e-mail, Telegram, WhatsApp), their message templates,
the record of delivery attempts, and the dispatcher that sends in the background."""

from vigil.control.notifications.dispatcher import Backoff, NotificationDispatcher
from vigil.control.notifications.models import (
    Channel,
    Delivery,
    DeliveryPolicy,
    DeliveryResult,
    EmailSettings,
    Notification,
    TelegramSettings,
    WebhookSettings,
    WhatsAppSettings,
)
from vigil.control.notifications.repository import ChannelRepository, DeliveryRepository

__all__ = ["Backoff", "Channel", "ChannelRepository", "Delivery", "DeliveryPolicy", "DeliveryRepository",
           "DeliveryResult", "EmailSettings", "Notification", "NotificationDispatcher", "TelegramSettings",
           "WebhookSettings", "WhatsAppSettings"]
