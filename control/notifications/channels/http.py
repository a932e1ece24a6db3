"""One HTTP POST of a JSON document and its outcome, for the channels that speak HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from vigil.control.notifications.channels.redaction import redact
from vigil.storage.repositories.notifications import DeliveryResult

USER_AGENT = "Vigil-Notifications/1"
# Besides every 5xx: worth trying again later
_RETRYABLE_STATUSES = {408, 425, 429}
_MAX_DETAIL = 300


async def post_json(session: aiohttp.ClientSession, url: str, body: bytes, *, timeout: float,
                    headers: Mapping[str, str] = {}, secrets: Iterable[str | None] = ()) -> DeliveryResult:
    """A 2xx is delivered; redirects are not followed (a moved endpoint is a configuration error).
    Secrets (e.g. a bot token in the URL) are removed from any error text."""
    try:
        async with session.post(url, data=body, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout),
                                headers={"Content-Type": "application/json", "User-Agent": USER_AGENT,
                                         **headers}) as response:
            text = await response.text(errors="replace")
    except TimeoutError:
        return DeliveryResult.failure(f"no response within {timeout:g} s", retryable=True)
    except (aiohttp.InvalidURL, ValueError) as exc:  # a URL aiohttp cannot use: a configuration error
        return DeliveryResult.failure(redact(f"{type(exc).__name__}: {exc}", secrets), retryable=False)
    except aiohttp.ClientError as exc:  # connection refused or reset, DNS, TLS: may pass
        return DeliveryResult.failure(redact(f"{type(exc).__name__}: {exc}", secrets), retryable=True)
    status = response.status
    if 200 <= status < 300:
        return DeliveryResult.success(status)
    return DeliveryResult.failure(redact(f"HTTP {status}: {_detail(text)}", secrets), response_code=status,
                                  retryable=status >= 500 or status in _RETRYABLE_STATUSES)


def _detail(body: str) -> str:
    """The provider's error message: Telegram's "description", the Graph API's "error.message",
    else the start of the body."""
    try:
        document: Any = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        error = document.get("error")
        for candidate in (document.get("description"), error.get("message") if isinstance(error, dict) else error):
            if isinstance(candidate, str) and candidate:
                return candidate[:_MAX_DETAIL]
    return " ".join(body.split())[:_MAX_DETAIL] or "(empty body)"
