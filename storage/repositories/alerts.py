"""Alert rules, analytics configurations, and alerts with their lifecycle: pending → sent →
acknowledged → resolved, or ignored.

A transition is one conditional UPDATE (`... WHERE status = ANY(allowed sources)`), so two
operators acting at once cannot both move the same alert; the loser gets FailedPrecondition.
Each transition writes its row of alert_status_changes (from, to, who, when, note) in the same
savepoint.

A rule's cooldown is claimed with one INSERT ... ON CONFLICT DO UPDATE ... WHERE on
alert_cooldowns: a second writer of the same rule, camera and subject waits for the first to
commit and then finds the cooldown running, so concurrent writers raise one alert.

A grouping rule's match joins its episode's open alert (AlertRepository.group): an UPDATE of the
open alert whose last match is within the window, else an INSERT ... ON CONFLICT DO NOTHING
against the partial unique index on open episodes; a second writer of the same episode waits
for the first's commit, inserts nothing and joins the first's alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from vigil.errors import FailedPrecondition, InvalidArgument, NotFound
from vigil.storage.repositories.base import (
    BY_CREATED_AT,
    BY_NAME,
    CONSTRAINT_FIELDS,
    Page,
    as_uuid,
    aware,
    check_updatable,
    columns_of,
    delete_row,
    fetch_all,
    fetch_one,
    fetch_page,
    guarded,
    insert_row,
    optional_uuid,
    unit_interval,
    update_row,
    uuid_list,
)
from vigil.storage.repositories.filters import Filters
from vigil.storage.repositories.sites import BY_CAMERA_THEN_NAME

# Constraints of 0022 whose violation does not name the caller's field by itself.
CONSTRAINT_FIELDS.update({
    "chk_alert_rules_cooldown": "cooldown",
    "chk_alert_rules_source": "activity_type",
    "fk_alert_rules_watchlist": "watchlist_id",
    "fk_rule_channels_channel": "notification_channel_ids",
    "chk_alerts_source": "event_id",
    "chk_alerts_trigger": "trigger_clause",
    "chk_alert_changes_note": "note",
    "fk_alert_changes_actor": "by",
    "chk_analytics_configs_parameters": "parameters",
    "fk_analytics_configs_camera": "camera_id",
    "fk_analytics_configs_zone": "zone_id",
})

# Every day, all day: what a rule without a schedule is stored with (the column default too).
ALL_WEEK = {"days": [0, 1, 2, 3, 4, 5, 6], "start_time": "00:00", "end_time": "24:00"}
DEFAULT_COOLDOWN = timedelta(seconds=60)
SEVERITY_ORDER = ("low", "medium", "high", "critical")  # severity_enum, lowest first
OPEN_STATUSES = ("pending", "sent", "acknowledged")


@dataclass(frozen=True)
class AlertRule:
    id: UUID
    name: str
    camera_id: UUID | None  # None: every camera
    person_id: UUID | None  # None: anybody
    person_role: str | None
    watchlist_id: UUID | None  # None: no watchlist condition
    zone_id: UUID | None
    event_type: str | None  # None: every event type
    activity_type: str | None  # set: the rule matches suspicious activities of this type, not events
    schedule: dict[str, Any]  # {"days", "start_time", "end_time", "timezone"?}
    confidence_threshold: float
    severity: str | None  # None: from the person's status
    is_active: bool
    quiet_hours: dict[str, Any] | None  # {"start", "end", "enabled"}
    cooldown: timedelta
    notification_channel_ids: list[UUID]
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    group_window: timedelta = timedelta(0)  # 0: one alert per match; else one open alert per episode
    object_class: str | None = None  # None: any class; person | face | vehicle
    object_label: str | None = None  # None: any label; a vehicle's ("car", "truck", ...)


@dataclass(frozen=True)
class AnalyticsConfig:
    id: UUID
    name: str
    camera_id: UUID
    zone_id: UUID | None  # None: the whole frame
    activity_type: str
    analytic: str  # the analytic unit that runs it, "name@version"
    severity: str
    parameters: dict[str, Any]
    is_active: bool
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Alert:
    id: UUID
    event_id: UUID | None  # None when a suspicious activity raised it
    suspicious_activity_id: UUID | None
    alert_rule_id: UUID | None
    person_id: UUID | None
    camera_id: UUID
    site_id: UUID  # of its camera
    alert_type: str
    severity: str
    message: str
    status: str
    sent_at: datetime | None
    acknowledged_by: UUID | None
    acknowledged_at: datetime | None
    resolved_by: UUID | None  # also who ignored it (status tells which)
    resolved_at: datetime | None
    trigger_rule_id: UUID | None  # the trigger: None for alerts not raised by rule evaluation
    trigger_clause: str | None
    track_id: str | None
    trigger_evidence: dict[str, Any] | None
    created_at: datetime
    group_key: str | None  # the episode of a grouping rule; None: the alert stands for one match
    match_count: int  # matches it stands for: the first (its trigger) and those of alert_matches
    last_matched_at: datetime | None  # capture time of the episode's latest match
    track_ids: list[str]  # distinct tracks of its matches, first seen first


@dataclass(frozen=True)
class AlertMatch:
    """A match that joined an open alert after the one that raised it."""

    alert_id: UUID
    matched_at: datetime  # capture time
    track_id: str | None
    event_id: UUID | None
    suspicious_activity_id: UUID | None
    severity: str
    evidence: dict[str, Any]  # as Alert.trigger_evidence


@dataclass(frozen=True)
class GroupedMatch:
    """What AlertRepository.group did with a match: opened `alert`, or joined it (then
    previous_severity is its severity before the match)."""

    alert: Alert
    joined: bool
    previous_severity: str | None = None

    @property
    def severity_rose(self) -> bool:
        return self.joined and SEVERITY_ORDER.index(self.alert.severity) > SEVERITY_ORDER.index(self.previous_severity)


@dataclass(frozen=True)
class AlertStatusChange:
    alert_id: UUID
    from_status: str
    to_status: str
    actor_id: UUID | None  # None: the system, or an API key without a user
    api_key_id: UUID | None
    note: str | None
    changed_at: datetime


# --------------------------------------------------------------------------- alert rules

_RULE_COLUMNS = columns_of(
    AlertRule, confidence_threshold=sql.SQL("confidence_threshold::float8"),
    notification_channel_ids=sql.SQL("ARRAY(SELECT c.channel_id FROM alert_rule_channels c"
                                     " WHERE c.rule_id = alert_rules.id ORDER BY c.position)"))
_RULE_UPDATABLE = ("name", "camera_id", "person_id", "person_role", "watchlist_id", "zone_id", "event_type",
                   "activity_type", "schedule", "confidence_threshold", "severity", "is_active", "quiet_hours",
                   "cooldown", "notification_channel_ids", "group_window", "object_class", "object_label")
_RULE_REFERENCES = ("camera_id", "person_id", "watchlist_id", "zone_id", "created_by")


def _rule_values(values: dict[str, Any]) -> dict[str, Any]:
    """Typed column values for an insert or update of a rule (its channels apart)."""
    values = dict(values)
    for name in _RULE_REFERENCES:
        if name in values:
            values[name] = optional_uuid(name, values[name])
    if "confidence_threshold" in values:
        values["confidence_threshold"] = unit_interval("confidence_threshold", values["confidence_threshold"])
    if "schedule" in values:
        values["schedule"] = Jsonb(values["schedule"] if values["schedule"] is not None else ALL_WEEK)
    if values.get("quiet_hours") is not None:
        values["quiet_hours"] = Jsonb(values["quiet_hours"])
    for name in ("cooldown", "group_window"):
        if name in values and not isinstance(values[name], timedelta):
            raise InvalidArgument(name, "must be a timedelta")
    return values


class AlertRuleRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def create(self, name: str, created_by: UUID | str | None, *, camera_id: UUID | str | None = None,
                     person_id: UUID | str | None = None, person_role: str | None = None,
                     watchlist_id: UUID | str | None = None, zone_id: UUID | str | None = None,
                     event_type: str | None = None, activity_type: str | None = None,
                     schedule: dict[str, Any] | None = None, confidence_threshold: float = 0.75,
                     severity: str | None = None, is_active: bool = True,
                     quiet_hours: dict[str, Any] | None = None, cooldown: timedelta = DEFAULT_COOLDOWN,
                     notification_channel_ids: Sequence[UUID | str] = (),
                     group_window: timedelta = timedelta(0), object_class: str | None = None,
                     object_label: str | None = None) -> AlertRule:
        """Without a schedule the rule is armed all week (ALL_WEEK); without a severity its alerts
        take the person's status; without a group window each match is an alert."""
        values = {"name": name, "created_by": created_by, "camera_id": camera_id, "person_id": person_id,
                  "person_role": person_role, "watchlist_id": watchlist_id, "zone_id": zone_id,
                  "event_type": event_type, "activity_type": activity_type, "schedule": schedule,
                  "confidence_threshold": confidence_threshold, "severity": severity, "is_active": is_active,
                  "quiet_hours": quiet_hours, "cooldown": cooldown, "group_window": group_window,
                  "object_class": object_class, "object_label": object_label}
        rule = await insert_row(self.conn, "alert_rules", _rule_values(values), AlertRule, _RULE_COLUMNS,
                                "alert_rule")
        if notification_channel_ids:
            await self._set_channels(rule.id, notification_channel_ids)
            rule = await self.get(rule.id)
        return rule

    async def get(self, rule_id: UUID | str) -> AlertRule:
        rule_id = as_uuid("rule_id", rule_id)
        rule = await fetch_one(self.conn, AlertRule,
                               sql.SQL("SELECT {} FROM alert_rules WHERE id = %s").format(_RULE_COLUMNS), (rule_id,))
        if rule is None:
            raise NotFound("alert_rule", rule_id)
        return rule

    async def list(self, *, is_active: bool | None = None, camera_id: UUID | str | None = None,
                   camera_ids: Iterable[UUID | str] | None = None, person_ids: Iterable[UUID | str] | None = None,
                   zone_ids: Iterable[UUID | str] | None = None, watchlist_ids: Iterable[UUID | str] | None = None,
                   severities: Iterable[str] | None = None, page_size: int = 0,
                   page_token: str | None = None) -> Page[AlertRule]:
        """By name. Each id filter matches any of its values; rules without that condition never match."""
        filters = Filters().eq("is_active", is_active)
        if camera_id is not None:
            camera_ids = [camera_id, *(camera_ids or ())]
        for column, values in (("camera_id", camera_ids), ("person_id", person_ids), ("zone_id", zone_ids),
                               ("watchlist_id", watchlist_ids)):
            filters.any(column, uuid_list(f"{column}s", values))
        severities = None if severities is None else list(severities)
        filters.any("severity", severities, cast="severity_enum")
        return await fetch_page(self.conn, AlertRule, select=_RULE_COLUMNS, table="alert_rules", filters=filters,
                                keyset=BY_NAME, page_size=page_size, page_token=page_token,
                                resource="alert_rule", values={"severities": severities})

    async def active_for_camera(self, camera_id: UUID | str) -> list[AlertRule]:
        """The active rules the rule engine evaluates for this camera's events (its own and global ones)."""
        query = sql.SQL("SELECT {} FROM alert_rules WHERE is_active AND (camera_id IS NULL OR camera_id = %s)"
                        " ORDER BY name, id").format(_RULE_COLUMNS)
        return await fetch_all(self.conn, AlertRule, query, (as_uuid("camera_id", camera_id),))

    async def update(self, rule_id: UUID | str, changes: dict[str, Any]) -> AlertRule:
        check_updatable("alert_rule", changes, _RULE_UPDATABLE)
        rule_id = as_uuid("rule_id", rule_id)
        columns = {k: v for k, v in changes.items() if k != "notification_channel_ids"}
        rule = await update_row(self.conn, "alert_rules", rule_id, _rule_values(columns), AlertRule, _RULE_COLUMNS,
                                "alert_rule")
        if "notification_channel_ids" in changes:
            await self._set_channels(rule_id, changes["notification_channel_ids"])
            rule = await self.get(rule_id)
        return rule

    async def delete(self, rule_id: UUID | str) -> None:
        """Alerts the rule raised stay; their alert_rule_id becomes NULL (their trigger keeps the id)."""
        await delete_row(self.conn, "alert_rules", as_uuid("rule_id", rule_id), "alert_rule")

    async def missing_channels(self, channel_ids: Sequence[UUID | str]) -> list[UUID]:
        """Those of the ids that name no notification channel, in the order given."""
        cur = await self.conn.execute(
            "SELECT c.id FROM unnest(%s::uuid[]) WITH ORDINALITY AS c(id, n)"
            " WHERE NOT EXISTS (SELECT 1 FROM notification_channels nc WHERE nc.id = c.id) ORDER BY c.n",
            (uuid_list("notification_channel_ids", channel_ids),))
        return [row["id"] for row in await cur.fetchall()]

    async def _set_channels(self, rule_id: UUID, channel_ids: Sequence[UUID | str]) -> None:
        ids = uuid_list("notification_channel_ids", channel_ids) or []
        if len(set(ids)) != len(ids):
            raise InvalidArgument("notification_channel_ids", "lists a channel more than once")
        async with guarded(self.conn, "alert_rule", {"notification_channel_ids": ids}):
            await self.conn.execute("DELETE FROM alert_rule_channels WHERE rule_id = %s", (rule_id,))
            if ids:
                await self.conn.execute(
                    "INSERT INTO alert_rule_channels (rule_id, channel_id, position)"
                    " SELECT %s, channel_id, position - 1"
                    " FROM unnest(%s::uuid[]) WITH ORDINALITY AS c(channel_id, position)",
                    (rule_id, ids))


