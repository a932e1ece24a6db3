"""The dispatcher end to end: real receivers, the real database, every attempt recorded."""

from __future__ import annotations

import asyncio
import inspect

from tests.notifications.support import FAST, attempts, hook_path, service, settled
from vigil.control.notifications import Backoff
from vigil.storage.repositories.channel_settings import DeliveryPolicy, EmailSettings, WebhookSettings
from vigil.storage.repositories.notifications import ChannelRepository, DeliveryRepository


async def test_delivers_the_alert_and_records_the_attempt(make_dispatcher, make_alert, make_channel, receiver,
                                                          scene):
    path = hook_path()
    channel = await make_channel(WebhookSettings(receiver.url + path), secret="whsec-0123456789abcdef")
    alert_id = await make_alert(message="Jane Doe seen at the entrance")
    dispatcher = await make_dispatcher()

    assert dispatcher.submit(alert_id, [channel.id]) is True

    [request] = await receiver.wait_for(path)
    body = request.json()
    assert (body["id"], body["siteId"], body["cameraId"], body["eventId"]) == (
        str(alert_id), str(scene.site_id), str(scene.camera_id), str(scene.event_id))
    assert (body["severity"], body["status"], body["message"]) == (
        "SEVERITY_HIGH", "ALERT_STATUS_PENDING", "Jane Doe seen at the entrance")
    [attempt] = await settled(dispatcher.pool, alert_id, channel.id)
    assert (attempt.attempt, attempt.status, attempt.response_code, attempt.error, attempt.next_attempt_at) == (
        1, "delivered", 200, None, None)
    assert attempt.latency_ms >= 0 and attempt.attempted_at >= attempt.created_at
    async with service(dispatcher.pool) as conn:  # sent when the first notification went out
        alert = await (await conn.execute("SELECT status::text, sent_at FROM alerts WHERE id = %s",
                                          (alert_id,))).fetchone()
    assert alert["status"] == "sent" and alert["sent_at"] >= attempt.attempted_at


async def test_retries_with_backoff_until_delivered(make_dispatcher, make_alert, make_channel, receiver):
    path = hook_path()
    receiver.respond(path, 503, (502, {"error": "bad gateway"}))
    channel = await make_channel(WebhookSettings(receiver.url + path))
    alert_id = await make_alert()
    dispatcher = await make_dispatcher()

    dispatcher.submit(alert_id, [channel.id])

    found = await settled(dispatcher.pool, alert_id, channel.id)
    assert [(a.attempt, a.status, a.response_code) for a in found] == [
        (1, "failed", 503), (2, "failed", 502), (3, "delivered", 200)]
    assert found[1].error == "HTTP 502: bad gateway"
    for failed, retry in zip(found, found[1:]):  # each retry was due when the failure said, and started after it
        assert failed.next_attempt_at is not None and retry.attempted_at >= failed.next_attempt_at
    assert len(receiver.at(path)) == 3


async def test_gives_up_after_the_retries_are_spent(make_dispatcher, make_alert, make_channel, receiver):
    path = hook_path()
    receiver.respond(path, *[503] * 10)
    channel = await make_channel(WebhookSettings(receiver.url + path), delivery=DeliveryPolicy(
        timeout_seconds=2, retry_count=3))
    alert_id = await make_alert()
    dispatcher = await make_dispatcher()

    dispatcher.submit(alert_id, [channel.id])

    found = await settled(dispatcher.pool, alert_id, channel.id)
    assert [(a.attempt, a.status) for a in found] == [(1, "failed"), (2, "failed"), (3, "failed"), (4, "gave_up")]
    assert found[-1].next_attempt_at is None and found[-1].response_code == 503
    await dispatcher.sweep_due()
    assert len(receiver.at(path)) == 4  # nothing more is tried


async def test_permanent_error_is_not_retried(make_dispatcher, make_alert, make_channel, receiver):
    path = hook_path()
    receiver.respond(path, (404, {"error": "no such hook"}))
    channel = await make_channel(WebhookSettings(receiver.url + path))
    alert_id = await make_alert()
    dispatcher = await make_dispatcher()

    dispatcher.submit(alert_id, [channel.id])

    [attempt] = await settled(dispatcher.pool, alert_id, channel.id)
    assert (attempt.status, attempt.response_code, attempt.error) == ("gave_up", 404, "HTTP 404: no such hook")


