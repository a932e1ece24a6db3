"""AlertService: alerts and their lifecycle (pending → sent → acknowledged → resolved, or ignored),
notification channels (stored by vigil.control.notifications) and their delivery attempts.

Alerts are created only by rule evaluation (vigil.control.rules.write_alerts). The notifier marks
an alert sent with AlertRepository(conn).mark_sent(alert_id), which records the change as the
system's; it is FailedPrecondition when an operator already took the alert on, and then there is
nothing to record. Every status change is an AlertUpdate on the feed, written in the transaction
of the change (feed.record_status_change).
"""

from __future__ import annotations

from datetime import timedelta

from vigil.api.v1 import alert_pb2 as pb
from vigil.api.v1 import alert_pb2_grpc
from vigil.control.auth import Caller
from vigil.control.convert import EnumMap, text, timestamp
from vigil.control.field_mask import apply_mask, split_secrets
from vigil.control.ingest import feed
from vigil.control.request_checks import (
    api_token,
    checked_text,
    fields_of,
    id_list,
    is_active,
    repository_token,
    required_id,
    time_bounds,
)
from vigil.control.rpc import rpc
from vigil.control.rules.alert_api import SEVERITY, STATUS, alert_message
from vigil.control.rules.api_values import duration_message, duration_value
from vigil.control.services.rules import any_of
from vigil.control.transactions import CallerDatabase
from vigil.errors import FailedPrecondition, InvalidArgument
from vigil.storage.crypto import SecretBox
from vigil.storage.repositories.alerts import Alert, AlertRepository
from vigil.storage.repositories.channel_settings import (
    ChannelSettings,
    DeliveryPolicy,
    EmailSettings,
    TelegramSettings,
    WebhookSettings,
    WhatsAppSettings,
)
from vigil.storage.repositories.notifications import Channel, ChannelRepository, Delivery, DeliveryRepository

NOTE_LIMIT = 2000

CHANNEL = "notification_channel"
CHANNEL_TYPE = EnumMap(pb.ChannelType, "CHANNEL_TYPE_", "channel_types")
SMTP_SECURITY = EnumMap(pb.SmtpSecurity, "SMTP_SECURITY_", f"{CHANNEL}.email.security")
CHANNEL_UPDATABLE = ("name", "is_active", "webhook", "email", "telegram", "whatsapp", "delivery")
# Input-only secrets, one per channel type: changed only when their path is named ("*" keeps them).
SECRET_PATHS = {"webhook": "webhook.signing_secret", "email": "email.password", "telegram": "telegram.bot_token",
                "whatsapp": "whatsapp.api_key"}
HAS_SECRET_PATHS = ("webhook.has_signing_secret", "email.has_password", "telegram.has_bot_token",
                    "whatsapp.has_api_key")
DEFAULT_POLICY = DeliveryPolicy()
# AlertService reports finished attempts: delivered, or failed (with or without a retry scheduled).
DELIVERY_STATUSES = {pb.DELIVERY_STATUS_SUCCEEDED: ("delivered",), pb.DELIVERY_STATUS_FAILED: ("failed", "gave_up")}


async def change_status(repo: AlertRepository, alert_id, target: str, caller: Caller,
                        note: str | None) -> tuple[Alert, bool]:
    """The alert after moving it to `target` (the change recorded on the feed), and whether it
    moved: repeating a change (acknowledging an acknowledged alert) changes nothing; any other
    refused move stays FailedPrecondition."""
    if target not in ("acknowledged", "resolved", "ignored"):
        raise ValueError(f"an operator cannot move an alert to {target}")
    try:
        alert, change = await repo.transition(alert_id, target, caller.user_id, note=note, api_key_id=caller.key.id)
    except FailedPrecondition:
        current = await repo.get(alert_id)
        if current.status != target:
            raise
        return current, False
    await feed.record_status_change(repo.conn, alert, change)
    return alert, True


# --------------------------------------------------------------------------- channel messages