# --------------------------------------------------------------------------- analytics configurations

_CONFIG_COLUMNS = columns_of(AnalyticsConfig)
_CONFIG_UPDATABLE = ("name", "zone_id", "severity", "parameters", "is_active", "analytic")


def _config_values(values: dict[str, Any]) -> dict[str, Any]:
    values = dict(values)
    for name in ("camera_id", "zone_id", "created_by"):
        if name in values:
            values[name] = optional_uuid(name, values[name])
    if "parameters" in values:
        if not isinstance(values["parameters"], dict):
            raise InvalidArgument("parameters", "must be a JSON object")
        values["parameters"] = Jsonb(values["parameters"])
    return values


class AnalyticsConfigRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def create(self, name: str, camera_id: UUID | str, activity_type: str, created_by: UUID | str | None, *,
                     zone_id: UUID | str | None = None, severity: str = "medium",
                     parameters: dict[str, Any] | None = None, is_active: bool = True,
                     analytic: str | None = None) -> AnalyticsConfig:
        """analytic None: the first version of the unit named as the activity type (rows written past
        RuleService, by tests and the demo)."""
        values = {"name": name, "camera_id": camera_id, "activity_type": activity_type, "created_by": created_by,
                  "zone_id": zone_id, "severity": severity, "parameters": parameters or {}, "is_active": is_active,
                  "analytic": analytic or f"{activity_type}@1"}
        return await insert_row(self.conn, "analytics_configs", _config_values(values), AnalyticsConfig,
                                _CONFIG_COLUMNS, "analytics_config")

    async def get(self, config_id: UUID | str) -> AnalyticsConfig:
        config_id = as_uuid("config_id", config_id)
        config = await fetch_one(self.conn, AnalyticsConfig, sql.SQL("SELECT {} FROM analytics_configs WHERE id = %s")
                                 .format(_CONFIG_COLUMNS), (config_id,))
        if config is None:
            raise NotFound("analytics_config", config_id)
        return config

    async def list(self, *, camera_ids: Iterable[UUID | str] | None = None,
                   zone_ids: Iterable[UUID | str] | None = None, activity_types: Iterable[str] | None = None,
                   is_active: bool | None = None, page_size: int = 0,
                   page_token: str | None = None) -> Page[AnalyticsConfig]:
        """By camera, then name."""
        filters = Filters()
        for column, values in (("camera_id", camera_ids), ("zone_id", zone_ids)):
            filters.any(column, uuid_list(f"{column}s", values))
        activity_types = None if activity_types is None else list(activity_types)
        filters.any("activity_type", activity_types, cast="activity_type_enum").eq("is_active", is_active)
        return await fetch_page(self.conn, AnalyticsConfig, select=_CONFIG_COLUMNS, table="analytics_configs",
                                filters=filters, keyset=BY_CAMERA_THEN_NAME, page_size=page_size,
                                page_token=page_token, resource="analytics_config",
                                values={"activity_types": activity_types})

    async def update(self, config_id: UUID | str, changes: dict[str, Any]) -> AnalyticsConfig:
        """camera_id and activity_type are immutable: the parameters belong to the activity type."""
        check_updatable("analytics_config", changes, _CONFIG_UPDATABLE)
        return await update_row(self.conn, "analytics_configs", as_uuid("config_id", config_id),
                                _config_values(changes), AnalyticsConfig, _CONFIG_COLUMNS, "analytics_config")

    async def delete(self, config_id: UUID | str) -> None:
        await delete_row(self.conn, "analytics_configs", as_uuid("config_id", config_id), "analytics_config")