async def test_hanging_channel_delays_no_other_channel(make_dispatcher, make_alert, make_channel, receiver):
    hanging, healthy = hook_path(), hook_path()
    release = receiver.hang(hanging)
    slow = await make_channel(WebhookSettings(receiver.url + hanging), delivery=DeliveryPolicy(
        timeout_seconds=30, retry_count=0))
    fast = await make_channel(WebhookSettings(receiver.url + healthy))
    alerts = [await make_alert() for _ in range(3)]
    dispatcher = await make_dispatcher(concurrency_per_channel=1)
    await make_dispatcher(concurrency_per_channel=1)  # a second replica sweeping the same table

    for alert_id in alerts:  # the hanging channel is listed first every time
        dispatcher.submit(alert_id, [slow.id, fast.id])

    for alert_id in alerts:
        assert (await settled(dispatcher.pool, alert_id, fast.id))[-1].status == "delivered"
    # every healthy delivery finished while the first hanging request was still open, and the
    # hanging channel holds one attempt at a time across both replicas: the other two wait
    assert len(receiver.at(healthy)) == 3 and len(receiver.at(hanging)) == 1
    statuses = sorted([(await attempts(dispatcher.pool, a, slow.id))[0].status for a in alerts])
    assert statuses == ["queued", "queued", "sending"]

    release.set()
    for alert_id in alerts:
        assert (await settled(dispatcher.pool, alert_id, slow.id))[-1].status == "delivered"


async def test_an_attempt_that_hangs_times_out_and_is_retried(make_dispatcher, make_alert, make_channel, receiver):
    path = hook_path()
    receiver.hang(path)
    channel = await make_channel(WebhookSettings(receiver.url + path), delivery=DeliveryPolicy(
        timeout_seconds=1, retry_count=1))
    alert_id = await make_alert()
    dispatcher = await make_dispatcher()

    dispatcher.submit(alert_id, [channel.id])

    found = await settled(dispatcher.pool, alert_id, channel.id)
    assert [(a.attempt, a.status, a.response_code) for a in found] == [(1, "failed", None), (2, "gave_up", None)]
    assert all(a.error.endswith("within 1 s") for a in found)  # the channel's timeout, by either guard


async def test_submit_never_waits_even_when_every_channel_hangs(make_dispatcher, make_alert, make_channel,
                                                                receiver):
    paths = [hook_path(), hook_path()]
    releases = [receiver.hang(p) for p in paths]
    channels = [await make_channel(WebhookSettings(receiver.url + p)) for p in paths]
    alerts = [await make_alert() for _ in range(5)]
    dispatcher = await make_dispatcher(queue_size=3)

    assert not inspect.iscoroutinefunction(dispatcher.submit)  # a plain call: nothing to wait for
    # submitted back to back without yielding to the loop: the writer cannot drain the queue meanwhile
    accepted = [dispatcher.submit(a, [c.id for c in channels]) for a in alerts]

    assert accepted == [True, True, True, False, False]  # the overflow is dropped (and logged)
    for path in paths:
        await receiver.wait_for(path, 3)  # every accepted alert reached both hanging channels
    for event in releases:
        event.set()
    for alert_id in alerts[:3]:
        for channel in channels:
            assert (await settled(dispatcher.pool, alert_id, channel.id))[-1].status == "delivered"
    for alert_id in alerts[3:]:
        assert await attempts(dispatcher.pool, alert_id, channels[0].id) == []


async def test_email_channel_through_the_dispatcher(make_dispatcher, make_alert, make_channel, smtp):
    channel = await make_channel(EmailSettings(smtp_host="127.0.0.1", smtp_port=smtp.port, security="none",
                                               from_address="vigil@example.com", to_addresses=("ops@example.com",),
                                               subject_template="{{alert_type}} at {{site_name}}"))
    alert_id = await make_alert(message="Jane Doe seen at the entrance")
    before = len(smtp.messages)
    dispatcher = await make_dispatcher()

    dispatcher.submit(alert_id, [channel.id])

    [attempt] = await settled(dispatcher.pool, alert_id, channel.id)
    assert (attempt.status, attempt.response_code) == ("delivered", 250)
    mail = (await smtp.wait_for(before + 1))[-1]
    assert b"Subject: person_recognized at site " in mail.content
    assert b"Jane Doe seen at the entrance" in mail.content and b"Confidence: 87%" in mail.content


async def test_sweep_due_sends_the_retry_a_stopped_dispatcher_scheduled(pool, secret_box, make_dispatcher,
                                                                        make_alert, make_channel, receiver):
    path = hook_path()
    receiver.respond(path, 503)
    channel = await make_channel(WebhookSettings(receiver.url + path))
    alert_id = await make_alert()
    first = await make_dispatcher(backoff=Backoff(base_seconds=1, max_seconds=1))
    first.submit(alert_id, [channel.id])
    # the retry queued after the first attempt failed (the first attempt is "queued" too, briefly)
    found = await settled(pool, alert_id, channel.id, statuses=("queued",), attempt=2)
    await first.close()  # "the process stops" before the retry is due
    assert [(a.attempt, a.status) for a in found] == [(1, "failed"), (2, "queued")]

    # a new process, whose loop sweeps once at start and then not for an hour: the sweep after the
    # retry is due sends it (or the loop's, on a machine slow enough to start it that late)
    second = await make_dispatcher(poll_interval=3600)
    await wait_until_due(pool, found[-1].next_attempt_at)
    await second.sweep_due()

    found = await settled(pool, alert_id, channel.id)
    assert [(a.attempt, a.status) for a in found] == [(1, "failed"), (2, "delivered")]
    assert len(receiver.at(path)) == 2