def channel_settings(channel: pb.NotificationChannel) -> ChannelSettings:
    """The settings of the config that is set (checked by the repository, which names the fields)."""
    kind = channel.WhichOneof("config")
    if kind is None:
        raise InvalidArgument(f"{CHANNEL}.config", "set one of webhook, email, telegram, whatsapp")
    config = getattr(channel, kind)
    if kind == "webhook":
        return WebhookSettings(url=config.url)
    if kind == "email":
        return EmailSettings(smtp_host=config.smtp_host, from_address=config.from_address,
                             to_addresses=tuple(config.to_addresses), smtp_port=config.smtp_port,
                             security=SMTP_SECURITY.label(config.security, required=False) or "starttls",
                             username=config.username or None, subject_template=config.subject_template or None,
                             body_template=config.body_template or None)
    if kind == "telegram":
        return TelegramSettings(chat_id=config.chat_id, base_url=config.base_url or None,
                                message_template=config.message_template or None)
    return WhatsAppSettings(phone_number_id=config.phone_number_id, recipients=tuple(config.recipients),
                            base_url=config.base_url or None, message_template=config.message_template or None)


def channel_secret(channel: pb.NotificationChannel, kind: str) -> str | None:
    config_field, secret_field = SECRET_PATHS[kind].split(".")
    return getattr(getattr(channel, config_field), secret_field) or None


def delivery_policy(policy: pb.DeliveryPolicy) -> DeliveryPolicy:
    """Unset fields take the defaults; ranges are checked by the repository."""
    timeout = (duration_value(f"{CHANNEL}.delivery.timeout", policy.timeout, timedelta(seconds=1),
                              timedelta(minutes=5)).total_seconds()
               if policy.HasField("timeout") else DEFAULT_POLICY.timeout_seconds)
    return DeliveryPolicy(
        timeout_seconds=timeout,
        retry_count=policy.retry_count if policy.HasField("retry_count") else DEFAULT_POLICY.retry_count,
        rate_limit_per_min=(policy.rate_limit_per_minute if policy.HasField("rate_limit_per_minute")
                            else DEFAULT_POLICY.rate_limit_per_min))


def channel_message(channel: Channel) -> pb.NotificationChannel:
    policy = channel.delivery
    message = pb.NotificationChannel(
        id=str(channel.id), name=channel.name, channel_type=CHANNEL_TYPE.number(channel.channel_type),
        is_active=channel.is_active, created_by=text(channel.created_by), create_time=timestamp(channel.created_at),
        delivery=pb.DeliveryPolicy(timeout=duration_message(timedelta(seconds=policy.timeout_seconds)),
                                   retry_count=policy.retry_count, rate_limit_per_minute=policy.rate_limit_per_min))
    s = channel.settings
    if isinstance(s, WebhookSettings):
        message.webhook.CopyFrom(pb.WebhookConfig(url=s.url, has_signing_secret=channel.has_secret))
    elif isinstance(s, EmailSettings):
        message.email.CopyFrom(pb.EmailConfig(
            smtp_host=s.smtp_host, smtp_port=s.smtp_port, security=SMTP_SECURITY.number(s.security),
            username=s.username or "", has_password=channel.has_secret, from_address=s.from_address,
            to_addresses=list(s.to_addresses), subject_template=s.subject_template or "",
            body_template=s.body_template or ""))
    elif isinstance(s, TelegramSettings):
        message.telegram.CopyFrom(pb.TelegramConfig(base_url=s.base_url or "", has_bot_token=channel.has_secret,
                                                    chat_id=s.chat_id, message_template=s.message_template or ""))
    else:
        message.whatsapp.CopyFrom(pb.WhatsAppConfig(
            base_url=s.base_url or "", has_api_key=channel.has_secret, phone_number_id=s.phone_number_id,
            recipients=list(s.recipients), message_template=s.message_template or ""))
    return message