# --------------------------------------------------------------------------- alerts

_ALERT_COLUMNS = columns_of(Alert, site_id=sql.SQL(
    "(SELECT d.site_id FROM cameras c JOIN dvrs d ON d.id = c.dvr_id WHERE c.id = alerts.camera_id)"))
_CHANGE_COLUMNS = columns_of(AlertStatusChange)
_MATCH_COLUMNS = columns_of(AlertMatch, severity=sql.SQL("severity::text"))

# target status: (statuses it may be reached from, columns recording who and when)
_TRANSITIONS: dict[str, tuple[tuple[str, ...], sql.SQL]] = {
    "sent": (("pending",), sql.SQL("sent_at = now()")),
    "acknowledged": (("pending", "sent"), sql.SQL("acknowledged_by = %(actor)s, acknowledged_at = now()")),
    # closing an alert ends its episode: the next match opens a new alert
    "resolved": (OPEN_STATUSES, sql.SQL("resolved_by = %(actor)s, resolved_at = now(), episode_open = FALSE")),
    "ignored": (OPEN_STATUSES, sql.SQL("resolved_by = %(actor)s, resolved_at = now(), episode_open = FALSE")),
}

# The claim of a cooldown: wins when the rule's last alert about the subject on the camera is at
# least the rule's current cooldown before the capture time `at` (or there was none, or the
# cooldown is zero), and then records `at` as the last alert. An inactive or deleted rule claims
# nothing.
_CLAIM_COOLDOWN = sql.SQL(
    "INSERT INTO alert_cooldowns AS c (rule_id, camera_id, subject, last_alert_at)"
    " SELECT r.id, %(camera)s, %(subject)s, %(at)s FROM alert_rules r WHERE r.id = %(rule)s AND r.is_active"
    " ON CONFLICT (rule_id, camera_id, subject)"
    " DO UPDATE SET last_alert_at = GREATEST(c.last_alert_at, EXCLUDED.last_alert_at)"
    " WHERE (SELECT r.cooldown = INTERVAL '0' OR c.last_alert_at + r.cooldown <= EXCLUDED.last_alert_at"
    "        FROM alert_rules r WHERE r.id = c.rule_id)"
    " RETURNING c.last_alert_at")