async def test_attempt_of_a_dispatcher_that_died_mid_send_is_retried(pool, make_dispatcher, make_alert,
                                                                     make_channel, receiver):
    path = hook_path()
    channel = await make_channel(WebhookSettings(receiver.url + path))
    alert_id = await make_alert()
    async with service(pool) as conn:  # what a crash leaves: claimed an hour ago, never concluded
        await conn.execute("INSERT INTO notification_deliveries (alert_id, channel_id, attempt, status, attempted_at)"
                           " VALUES (%s, %s, 1, 'sending', now() - interval '1 hour')", (alert_id, channel.id))

    await make_dispatcher(stale_after=60)

    found = await settled(pool, alert_id, channel.id)
    assert [(a.attempt, a.status) for a in found] == [(1, "failed"), (2, "delivered")]
    assert found[0].error.startswith("interrupted")
    assert len(receiver.at(path)) == 1


async def test_attempts_queued_in_the_alerts_transaction_are_sent(pool, make_dispatcher, make_alert, make_channel,
                                                                  receiver):
    path = hook_path()
    channel = await make_channel(WebhookSettings(receiver.url + path))
    alert_id = await make_alert()
    async with service(pool) as conn:  # e.g. the rule engine, in the transaction that creates the alert
        await DeliveryRepository(conn).enqueue(alert_id, [channel.id])

    await make_dispatcher()

    assert (await settled(pool, alert_id, channel.id))[-1].status == "delivered"
    await receiver.wait_for(path)


async def test_rate_limit_delays_excess_notifications(pool, make_dispatcher, make_alert, make_channel, receiver):
    path = hook_path()
    channel = await make_channel(WebhookSettings(receiver.url + path), delivery=DeliveryPolicy(
        timeout_seconds=2, rate_limit_per_min=2))
    alerts = [await make_alert() for _ in range(3)]
    dispatcher = await make_dispatcher()

    for alert_id in alerts:
        dispatcher.submit(alert_id, [channel.id])

    async def statuses() -> list[str]:
        return sorted([found[-1].status if (found := await attempts(pool, a, channel.id)) else "-" for a in alerts])

    async with asyncio.timeout(30):
        while (await statuses()).count("delivered") < 2:
            await asyncio.sleep(0.02)
    assert await dispatcher.sweep_due() == 0
    assert await statuses() == ["delivered", "delivered", "queued"]  # the third waits for the next minute
    assert len(receiver.at(path)) == 2


async def test_deactivated_channel_gives_up_its_queued_attempts(pool, secret_box, make_dispatcher, make_alert,
                                                                make_channel, receiver):
    path = hook_path()
    channel = await make_channel(WebhookSettings(receiver.url + path))
    alert_id = await make_alert()
    async with service(pool) as conn:
        await DeliveryRepository(conn).enqueue(alert_id, [channel.id])
        await ChannelRepository(conn, secret_box).update(channel.id, {"is_active": False})

    await make_dispatcher()

    [attempt] = await settled(pool, alert_id, channel.id)
    assert (attempt.status, attempt.error) == ("gave_up", "channel is inactive")
    assert receiver.at(path) == []


async def test_close_puts_a_running_attempt_back_in_the_queue(pool, make_dispatcher, make_alert, make_channel,
                                                              receiver):
    path = hook_path()
    receiver.hang(path)
    channel = await make_channel(WebhookSettings(receiver.url + path), delivery=FAST)
    alert_id = await make_alert()
    dispatcher = await make_dispatcher(shutdown_grace=0.1)
    dispatcher.submit(alert_id, [channel.id])
    await receiver.wait_for(path)

    await dispatcher.close()

    [attempt] = await attempts(pool, alert_id, channel.id)
    assert (attempt.attempt, attempt.status, attempt.attempted_at) == (1, "queued", None)


async def wait_until_due(pool, when) -> None:
    """Until the database clock (which schedules retries) has reached `when`."""
    async with asyncio.timeout(30):
        while True:
            async with pool.connection() as conn:
                if (await (await conn.execute("SELECT now() >= %s AS due", (when,))).fetchone())["due"]:
                    return
            await asyncio.sleep(0.05)


def test_backoff_doubles_with_jitter_and_is_capped():
    backoff = Backoff(base_seconds=2, max_seconds=10)
    for attempt, ceiling in ((1, 2), (2, 4), (3, 8), (4, 10), (9, 10)):
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(set(delays)) > 1
