"""E-mail over SMTP (aiosmtplib): a plain-text body and the same text as HTML, STARTTLS or
implicit TLS, optional authentication."""

from __future__ import annotations

import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from vigil.control.notifications import templates
from vigil.control.notifications.channels.redaction import redact
from vigil.control.notifications.models import Notification
from vigil.storage.repositories.channel_settings import EmailSettings
from vigil.storage.repositories.notifications import DeliveryResult

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
_ACCEPTED = 250
# Given explicitly: aiosmtplib would otherwise resolve our FQDN, a blocking DNS lookup in the loop.
_LOCAL_HOSTNAME = socket.gethostname()


class EmailChannel:
    def __init__(self, settings: EmailSettings, password: str | None, timeout: float,
                 tls_context: ssl.SSLContext | None = None):
        """`tls_context`: the certificates to trust (default: the system's)."""
        self.settings = settings
        self.password = password
        self.timeout = timeout
        self.tls_context = tls_context

    def compose(self, message: Notification) -> EmailMessage:
        s = self.settings
        email = EmailMessage()
        email["Subject"] = templates.one_line(templates.render(s.subject_template or templates.EMAIL_SUBJECT, message))
        email["From"] = s.from_address
        email["To"] = ", ".join(s.to_addresses)
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = make_msgid(domain=s.from_address.rpartition("@")[2])
        text = templates.render(s.body_template or templates.EMAIL_BODY, message)
        email.set_content(text)
        email.add_alternative(f"<!DOCTYPE html>\n<html><body><p>{templates.as_html(text)}</p></body></html>\n",
                              subtype="html")
        return email

    async def send(self, message: Notification) -> DeliveryResult:
        s = self.settings
        try:
            refused, _ = await aiosmtplib.send(
                self.compose(message), hostname=s.smtp_host, port=s.smtp_port or DEFAULT_PORTS[s.security],
                use_tls=s.security == "tls", start_tls=s.security == "starttls", tls_context=self.tls_context,
                username=s.username, password=self.password if s.username else None,
                local_hostname=_LOCAL_HOSTNAME, timeout=self.timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            return self._failure("every recipient was refused: " + "; ".join(
                f"{r.recipient} ({r.code} {r.message})" for r in exc.recipients), codes[0] if codes else None,
                retryable=all(400 <= c < 500 for c in codes))
        except aiosmtplib.SMTPResponseException as exc:  # 4xx: try again later; 5xx: permanent
            return self._failure(f"{type(exc).__name__}: {exc.code} {exc.message}", exc.code,
                                 retryable=400 <= exc.code < 500)
        except (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected,
                OSError) as exc:
            return self._failure(f"{type(exc).__name__}: {exc}", None, retryable=True)
        except aiosmtplib.SMTPException as exc:  # e.g. STARTTLS not offered: a configuration error
            return self._failure(f"{type(exc).__name__}: {exc}", None, retryable=False)
        if refused:  # the others have the message: sending again would duplicate it
            return DeliveryResult.success(_ACCEPTED, "refused: " + "; ".join(
                f"{address} ({response.code} {response.message})" for address, response in refused.items()))
        return DeliveryResult.success(_ACCEPTED)

    def _failure(self, error: str, code: int | None, *, retryable: bool) -> DeliveryResult:
        return DeliveryResult.failure(redact(error, [self.password]), response_code=code,
                                      retryable=retryable)