# A match joins the episode's open alert when it comes at most the window after the last match:
# one more match, its track, and the higher severity. The sub-select locks the row (a concurrent
# joiner waits, then re-reads it) and hands back the severity it replaced.
_JOIN_EPISODE = sql.SQL(
    "UPDATE alerts SET match_count = alerts.match_count + 1,"
    " last_matched_at = GREATEST(alerts.last_matched_at, %(at)s),"
    " track_ids = CASE WHEN %(track)s::varchar IS NULL OR %(track)s = ANY(alerts.track_ids) THEN alerts.track_ids"
    "                  ELSE array_append(alerts.track_ids, %(track)s::varchar) END,"
    " severity = GREATEST(alerts.severity, %(severity)s::severity_enum)"
    " FROM (SELECT id, severity FROM alerts WHERE group_key = %(key)s AND episode_open"
    "       AND last_matched_at + %(window)s >= %(at)s FOR UPDATE) AS previous"
    " WHERE alerts.id = previous.id RETURNING alerts.id, previous.severity::text AS previous_severity")
_NO_CONFLICT_CLAUSE = sql.SQL("")
# An open episode whose window passed quietly is over (closed lazily, by the next match).
_CLOSE_QUIET_EPISODE = sql.SQL(
    "UPDATE alerts SET episode_open = FALSE"
    " WHERE group_key = %(key)s AND episode_open AND last_matched_at + %(window)s < %(at)s")


class AlertRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def insert(self, event_id: UUID | str | None, camera_id: UUID | str, alert_type: str, severity: str,
                     message: str, *, alert_rule_id: UUID | str | None = None, person_id: UUID | str | None = None,
                     suspicious_activity_id: UUID | str | None = None, trigger_rule_id: UUID | str | None = None,
                     trigger_clause: str | None = None, track_id: str | None = None,
                     trigger_evidence: dict[str, Any] | None = None) -> Alert:
        """An alert of a detection event (event_id) or a suspicious activity (suspicious_activity_id);
        the trigger fields record which rule and clause fired on which track."""
        return await self._insert(self._values(
            event_id, camera_id, alert_type, severity, message, alert_rule_id=alert_rule_id, person_id=person_id,
            suspicious_activity_id=suspicious_activity_id, trigger_rule_id=trigger_rule_id,
            trigger_clause=trigger_clause, track_id=track_id, trigger_evidence=trigger_evidence))

    @staticmethod
    def _values(event_id: UUID | str | None, camera_id: UUID | str, alert_type: str, severity: str, message: str,
                *, alert_rule_id: UUID | str | None = None, person_id: UUID | str | None = None,
                suspicious_activity_id: UUID | str | None = None, trigger_rule_id: UUID | str | None = None,
                trigger_clause: str | None = None, track_id: str | None = None,
                trigger_evidence: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"event_id": optional_uuid("event_id", event_id), "camera_id": as_uuid("camera_id", camera_id),
                "alert_type": alert_type, "severity": severity, "message": message,
                "alert_rule_id": optional_uuid("alert_rule_id", alert_rule_id),
                "person_id": optional_uuid("person_id", person_id),
                "suspicious_activity_id": optional_uuid("suspicious_activity_id", suspicious_activity_id),
                "trigger_rule_id": optional_uuid("trigger_rule_id", trigger_rule_id),
                "trigger_clause": trigger_clause, "track_id": track_id,
                "trigger_evidence": None if trigger_evidence is None else Jsonb(trigger_evidence),
                  "track_ids": [track_id] if track_id else []}

    async def _insert(self, values: dict[str, Any], on_conflict: sql.Composable = _NO_CONFLICT_CLAUSE) -> Alert | None:
        """The inserted alert; None when `on_conflict` skipped it."""
        query = sql.SQL("INSERT INTO alerts ({}) VALUES ({}){} RETURNING {}").format(
            sql.SQL(", ").join(map(sql.Identifier, values)), sql.SQL(", ").join(sql.Placeholder() * len(values)),
            on_conflict, _ALERT_COLUMNS)
        async with guarded(self.conn, "alert", values):
            return await fetch_one(self.conn, Alert, query, list(values.values()))

    async def insert_device_alert(self, camera_id: UUID, device_type: str, device_id: UUID, message: str,
                                  evidence: dict[str, Any]) -> Alert:
        """A device went offline (alert_type camera_offline or dvr_offline, high severity), filed on a
        camera since alerts belong to one (a DVR's on its first camera)."""
        values = {"camera_id": camera_id, "alert_type": f"{device_type}_offline", "severity": "high",
                  "message": message, "device_type": device_type, "device_id": device_id,
                  "trigger_evidence": Jsonb(evidence)}
        return await insert_row(self.conn, "alerts", values, Alert, _ALERT_COLUMNS, "alert")

    async def open_device_alert_ids(self, device_id: UUID, alert_type: str) -> list[UUID]:
        """The device's alerts of this type that are still open (pending, sent or acknowledged)."""
        cur = await self.conn.execute(
            "SELECT id FROM alerts WHERE device_id = %s AND alert_type = %s"
            " AND status IN ('pending', 'sent', 'acknowledged')", (device_id, alert_type))
        return [row["id"] for row in await cur.fetchall()]

    async def group(self, group_key: str, window: timedelta, at: datetime, event_id: UUID | str | None,
                    camera_id: UUID | str, alert_type: str, severity: str, message: str, *,
                    track_id: str | None = None, trigger_evidence: dict[str, Any],
                    **trigger: Any) -> GroupedMatch:
        """A match (capture time `at`) of the episode `group_key`: joins its open alert when the
        episode's last match is at most `window` before `at` (recorded in alert_matches), else opens
        a new alert for it (the `insert` arguments, as `trigger`). Holds under concurrency: see the
        module docstring."""
        at = aware("at", at)
        key = {"key": group_key, "window": window, "at": at}
        for _ in range(3):  # join; else open; a concurrent opener won: join its alert
            async with guarded(self.conn, "alert", {"severity": severity}):
                cur = await self.conn.execute(_JOIN_EPISODE, {**key, "track": track_id, "severity": severity})
                joined = await cur.fetchone()
                if joined is not None:
                    await self.conn.execute(
                        "INSERT INTO alert_matches (alert_id, matched_at, track_id, event_id, suspicious_activity_id,"
                        " severity, evidence) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        (joined["id"], at, track_id, optional_uuid("event_id", event_id),
                         optional_uuid("suspicious_activity_id", trigger.get("suspicious_activity_id")),
                         severity, Jsonb(trigger_evidence)))
                    return GroupedMatch(await self.get(joined["id"]), True, joined["previous_severity"])
                await self.conn.execute(_CLOSE_QUIET_EPISODE, key)
            opened = await self._insert(
                self._values(event_id, camera_id, alert_type, severity, message, track_id=track_id,
                             trigger_evidence=trigger_evidence, **trigger)
                | {"group_key": group_key, "episode_open": True, "last_matched_at": at,
                   "track_ids": [track_id] if track_id else []},
                on_conflict=sql.SQL(" ON CONFLICT (group_key) WHERE episode_open DO NOTHING"))
            if opened is not None:
                return GroupedMatch(opened, False)
        raise RuntimeError(f"episode {group_key} neither joined nor opened")  # only under constant churn

    async def matches(self, alert_id: UUID | str) -> list[AlertMatch]:
        """The matches that joined the alert after its first, oldest first."""
        query = sql.SQL("SELECT {} FROM alert_matches WHERE alert_id = %s ORDER BY id").format(_MATCH_COLUMNS)
        return await fetch_all(self.conn, AlertMatch, query, (as_uuid("alert_id", alert_id),))

    async def get(self, alert_id: UUID | str) -> Alert:
        alert_id = as_uuid("alert_id", alert_id)
        alert = await fetch_one(self.conn, Alert, sql.SQL("SELECT {} FROM alerts WHERE id = %s").format(_ALERT_COLUMNS),
                                (alert_id,))
        if alert is None:
            raise NotFound("alert", alert_id)
        return alert

    async def list(self, *, statuses: Iterable[str] | None = None, severities: Iterable[str] | None = None,
                   camera_ids: Iterable[UUID | str] | None = None, site_ids: Iterable[UUID | str] | None = None,
                   rule_ids: Iterable[UUID | str] | None = None, person_ids: Iterable[UUID | str] | None = None,
                   since: datetime | None = None, until: datetime | None = None, page_size: int = 0,
                   page_token: str | None = None) -> Page[Alert]:
        """Newest first; `since` is inclusive, `until` exclusive (on created_at). rule_ids match the
        trigger's rule too, so alerts of a deleted rule are still found by its id."""
        statuses = None if statuses is None else list(statuses)
        severities = None if severities is None else list(severities)
        filters = Filters().any("status", statuses, cast="alert_status_enum")
        filters.any("severity", severities, cast="severity_enum")
        id_filters = {
            "camera_ids": sql.SQL("camera_id = ANY(%s)"),
            "site_ids": sql.SQL("camera_id IN (SELECT c.id FROM cameras c JOIN dvrs d ON d.id = c.dvr_id"
                                " WHERE d.site_id = ANY(%s))"),
            "rule_ids": sql.SQL("COALESCE(alert_rule_id, trigger_rule_id) = ANY(%s)"),
            "person_ids": sql.SQL("person_id = ANY(%s)"),
        }
        for field, values in (("camera_ids", camera_ids), ("site_ids", site_ids), ("rule_ids", rule_ids),
                              ("person_ids", person_ids)):
            if values is not None:
                filters.raw(id_filters[field], uuid_list(field, values))
        filters.range("created_at", aware("since", since), aware("until", until))
        return await fetch_page(self.conn, Alert, select=_ALERT_COLUMNS, table="alerts", filters=filters,
                                keyset=BY_CREATED_AT, page_size=page_size, page_token=page_token, resource="alert",
                                values={"statuses": statuses, "severities": severities})

    async def history(self, alert_id: UUID | str) -> list[AlertStatusChange]:
        """The alert's status changes, oldest first."""
        query = sql.SQL("SELECT {} FROM alert_status_changes WHERE alert_id = %s ORDER BY id").format(_CHANGE_COLUMNS)
        return await fetch_all(self.conn, AlertStatusChange, query, (as_uuid("alert_id", alert_id),))

    async def mark_sent(self, alert_id: UUID | str) -> Alert:
        """Notifications went out (recorded as a change by the system)."""
        return (await self.transition(alert_id, "sent", None))[0]

    async def acknowledge(self, alert_id: UUID | str, by: UUID | str | None, *, note: str | None = None,
                          api_key_id: UUID | str | None = None) -> Alert:
        return (await self.transition(alert_id, "acknowledged", by, note=note, api_key_id=api_key_id))[0]

    async def resolve(self, alert_id: UUID | str, by: UUID | str | None, *, note: str | None = None,
                      api_key_id: UUID | str | None = None) -> Alert:
        return (await self.transition(alert_id, "resolved", by, note=note, api_key_id=api_key_id))[0]

    async def ignore(self, alert_id: UUID | str, by: UUID | str | None, *, note: str | None = None,
                     api_key_id: UUID | str | None = None) -> Alert:
        """Close without action; who and when go to resolved_by / resolved_at."""
        return (await self.transition(alert_id, "ignored", by, note=note, api_key_id=api_key_id))[0]

    async def transition(self, alert_id: UUID | str, target: str, actor: UUID | str | None, *,
                         note: str | None = None,
                         api_key_id: UUID | str | None = None) -> tuple[Alert, AlertStatusChange]:
        """Move the alert to `target` (sent, acknowledged, resolved, ignored): the alert after the
        change and the change recorded (for the feed); FailedPrecondition when it cannot move."""
        alert_id = as_uuid("alert_id", alert_id)
        sources, records = _TRANSITIONS[target]
        # the sub-select locks the row and re-reads its status after a concurrent change, and hands
        # the status it replaced to the history
        query = sql.SQL("UPDATE alerts SET status = %(target)s::alert_status_enum, {records}"
                        " FROM (SELECT id, status FROM alerts WHERE id = %(id)s"
                        "       AND status = ANY(%(sources)s::alert_status_enum[]) FOR UPDATE) AS previous"
                        " WHERE alerts.id = previous.id RETURNING previous.status::text AS from_status"
                        ).format(records=records)
        params = {"target": target, "id": alert_id, "sources": list(sources), "actor": optional_uuid("by", actor),
                  "api_key": optional_uuid("api_key_id", api_key_id), "note": note}
        async with guarded(self.conn, "alert", {"by": params["actor"], "note": note}):
            cur = await self.conn.execute(query, params)
            moved = await cur.fetchone()
            if moved is not None:
                change = await fetch_one(self.conn, AlertStatusChange, sql.SQL(
                    "INSERT INTO alert_status_changes (alert_id, from_status, to_status, actor_id, api_key_id, note)"
                    " VALUES (%(id)s, %(from)s, %(target)s, %(actor)s, %(api_key)s, %(note)s) RETURNING {}"
                ).format(_CHANGE_COLUMNS), {**params, "from": moved["from_status"]})
        current = await self.get(alert_id)  # NotFound when it does not exist (or is not visible)
        if moved is None:
            raise FailedPrecondition(f"alert {alert_id} is {current.status}; it cannot become {target}")
        return current, change

    # ----------------------------------------------------------------------- cooldowns

    async def claim_cooldown(self, rule_id: UUID | str, camera_id: UUID | str, subject: str, at: datetime) -> bool:
        """Whether the rule may alert about `subject` on the camera at capture time `at`; if so `at`
        becomes its last alert there. Holds under concurrency: see the module docstring."""
        params = {"rule": as_uuid("rule_id", rule_id), "camera": as_uuid("camera_id", camera_id),
                  "subject": subject, "at": aware("at", at)}
        async with guarded(self.conn, "alert_cooldown", params):
            cur = await self.conn.execute(_CLAIM_COOLDOWN, params)
            return await cur.fetchone() is not None

    async def prune_cooldowns(self, now: datetime) -> int:
        """Forget last alerts whose cooldown has ended by `now` (capture time); returns how many.
        Such rows only take space: the next claim for them would win anyway."""
        async with guarded(self.conn, "alert_cooldown"):
            cur = await self.conn.execute(
                "DELETE FROM alert_cooldowns c USING alert_rules r"
                " WHERE r.id = c.rule_id AND c.last_alert_at + r.cooldown < %s", (aware("now", now),))
        return cur.rowcount