def delivery_message(d: Delivery) -> pb.NotificationDelivery:
    return pb.NotificationDelivery(
        id=str(d.id), alert_id=str(d.alert_id), channel_id=str(d.channel_id),
        channel_type=CHANNEL_TYPE.number(d.channel_type), attempt=d.attempt,
        status=pb.DELIVERY_STATUS_SUCCEEDED if d.status == "delivered" else pb.DELIVERY_STATUS_FAILED,
        response_code=d.response_code or 0, error=d.error or "", attempt_time=timestamp(d.attempted_at),
        duration=None if d.latency_ms is None else duration_message(timedelta(milliseconds=d.latency_ms)),
        next_attempt_time=timestamp(d.next_attempt_at) if d.status == "failed" else None)


def delivery_statuses(numbers) -> list[str]:
    """The stored statuses of a filter; every finished attempt without one."""
    for i, number in enumerate(numbers):
        if number not in DELIVERY_STATUSES:
            raise InvalidArgument(f"statuses[{i}]", "must be DELIVERY_STATUS_SUCCEEDED or DELIVERY_STATUS_FAILED")
    chosen = numbers or list(DELIVERY_STATUSES)
    return [status for number in dict.fromkeys(chosen) for status in DELIVERY_STATUSES[number]]


class AlertService(alert_pb2_grpc.AlertServiceServicer):
    def __init__(self, db: CallerDatabase, secrets: SecretBox):
        self.db = db
        self.secrets = secrets

    # ----------------------------------------------------------------------- alerts

    @rpc("alerts", "read")
    async def ListAlerts(self, request, context):
        since, until = time_bounds(request, "time_range")
        filters = {
            "camera_ids": id_list("camera_ids", request.camera_ids) or None,
            "site_ids": id_list("site_ids", request.site_ids) or None,
            "statuses": STATUS.labels(request.statuses) or None,  # UNSPECIFIED is invalid in this filter
            "severities": any_of(SEVERITY, request.severities),
            "rule_ids": id_list("alert_rule_ids", request.alert_rule_ids) or None,
            "person_ids": id_list("person_ids", request.person_ids) or None,
            "since": since, "until": until,
        }
        token = repository_token(request)
        async with self.db.transaction() as tx:
            page = await AlertRepository(tx.conn).list(**filters, page_size=request.page_size, page_token=token)
            return pb.ListAlertsResponse(alerts=[alert_message(a) for a in page.items],
                                         next_page_token=api_token(request, page.next_page_token))

    @rpc("alerts", "read")
    async def GetAlert(self, request, context):
        alert_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            repo = AlertRepository(tx.conn)
            alert = await repo.get(alert_id)
            return pb.GetAlertResponse(alert=alert_message(alert, await repo.history(alert_id),
                                                           await repo.matches(alert_id)))

    async def _change(self, request, target: str) -> Alert:
        alert_id = required_id("id", request.id)
        note = checked_text("note", request.note, NOTE_LIMIT)
        async with self.db.transaction() as tx:
            alert, moved = await change_status(AlertRepository(tx.conn), alert_id, target, tx.caller, note)
            if moved:
                await tx.audit(f"alert.{target}", "alert", alert_id, {"status": target, "note": note})
            return alert

    @rpc("events", "acknowledge")
    async def AcknowledgeAlert(self, request, context):
        return pb.AcknowledgeAlertResponse(alert=alert_message(await self._change(request, "acknowledged")))

    @rpc("events", "acknowledge")
    async def ResolveAlert(self, request, context):
        return pb.ResolveAlertResponse(alert=alert_message(await self._change(request, "resolved")))

    @rpc("events", "acknowledge")
    async def IgnoreAlert(self, request, context):
        return pb.IgnoreAlertResponse(alert=alert_message(await self._change(request, "ignored")))

    # ----------------------------------------------------------------------- notification channels

    def _channels(self, tx) -> ChannelRepository:
        return ChannelRepository(tx.conn, self.secrets)

    @rpc("alerts", "configure")
    async def GetNotificationChannel(self, request, context):
        channel_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            channel = await self._channels(tx).get(channel_id)
            return pb.GetNotificationChannelResponse(notification_channel=channel_message(channel))

    @rpc("alerts", "configure")
    async def ListNotificationChannels(self, request, context):
        channel_types = CHANNEL_TYPE.labels(request.channel_types) or None  # UNSPECIFIED is invalid here
        token = repository_token(request)
        async with self.db.transaction() as tx:
            page = await self._channels(tx).list(
                channel_types=channel_types, is_active=request.is_active if request.HasField("is_active") else None,
                page_size=request.page_size, page_token=token)
            return pb.ListNotificationChannelsResponse(
                notification_channels=[channel_message(c) for c in page.items],
                next_page_token=api_token(request, page.next_page_token))

    @rpc("alerts", "configure")
    async def CreateNotificationChannel(self, request, context):
        channel = request.notification_channel
        settings = channel_settings(channel)
        policy = delivery_policy(channel.delivery)
        async with self.db.transaction() as tx:
            with fields_of(CHANNEL):
                created = await self._channels(tx).create(
                    channel.name, settings, secret=channel_secret(channel, settings.channel_type), delivery=policy,
                    is_active=is_active(channel), created_by=tx.caller.user_id)
            await tx.audit("notification_channel.create", "notification_channel", created.id,
                           {"name": created.name, "channel_type": created.channel_type, "secret": created.has_secret})
            return pb.CreateNotificationChannelResponse(notification_channel=channel_message(created))

    @rpc("alerts", "configure")
    async def UpdateNotificationChannel(self, request, context):
        channel = request.notification_channel
        channel_id = required_id(f"{CHANNEL}.id", channel.id)
        paths = list(request.update_mask.paths)
        others, secrets = split_secrets(request.update_mask, SECRET_PATHS.values())
        async with self.db.transaction() as tx:
            repo = self._channels(tx)
            stored = await repo.get(channel_id)
            changes = {}
            if others.paths or not secrets:  # an empty mask is refused by apply_mask
                merged = channel_message(stored)
                apply_mask(channel, merged, others, resource=CHANNEL, updatable=CHANNEL_UPDATABLE,
                           output_only=HAS_SECRET_PATHS)
                changes = {"name": merged.name, "is_active": is_active(merged), "settings": channel_settings(merged),
                           "delivery": delivery_policy(merged.delivery)}
            for path in secrets:
                if path != SECRET_PATHS[stored.channel_type]:
                    raise InvalidArgument("update_mask", f"{path} is not the secret of a {stored.channel_type} channel")
                changes["secret"] = channel_secret(channel, stored.channel_type)
            with fields_of(CHANNEL):
                updated = await repo.update(channel_id, changes)
            await tx.audit("notification_channel.update", "notification_channel", channel_id, {"update_mask": paths})
            return pb.UpdateNotificationChannelResponse(notification_channel=channel_message(updated))

    @rpc("alerts", "configure")
    async def DeleteNotificationChannel(self, request, context):
        channel_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            await self._channels(tx).delete(channel_id)  # alert_rule_channels rows go with it
            await tx.audit("notification_channel.delete", "notification_channel", channel_id)
            return pb.DeleteNotificationChannelResponse()

    @rpc("alerts", "read")
    async def ListNotificationDeliveries(self, request, context):
        since, until = time_bounds(request, "time_range")
        filters = {
            "alert_ids": id_list("alert_ids", request.alert_ids) or None,
            "channel_ids": id_list("channel_ids", request.channel_ids) or None,
            "statuses": delivery_statuses(list(request.statuses)), "since": since, "until": until,
        }
        token = repository_token(request)
        async with self.db.transaction() as tx:
            page = await DeliveryRepository(tx.conn).list(**filters, page_size=request.page_size, page_token=token)
            return pb.ListNotificationDeliveriesResponse(
                notification_deliveries=[delivery_message(d) for d in page.items],
                next_page_token=api_token(request, page.next_page_token))


SERVICE = (AlertService, alert_pb2_grpc.add_AlertServiceServicer_to_server, "vigil.v1.AlertService")
