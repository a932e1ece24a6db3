"""Telegram: the Bot API's sendMessage, {base_url}/bot<token>/sendMessage, with the channel's
template rendered as Telegram HTML (values escaped)."""

from __future__ import annotations

import json

import aiohttp

from vigil.control.notifications import templates
from vigil.control.notifications.channels.http import post_json
from vigil.control.notifications.models import Notification
from vigil.storage.repositories.channel_settings import TelegramSettings
from vigil.storage.repositories.notifications import DeliveryResult

DEFAULT_BASE_URL = "https://api.telegram.org"


class TelegramChannel:
    def __init__(self, settings: TelegramSettings, bot_token: str, session: aiohttp.ClientSession, timeout: float):
        self.settings = settings
        self.bot_token = bot_token
        self.session = session
        self.timeout = timeout

    async def send(self, message: Notification) -> DeliveryResult:
        text = templates.render(self.settings.message_template or templates.TELEGRAM, message,
                                escape=templates.telegram_html)
        payload = {"chat_id": self.settings.chat_id, "text": text, "parse_mode": "HTML",
                   "link_preview_options": {"is_disabled": True}}
        base = (self.settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        return await post_json(self.session, f"{base}/bot{self.bot_token}/sendMessage",
                               json.dumps(payload, ensure_ascii=False).encode(), timeout=self.timeout,
                               secrets=[self.bot_token])
