"""Each channel against a real local receiver: what arrives, how it is signed or rendered, and
what an attempt that fails reports (without secrets)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import time

import pytest

from tests.notifications.receivers import SmtpReceiver, free_port
from tests.notifications.support import hook_path
from vigil.control.notifications.channels import EmailChannel, TelegramChannel, WebhookChannel, WhatsAppChannel
from vigil.storage.repositories.channel_settings import (
    EmailSettings,
    TelegramSettings,
    WebhookSettings,
    WhatsAppSettings,
)

pytestmark = pytest.mark.stack  # HTTP and SMTP receivers of its own

SECRET = "whsec-0123456789abcdef"


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- webhook


async def test_webhook_signature_verifies_with_the_secret_and_not_with_another(receiver, http_session,
                                                                               notification):
    path = hook_path()
    channel = WebhookChannel(WebhookSettings(receiver.url + path), SECRET, http_session, timeout=5)

    result = await channel.send(notification)

    assert (result.delivered, result.response_code, result.error) == (True, 200, None)
    [request] = receiver.at(path)
    assert request.method == "POST" and request.headers["Content-Type"] == "application/json"
    assert request.json() == notification.document
    timestamp, signature = request.headers["X-Vigil-Timestamp"], request.headers["X-Vigil-Signature"]
    assert abs(int(timestamp) - time.time()) < 300  # the current time, not a constant
    assert hmac.compare_digest(signature, expected_signature(SECRET, timestamp, request.body))
    assert signature != expected_signature("another-secret-of-16+", timestamp, request.body)
    # the timestamp is signed: replaying the body under a fresh timestamp does not verify
    assert signature != expected_signature(SECRET, str(int(timestamp) + 600), request.body)


async def test_webhook_without_secret_is_unsigned(receiver, http_session, notification):
    path = hook_path()
    result = await WebhookChannel(WebhookSettings(receiver.url + path), None, http_session, timeout=5).send(
        notification)
    assert result.delivered
    [request] = receiver.at(path)
    assert "X-Vigil-Signature" not in request.headers and request.headers["X-Vigil-Timestamp"]


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (429, True), (404, False), (400, False)])
async def test_webhook_error_status_is_a_failure(receiver, http_session, notification, status, retryable):
    path = hook_path()
    receiver.respond(path, (status, {"error": {"message": f"refused with {SECRET}"}}))
    result = await WebhookChannel(WebhookSettings(receiver.url + path), SECRET, http_session, timeout=5).send(
        notification)
    assert (result.delivered, result.response_code, result.retryable) == (False, status, retryable)
    assert result.error == f"HTTP {status}: refused with [REDACTED]"


async def test_webhook_that_hangs_times_out(receiver, http_session, notification):
    path = hook_path()
    receiver.hang(path)
    result = await WebhookChannel(WebhookSettings(receiver.url + path), None, http_session, timeout=0.3).send(
        notification)
    assert (result.delivered, result.response_code, result.retryable) == (False, None, True)
    assert "no response within 0.3 s" in result.error


async def test_webhook_receiver_that_is_not_there(http_session, notification):
    closed = free_port()
    result = await WebhookChannel(WebhookSettings(f"http://127.0.0.1:{closed}/hook"), None, http_session,
                                  timeout=5).send(notification)
    assert (result.delivered, result.retryable) == (False, True)
    assert "ClientConnectorError" in result.error


# --------------------------------------------------------------------------- e-mail


def parse(content: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(content, policy=email.policy.default)


async def test_email_arrives_with_subject_and_plain_and_html_body(smtp, notification):
    settings = EmailSettings(smtp_host="127.0.0.1", smtp_port=smtp.port, security="none",
                             from_address="vigil@example.com", to_addresses=("ops@example.com", "sec@example.com"))
    before = len(smtp.messages)

    result = await EmailChannel(settings, None, timeout=5).send(notification)

    assert (result.delivered, result.response_code) == (True, 250)
    mail = (await smtp.wait_for(before + 1))[-1]
    assert mail.mail_from == "vigil@example.com" and mail.recipients == ["ops@example.com", "sec@example.com"]
    message = parse(mail.content)
    assert message["Subject"] == "[Vigil] high: person_recognized"
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Jane <b>Doe</b> & co seen at {{site_name}} {0} %s" in plain  # alert text stays literal
    assert "Camera: Entrance cam, Main entrance" in plain and "Confidence: 87%" in plain
    assert "Time: 2026-03-01 22:15:03 UTC" in plain and str(notification.alert_id) in plain
    assert "Jane &lt;b&gt;Doe&lt;/b&gt; &amp; co" in html and "<b>Doe" not in html


async def test_email_with_starttls_and_login(notification):
    server = SmtpReceiver(tls=True, credentials=("vigil", "smtp-pass-1"))
    server.start()
    try:
        settings = EmailSettings(smtp_host="127.0.0.1", smtp_port=server.port, security="starttls",
                                 username="vigil", from_address="vigil@example.com", to_addresses=("ops@example.com",),
                                 subject_template="{{severity}} at {{camera_name}}\r\nBcc: evil@example.com")
        result = await EmailChannel(settings, "smtp-pass-1", timeout=5, tls_context=server.client_tls).send(
            notification)
        assert result.delivered
        [mail] = await server.wait_for(1)
        assert mail.login == "vigil" and mail.recipients == ["ops@example.com"]
        # a line break in a template cannot add a header
        assert parse(mail.content)["Subject"] == "high at Entrance cam Bcc: evil@example.com"
        assert parse(mail.content)["Bcc"] is None

        wrong = await EmailChannel(settings, "not-the-password", timeout=5, tls_context=server.client_tls).send(
            notification)
        assert (wrong.delivered, wrong.response_code, wrong.retryable) == (False, 535, False)
        assert "not-the-password" not in wrong.error
    finally:
        server.stop()


async def test_email_starttls_required_but_not_offered_is_permanent(smtp, notification):
    settings = EmailSettings(smtp_host="127.0.0.1", smtp_port=smtp.port, security="starttls",
                             from_address="vigil@example.com", to_addresses=("ops@example.com",))
    result = await EmailChannel(settings, None, timeout=5).send(notification)
    assert (result.delivered, result.retryable) == (False, False)
    assert "STARTTLS" in result.error


# --------------------------------------------------------------------------- Telegram


async def test_telegram_posts_the_rendered_template_to_the_configured_base_url(receiver, http_session, notification):
    token = "123456:ABC-secret-token"
    base = receiver.url + hook_path()
    result = await TelegramChannel(TelegramSettings(chat_id="-1001234567890", base_url=base + "/"), token,
                                   http_session, timeout=5).send(notification)
    assert result.delivered
    [request] = receiver.at(base.removeprefix(receiver.url) + f"/bot{token}/sendMessage")
    sent = request.json()
    assert sent["chat_id"] == "-1001234567890" and sent["parse_mode"] == "HTML"
    # the seed's template; the alert text is escaped for Telegram HTML and not expanded
    assert sent["text"] == ("person_recognized: Jane &lt;b&gt;Doe&lt;/b&gt; &amp; co seen at {{site_name}} {0} %s"
                            " at 2026-03-01 22:15:03 UTC. Camera: Entrance cam")


async def test_telegram_error_keeps_the_description_and_hides_the_token(receiver, http_session, notification):
    token = "654321:XYZ-secret-token"
    prefix = hook_path()
    receiver.respond(f"{prefix}/bot{token}/sendMessage", (400, {
        "ok": False, "error_code": 400, "description": f"Bad Request: chat not found for /bot{token}"}))
    result = await TelegramChannel(TelegramSettings(chat_id="@nobody", base_url=receiver.url + prefix,
                                                    message_template="<b>{{alert_type}}</b> {{person_name}}"),
                                   token, http_session, timeout=5).send(notification)
    assert (result.delivered, result.response_code, result.retryable) == (False, 400, False)
    assert result.error == "HTTP 400: Bad Request: chat not found for /bot[REDACTED]"
    assert receiver.at(f"{prefix}/bot{token}/sendMessage")[0].json()["text"] == "<b>person_recognized</b> Jane Doe"


# --------------------------------------------------------------------------- WhatsApp


async def test_whatsapp_sends_the_template_to_each_recipient(receiver, http_session, notification):
    prefix = hook_path()
    settings = WhatsAppSettings(phone_number_id="109876543210", recipients=("+6591234567", "security-team-group"),
                                base_url=receiver.url + prefix + "/v20.0")
    result = await WhatsAppChannel(settings, "wa-api-key", http_session, timeout=5).send(notification)
    assert result.delivered
    requests = receiver.at(f"{prefix}/v20.0/109876543210/messages")
    assert len(requests) == 2
    assert {r.headers["Authorization"] for r in requests} == {"Bearer wa-api-key"}
    by_recipient = {r.json()["to"]: r.json() for r in requests}
    expected_text = "*Alert*: person_recognized at Main entrance. Time: 2026-03-01 22:15:03 UTC. Confidence: 87%"
    assert by_recipient["6591234567"] == {"messaging_product": "whatsapp", "recipient_type": "individual",
                                          "to": "6591234567", "type": "text",
                                          "text": {"preview_url": False, "body": expected_text}}
    assert by_recipient["security-team-group"]["recipient_type"] == "group"
    assert by_recipient["security-team-group"]["text"]["body"] == expected_text


async def test_whatsapp_partial_failure_names_the_recipient(receiver, http_session, notification):
    prefix = hook_path()
    path = f"{prefix}/1/messages"
    receiver.respond(path, 200, (500, {"error": {"message": "Service temporarily unavailable"}}))
    settings = WhatsAppSettings(phone_number_id="1", recipients=("+6590000001", "+6590000002"),
                                base_url=receiver.url + prefix)
    result = await WhatsAppChannel(settings, "wa-api-key", http_session, timeout=5).send(notification)
    assert (result.delivered, result.response_code, result.retryable) == (False, 500, True)
    assert result.error.startswith("1 of 2 recipients failed: +65900000")
    assert "Service temporarily unavailable" in result.error and "wa-api-key" not in json.dumps(result.error)
