"""Error texts are stored and shown to operators: the channel's secret must never be in them."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret, as is and URL-encoded (a bot token in a URL), replaced."""
    for secret in secrets:
        if secret:
            for form in {secret, quote(secret, safe="")}:
                text = text.replace(form, "[REDACTED]")
    return text
