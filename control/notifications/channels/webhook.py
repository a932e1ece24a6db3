"""Webhook: an HTTP POST of the alert as JSON, signed with the channel's secret.

Headers: X-Vigil-Timestamp (unix seconds) and, with a signing secret, X-Vigil-Signature:
sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)> over the exact bytes sent. The timestamp
is signed too, so a receiver that refuses old timestamps cannot be fed a recorded request again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import aiohttp

from vigil.control.notifications.channels.http import post_json
from vigil.control.notifications.models import Notification
from vigil.storage.repositories.channel_settings import WebhookSettings
from vigil.storage.repositories.notifications import DeliveryResult


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookChannel:
    def __init__(self, settings: WebhookSettings, signing_secret: str | None, session: aiohttp.ClientSession,
                 timeout: float):
        self.settings = settings
        self.signing_secret = signing_secret
        self.session = session
        self.timeout = timeout

    async def send(self, message: Notification) -> DeliveryResult:
        body = json.dumps(message.document, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {"X-Vigil-Timestamp": timestamp}
        if self.signing_secret:
            headers["X-Vigil-Signature"] = "sha256=" + signature(self.signing_secret, timestamp, body)
        return await post_json(self.session, self.settings.url, body, timeout=self.timeout, headers=headers,
                               secrets=[self.signing_secret])
