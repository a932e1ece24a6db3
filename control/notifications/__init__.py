"""Notification delivery: the senders of each channel type (webhook, e-mail, Telegram, WhatsApp),
their message templates, and the dispatcher that sends in the background. Channels and the record
of delivery attempts are stored by vigil.storage.repositories.notifications."""

from vigil.control.notifications.dispatcher import Backoff, NotificationDispatcher
from vigil.control.notifications.models import Notification

__all__ = ["Backoff", "Notification", "NotificationDispatcher"]
