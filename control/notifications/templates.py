"""Message templates: the seed's defaults and rendering them safely.

A template is text with `{{placeholder}}` slots (which ones exist, and the check a template passes
before it is stored: storage/repositories/channel_settings.py). Rendering is one pass over the template: each
slot is replaced by its value as plain text, and values are never looked at again, so an alert
field that contains "{{message}}", "{0}" or "%s" stays literal (no format-string injection).
Each output escapes values as its markup needs (Telegram HTML); e-mail HTML escapes everything.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC

from vigil.control.notifications.models import Notification
from vigil.storage.repositories.channel_settings import TEMPLATE_SLOT

# The seed's column defaults (telegram_configs / whatsapp_configs.message_template)
TELEGRAM = "{{alert_type}}: {{message}} at {{timestamp}}. Camera: {{camera_name}}"
WHATSAPP = "*Alert*: {{alert_type}} at {{location}}. Time: {{timestamp}}. Confidence: {{confidence}}%"
# E-mail defaults (AlertService EmailConfig)
EMAIL_SUBJECT = "[Vigil] {{severity}}: {{alert_type}}"
EMAIL_BODY = """{{alert_type}} ({{severity}})

{{message}}

Time: {{timestamp}}
Camera: {{camera_name}}, {{location}}
Site: {{site_name}}
Person: {{person_name}}
Confidence: {{confidence}}%
Alert: {{alert_id}}
"""

# C0/C1 controls but tab and newline: they could forge header lines or garble a chat message
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MAX_VALUE = 1024  # keeps every message within the providers' limits (Telegram: 4096 characters)


def _values(notification: Notification) -> dict[str, str]:
    n = notification
    raw = {  # one value per channel_settings.PLACEHOLDERS
        "alert_id": str(n.alert_id),
        "alert_type": n.alert_type,
        "message": n.message,
        "severity": n.severity,
        "timestamp": n.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "camera_name": n.camera_name,
        "location": n.location or n.camera_name,
        "site_name": n.site_name,
        "person_name": n.person_name or "unknown",
        "confidence": "" if n.confidence is None else f"{n.confidence * 100:.0f}",
    }
    return {name: _clean(value) for name, value in raw.items()}


def _clean(value: str) -> str:
    value = _CONTROL.sub("", value)
    return value if len(value) <= _MAX_VALUE else value[:_MAX_VALUE - 1] + "…"


def render(template: str, notification: Notification, escape: Callable[[str], str] = str) -> str:
    fields = _values(notification)
    return TEMPLATE_SLOT.sub(lambda m: escape(fields[m[1]]) if m[1] in fields else m[0], template)


def telegram_html(value: str) -> str:
    """Telegram's HTML parse mode knows &lt; &gt; &amp; &quot;; the template's own markup stays."""
    return html.escape(value, quote=True)


def one_line(text: str) -> str:
    """For headers such as an e-mail subject: newlines would end the header."""
    return " ".join(text.split())


def as_html(text: str) -> str:
    """Rendered plain text as an HTML body: everything escaped, lines kept."""
    return html.escape(text).replace("\n", "<br>\n")
