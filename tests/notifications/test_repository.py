"""Channels with encrypted secrets, and the record of delivery attempts."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from tests.notifications.support import service
from vigil.control.notifications import templates
from vigil.errors import InvalidArgument, NotFound
from vigil.storage.crypto import SecretError
from vigil.storage.db import acting_as
from vigil.storage.repositories.channel_settings import (
    DeliveryPolicy,
    EmailSettings,
    TelegramSettings,
    WebhookSettings,
    WhatsAppSettings,
)
from vigil.storage.repositories.notifications import ChannelRepository, DeliveryRepository, DeliveryResult

WEBHOOK = WebhookSettings("https://hooks.example.com/vigil")
EMAIL = EmailSettings(smtp_host="smtp.example.com", from_address="vigil@example.com",
                      to_addresses=("ops@example.com",), username="vigil")
TELEGRAM = TelegramSettings(chat_id="-1001234567890", base_url="http://127.0.0.1:9/tg")
WHATSAPP = WhatsAppSettings(phone_number_id="109876543210", recipients=("+6591234567", "security-team"))
SECRETS = {"webhook": "whsec-0123456789abcdef", "email": "smtp-password", "telegram": "123456:ABC-token",
           "whatsapp": "wa-access-token"}


@pytest.mark.parametrize("config", [WEBHOOK, EMAIL, TELEGRAM, WHATSAPP], ids=lambda s: s.channel_type)
async def test_create_get_round_trip_without_the_secret(conn, secret_box, config):
    channels = ChannelRepository(conn, secret_box)
    policy = DeliveryPolicy(timeout_seconds=10, retry_count=5, rate_limit_per_min=120)
    created = await channels.create("Ops", config, secret=SECRETS[config.channel_type], delivery=policy)

    assert created == await channels.get(created.id)
    assert (created.name, created.channel_type, created.delivery, created.is_active, created.has_secret) == (
        "Ops", config.channel_type, policy, True, True)
    stored_template = {"telegram": templates.TELEGRAM, "whatsapp": templates.WHATSAPP}.get(config.channel_type)
    expected = config if stored_template is None else dataclasses.replace(config, message_template=stored_template)
    assert created.settings == expected  # a template left out is the schema default
    assert SECRETS[config.channel_type] not in repr(created)
    assert await channels.secret(created) == SECRETS[config.channel_type]


async def test_secrets_are_ciphertext_bound_to_their_channel(conn, secret_box):
    channels = ChannelRepository(conn, secret_box)
    made = {s.channel_type: await channels.create(f"c-{s.channel_type}", s, secret=SECRETS[s.channel_type])
            for s in (WEBHOOK, EMAIL, TELEGRAM, WHATSAPP)}
    cur = await conn.execute(
        "SELECT c.channel_type::text AS kind, c.config::text AS config,"
        " COALESCE(c.signing_secret_encrypted, c.smtp_password_encrypted, t.bot_token_encrypted,"
        "          w.api_key_encrypted) AS blob"
        " FROM notification_channels c LEFT JOIN telegram_configs t ON t.channel_id = c.id"
        " LEFT JOIN whatsapp_configs w ON w.channel_id = c.id WHERE c.id = ANY(%s)",
        ([c.id for c in made.values()],))
    rows = {r["kind"]: r for r in await cur.fetchall()}
    for kind, secret in SECRETS.items():
        blob = bytes(rows[kind]["blob"])
        assert secret.encode() not in blob and secret not in rows[kind]["config"]
        assert len(blob) > len(secret)  # version, nonce, ciphertext, tag

    # copied into another channel's row, a ciphertext does not decrypt
    other = await channels.create("other hook", WEBHOOK, secret="another-secret-0123")
    await conn.execute("UPDATE notification_channels SET signing_secret_encrypted = %s WHERE id = %s",
                       (rows["webhook"]["blob"], other.id))
    with pytest.raises(SecretError):
        await channels.secret(other)


async def test_update_changes_named_fields_and_secrets(conn, secret_box):
    channels = ChannelRepository(conn, secret_box)
    hook = await channels.create("hook", WEBHOOK, secret=SECRETS["webhook"])

    renamed = await channels.update(hook.id, {"name": "renamed", "is_active": False,
                                              "delivery": DeliveryPolicy(retry_count=0)})
    assert (renamed.name, renamed.is_active, renamed.delivery.retry_count, renamed.settings) == (
        "renamed", False, 0, WEBHOOK)
    moved = await channels.update(hook.id, {"settings": WebhookSettings("http://10.1.2.3:8080/in")})
    assert moved.settings.url == "http://10.1.2.3:8080/in" and moved.has_secret
    unsigned = await channels.update(hook.id, {"secret": None})
    assert not unsigned.has_secret and await channels.secret(unsigned) is None

    bot = await channels.create("bot", TELEGRAM, secret=SECRETS["telegram"])
    changed = await channels.update(bot.id, {"settings": dataclasses.replace(TELEGRAM, chat_id="@ops",
                                                                             message_template="{{message}}"),
                                             "secret": "999:new-token"})
    assert (changed.settings.chat_id, changed.settings.message_template) == ("@ops", "{{message}}")
    assert await channels.secret(changed) == "999:new-token"

    with pytest.raises(InvalidArgument) as type_change:
        await channels.update(bot.id, {"settings": WEBHOOK})
    assert type_change.value.field == "config"
    with pytest.raises(InvalidArgument) as required:
        await channels.update(bot.id, {"secret": None})
    assert required.value.field == "telegram.bot_token"
    with pytest.raises(InvalidArgument):
        await channels.update(bot.id, {"channel_type": "email"})


@pytest.mark.parametrize(("config", "secret", "field"), [
    (WebhookSettings("http://hooks.example.com/in"), None, "webhook.url"),  # plain http to the internet
    (WebhookSettings("ftp://127.0.0.1/in"), None, "webhook.url"),
    (WebhookSettings("https://user:pw@hooks.example.com/"), None, "webhook.url"),
    (WEBHOOK, "too-short", "webhook.signing_secret"),
    (dataclasses.replace(EMAIL, to_addresses=()), None, "email.to_addresses"),
    (dataclasses.replace(EMAIL, to_addresses=("ops@example.com\r\nBcc: x@y.z",)), None, "email.to_addresses"),
    (dataclasses.replace(EMAIL, security="ssl"), None, "email.security"),
    (dataclasses.replace(EMAIL, smtp_port=70000), None, "email.smtp_port"),
    (dataclasses.replace(EMAIL, body_template="{{secret}}"), None, "email.body_template"),
    (TELEGRAM, None, "telegram.bot_token"),
    (dataclasses.replace(TELEGRAM, chat_id=""), "t", "telegram.chat_id"),
    (dataclasses.replace(TELEGRAM, message_template="{{nope}}"), "t", "telegram.message_template"),
    (dataclasses.replace(WHATSAPP, recipients=()), "k", "whatsapp.recipients"),
    (dataclasses.replace(WHATSAPP, base_url="not a url"), "k", "whatsapp.base_url"),
], ids=lambda v: v if isinstance(v, str) else None)
async def test_bad_configuration_names_the_field_and_writes_nothing(conn, secret_box, config, secret, field):
    name = f"bad {uuid.uuid4()}"
    with pytest.raises(InvalidArgument) as refused:
        await ChannelRepository(conn, secret_box).create(name, config, secret=secret)
    assert refused.value.field == field
    cur = await conn.execute("SELECT count(*) AS n FROM notification_channels WHERE name = %s", (name,))
    assert (await cur.fetchone())["n"] == 0


async def test_bad_policy_names_the_field(conn, secret_box):
    channels = ChannelRepository(conn, secret_box)
    for policy, field in ((DeliveryPolicy(timeout_seconds=0.5), "delivery.timeout"),
                          (DeliveryPolicy(retry_count=11), "delivery.retry_count"),
                          (DeliveryPolicy(rate_limit_per_min=0), "delivery.rate_limit_per_minute")):
        with pytest.raises(InvalidArgument) as refused:
            await channels.create("x", WEBHOOK, delivery=policy)
        assert refused.value.field == field


async def test_list_filters_and_pages_by_name(conn, secret_box):
    channels = ChannelRepository(conn, secret_box)
    prefix = uuid.uuid4().hex  # other tests' committed channels may be listed too

    async def names(**filters) -> list[str]:
        seen, token = [], None
        while True:
            page = await channels.list(page_size=3, page_token=token, **filters)
            seen += [c.name.removeprefix(prefix) for c in page.items if c.name.startswith(prefix)]
            if not (token := page.next_page_token):
                return seen

    for name, settings in (("d", WEBHOOK), ("a", EMAIL), ("c", WEBHOOK), ("b", TELEGRAM)):
        await channels.create(prefix + name, settings, secret=SECRETS[settings.channel_type], is_active=name != "c")
    assert await names() == ["a", "b", "c", "d"]
    assert await names(channel_types=["webhook"]) == ["c", "d"]
    assert await names(channel_types=["webhook"], is_active=True) == ["d"]


async def test_delete_takes_the_type_settings_along(conn, secret_box):
    channels = ChannelRepository(conn, secret_box)
    bot = await channels.create("bot", TELEGRAM, secret=SECRETS["telegram"])
    await channels.delete(bot.id)
    with pytest.raises(NotFound):
        await channels.get(bot.id)
    cur = await conn.execute("SELECT count(*) AS n FROM telegram_configs WHERE channel_id = %s", (bot.id,))
    assert (await cur.fetchone())["n"] == 0
    with pytest.raises(NotFound):
        await channels.delete(bot.id)


async def test_deliveries_are_recorded_claimed_once_and_listed_newest_first(make_alert, make_channel, conn):
    # conn last: it is rolled back before the committed channels are deleted (its rows lock them)
    alert_id = await make_alert()
    hook = await make_channel(WebhookSettings("https://hooks.example.com/a"))
    inactive = await make_channel(WebhookSettings("https://hooks.example.com/b"), is_active=False)
    mine = {hook.id: 4}  # no slots for other channels: their due attempts are not this test's
    deliveries = DeliveryRepository(conn)
    [queued] = await deliveries.enqueue(alert_id, [hook.id, inactive.id, uuid.uuid4()])
    assert await deliveries.enqueue(alert_id, [hook.id]) == []  # already queued
    assert (queued.attempt, queued.status, queued.channel_type) == (1, "queued", "webhook")

    [claimed] = await deliveries.claim_due(mine, default_slots=0)
    assert (claimed.id, claimed.status, claimed.attempted_at is not None) == (queued.id, "sending", True)
    assert await deliveries.claim_due(mine, default_slots=0) == []  # nobody claims it twice

    failed = await deliveries.finish(claimed, DeliveryResult.failure("HTTP 503: busy", response_code=503,
                                                                     retryable=True), 12, retry_in=0)
    assert (failed.status, failed.response_code, failed.latency_ms) == ("failed", 503, 12)
    assert await deliveries.finish(claimed, DeliveryResult.success(200), 5, None) is None  # concluded already

    [retry] = await deliveries.claim_due({hook.id: 1}, default_slots=0)
    assert (retry.attempt, retry.status) == (2, "sending")
    assert await deliveries.claim_due({hook.id: 0}, default_slots=0) == []
    done = await deliveries.finish(retry, DeliveryResult.success(200), 7, None)
    assert (done.status, done.next_attempt_at) == ("delivered", None)

    # one transaction: both were scheduled at the same now(), so only the id orders them
    listed = await deliveries.list(alert_ids=[alert_id], page_size=1)
    rest = await deliveries.list(alert_ids=[alert_id], page_token=listed.next_page_token)
    assert sorted(d.attempt for d in listed.items + rest.items) == [1, 2] and rest.next_page_token is None
    assert listed.items[0].created_at >= rest.items[0].created_at
    assert [d.attempt for d in (await deliveries.list(alert_ids=[alert_id], statuses=["failed"])).items] == [1]
    with pytest.raises(InvalidArgument) as unknown:
        await deliveries.list(statuses=["lost"])
    assert unknown.value.field == "statuses"


async def test_deliveries_are_visible_only_to_who_may_see_the_alert(pool, make_alert, make_channel):
    alert_id = await make_alert()
    hook = await make_channel(WebhookSettings("https://hooks.example.com/rls"))
    async with service(pool) as conn:
        await DeliveryRepository(conn).enqueue(alert_id, [hook.id])
        assert len((await DeliveryRepository(conn).list(alert_ids=[alert_id])).items) == 1
    async with acting_as(pool, user_id=uuid.uuid4(), role="viewer") as conn:  # assigned to no site
        assert (await DeliveryRepository(conn).list(alert_ids=[alert_id])).items == []
