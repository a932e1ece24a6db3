"""WhatsApp: text messages through the Business Cloud API, POST {base_url}/{phone_number_id}/messages
with the API key as bearer token, one request per recipient (phone number or group id).

WhatsApp's own markup (*bold*, _italic_) has no escape, so values are inserted as they are; they
can change emphasis but never add placeholders, links or recipients.
"""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp

from vigil.control.notifications import templates
from vigil.control.notifications.channels.http import post_json
from vigil.control.notifications.models import Notification
from vigil.storage.repositories.channel_settings import WhatsAppSettings
from vigil.storage.repositories.notifications import DeliveryResult

DEFAULT_BASE_URL = "https://graph.facebook.com/v20.0"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def message_payload(recipient: str, text: str) -> dict:
    if _E164.match(recipient):
        kind, to = "individual", recipient.removeprefix("+")
    else:
        kind, to = "group", recipient
    return {"messaging_product": "whatsapp", "recipient_type": kind, "to": to, "type": "text",
            "text": {"preview_url": False, "body": text}}


class WhatsAppChannel:
    def __init__(self, settings: WhatsAppSettings, api_key: str, session: aiohttp.ClientSession, timeout: float):
        self.settings = settings
        self.api_key = api_key
        self.session = session
        self.timeout = timeout

    async def send(self, message: Notification) -> DeliveryResult:
        """Delivered when every recipient was accepted. A retry after a partial failure sends to
        all recipients again (delivery is at least once)."""
        text = templates.render(self.settings.message_template or templates.WHATSAPP, message)
        base = (self.settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        url = f"{base}/{self.settings.phone_number_id}/messages"
        recipients = self.settings.recipients
        results = await asyncio.gather(*(
            post_json(self.session, url, json.dumps(message_payload(r, text), ensure_ascii=False).encode(),
                      timeout=self.timeout, headers={"Authorization": f"Bearer {self.api_key}"},
                      secrets=[self.api_key])
            for r in recipients))
        failed = [(r, result) for r, result in zip(recipients, results, strict=True) if not result.delivered]
        if not failed:
            return DeliveryResult.success(results[-1].response_code)
        summary = "; ".join(f"{r}: {result.error}" for r, result in failed)
        return DeliveryResult.failure(f"{len(failed)} of {len(recipients)} recipients failed: {summary}",
                                      response_code=failed[0][1].response_code,
                                      retryable=any(result.retryable for _, result in failed))
