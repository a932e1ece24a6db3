"""Alert rules and alerts with their lifecycle: pending → sent → acknowledged → resolved, or ignored.

A transition is one conditional UPDATE (`... WHERE status = ANY(allowed sources)`), so two
operators acting at once cannot both move the same alert; the loser gets FailedPrecondition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from vigil.storage.repositories.base import (
    BY_CREATED_AT,
    BY_NAME,
    FailedPrecondition,
    NotFound,
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


@dataclass(frozen=True)
class AlertRule:
    id: UUID
    name: str
    camera_id: UUID | None  # None: every camera
    person_id: UUID | None  # None: anybody
    person_role: str | None
    zone_id: UUID | None
    event_type: str | None  # None: every event type
    schedule: dict[str, Any]
    confidence_threshold: float
    severity: str
    is_active: bool
    quiet_hours: dict[str, Any] | None
    created_by: UUID
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Alert:
    id: UUID
    event_id: UUID
    alert_rule_id: UUID | None
    person_id: UUID | None
    camera_id: UUID
    alert_type: str
    severity: str
    message: str
    status: str
    sent_at: datetime | None
    acknowledged_by: UUID | None
    acknowledged_at: datetime | None
    resolved_by: UUID | None  # also who ignored it (the schema has no ignored_by)
    resolved_at: datetime | None
    created_at: datetime


_RULE_COLUMNS = columns_of(AlertRule, confidence_threshold=sql.SQL("confidence_threshold::float8"))
_RULE_UPDATABLE = ("name", "camera_id", "person_id", "person_role", "zone_id", "event_type", "schedule",
                   "confidence_threshold", "severity", "is_active", "quiet_hours")
_RULE_REFERENCES = ("camera_id", "person_id", "zone_id", "created_by")


def _rule_values(values: dict[str, Any]) -> dict[str, Any]:
    """Typed column values for an insert or update of a rule."""
    values = dict(values)
    for name in _RULE_REFERENCES:
        if name in values:
            values[name] = optional_uuid(name, values[name])
    if "confidence_threshold" in values:
        values["confidence_threshold"] = unit_interval("confidence_threshold", values["confidence_threshold"])
    for name in ("schedule", "quiet_hours"):
        if values.get(name) is not None:
            values[name] = Jsonb(values[name])
    return values


class AlertRuleRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def create(self, name: str, created_by: UUID | str, *, camera_id: UUID | str | None = None,
                     person_id: UUID | str | None = None, person_role: str | None = None,
                     zone_id: UUID | str | None = None, event_type: str | None = None,
                     schedule: dict[str, Any] | None = None, confidence_threshold: float = 0.75,
                     severity: str = "medium", is_active: bool = True,
                     quiet_hours: dict[str, Any] | None = None) -> AlertRule:
        """Without a schedule the schema's default applies (every day, all day)."""
        values = {"name": name, "created_by": created_by, "camera_id": camera_id, "person_id": person_id,
                  "person_role": person_role, "zone_id": zone_id, "event_type": event_type,
                  "confidence_threshold": confidence_threshold, "severity": severity, "is_active": is_active,
                  "quiet_hours": quiet_hours}
        if schedule is not None:
            values["schedule"] = schedule
        return await insert_row(self.conn, "alert_rules", _rule_values(values), AlertRule, _RULE_COLUMNS, "alert_rule")

    async def get(self, rule_id: UUID | str) -> AlertRule:
        rule_id = as_uuid("rule_id", rule_id)
        rule = await fetch_one(self.conn, AlertRule,
                               sql.SQL("SELECT {} FROM alert_rules WHERE id = %s").format(_RULE_COLUMNS), (rule_id,))
        if rule is None:
            raise NotFound("alert_rule", rule_id)
        return rule

    async def list(self, *, is_active: bool | None = None, camera_id: UUID | str | None = None,
                   page_size: int = 0, page_token: str | None = None) -> Page[AlertRule]:
        where, params = [], []
        if is_active is not None:
            where.append(sql.SQL("is_active = %s"))
            params.append(is_active)
        if camera_id is not None:
            where.append(sql.SQL("camera_id = %s"))
            params.append(as_uuid("camera_id", camera_id))
        return await fetch_page(self.conn, AlertRule, select=_RULE_COLUMNS, table="alert_rules", where=where,
                                params=params, keyset=BY_NAME, page_size=page_size, page_token=page_token,
                                resource="alert_rule")

    async def active_for_camera(self, camera_id: UUID | str) -> list[AlertRule]:
        """The active rules the rule engine evaluates for this camera's events (its own and global ones)."""
        query = sql.SQL("SELECT {} FROM alert_rules WHERE is_active AND (camera_id IS NULL OR camera_id = %s)"
                        " ORDER BY name, id").format(_RULE_COLUMNS)
        return await fetch_all(self.conn, AlertRule, query, (as_uuid("camera_id", camera_id),))

    async def update(self, rule_id: UUID | str, changes: dict[str, Any]) -> AlertRule:
        check_updatable("alert_rule", changes, _RULE_UPDATABLE)
        return await update_row(self.conn, "alert_rules", as_uuid("rule_id", rule_id), _rule_values(changes),
                                AlertRule, _RULE_COLUMNS, "alert_rule")

    async def delete(self, rule_id: UUID | str) -> None:
        """Alerts the rule raised stay; their alert_rule_id becomes NULL."""
        await delete_row(self.conn, "alert_rules", as_uuid("rule_id", rule_id), "alert_rule")


# --------------------------------------------------------------------------- alerts

_ALERT_COLUMNS = columns_of(Alert)

# target status: (statuses it may be reached from, columns recording who and when)
_TRANSITIONS: dict[str, tuple[tuple[str, ...], sql.SQL]] = {
    "sent": (("pending",), sql.SQL("sent_at = now()")),
    "acknowledged": (("pending", "sent"), sql.SQL("acknowledged_by = %(actor)s, acknowledged_at = now()")),
    "resolved": (("pending", "sent", "acknowledged"), sql.SQL("resolved_by = %(actor)s, resolved_at = now()")),
    "ignored": (("pending", "sent", "acknowledged"), sql.SQL("resolved_by = %(actor)s, resolved_at = now()")),
}


class AlertRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def insert(self, event_id: UUID | str, camera_id: UUID | str, alert_type: str, severity: str, message: str,
                     *, alert_rule_id: UUID | str | None = None, person_id: UUID | str | None = None) -> Alert:
        values = {"event_id": as_uuid("event_id", event_id), "camera_id": as_uuid("camera_id", camera_id),
                  "alert_type": alert_type, "severity": severity, "message": message,
                  "alert_rule_id": optional_uuid("alert_rule_id", alert_rule_id),
                  "person_id": optional_uuid("person_id", person_id)}
        return await insert_row(self.conn, "alerts", values, Alert, _ALERT_COLUMNS, "alert")

    async def get(self, alert_id: UUID | str) -> Alert:
        alert_id = as_uuid("alert_id", alert_id)
        alert = await fetch_one(self.conn, Alert, sql.SQL("SELECT {} FROM alerts WHERE id = %s").format(_ALERT_COLUMNS),
                                (alert_id,))
        if alert is None:
            raise NotFound("alert", alert_id)
        return alert

    async def list(self, *, statuses: Iterable[str] | None = None, severities: Iterable[str] | None = None,
                   camera_ids: Iterable[UUID | str] | None = None, since: datetime | None = None,
                   until: datetime | None = None, page_size: int = 0, page_token: str | None = None) -> Page[Alert]:
        """Newest first; `since` is inclusive, `until` exclusive (on created_at)."""
        statuses = None if statuses is None else list(statuses)
        severities = None if severities is None else list(severities)
        camera_ids = uuid_list("camera_ids", camera_ids)
        where, params = [], []
        for column, cast, value in (("status", "alert_status_enum", statuses),
                                    ("severity", "severity_enum", severities)):
            if value is not None:
                where.append(sql.SQL("{} = ANY(%s::{}[])").format(sql.Identifier(column), sql.Identifier(cast)))
                params.append(value)
        if camera_ids is not None:
            where.append(sql.SQL("camera_id = ANY(%s)"))
            params.append(camera_ids)
        if aware("since", since) is not None:
            where.append(sql.SQL("created_at >= %s"))
            params.append(since)
        if aware("until", until) is not None:
            where.append(sql.SQL("created_at < %s"))
            params.append(until)
        return await fetch_page(self.conn, Alert, select=_ALERT_COLUMNS, table="alerts", where=where, params=params,
                                keyset=BY_CREATED_AT, page_size=page_size, page_token=page_token, resource="alert",
                                values={"statuses": statuses, "severities": severities})

    async def mark_sent(self, alert_id: UUID | str) -> Alert:
        """Notifications went out."""
        return await self._transition(alert_id, "sent", None)

    async def acknowledge(self, alert_id: UUID | str, by: UUID | str | None) -> Alert:
        return await self._transition(alert_id, "acknowledged", by)

    async def resolve(self, alert_id: UUID | str, by: UUID | str | None) -> Alert:
        return await self._transition(alert_id, "resolved", by)

    async def ignore(self, alert_id: UUID | str, by: UUID | str | None) -> Alert:
        """Close without action; who and when go to resolved_by / resolved_at."""
        return await self._transition(alert_id, "ignored", by)

    async def _transition(self, alert_id: UUID | str, target: str, actor: UUID | str | None) -> Alert:
        alert_id = as_uuid("alert_id", alert_id)
        sources, records = _TRANSITIONS[target]
        query = sql.SQL("UPDATE alerts SET status = %(target)s::alert_status_enum, {records}"
                        " WHERE id = %(id)s AND status = ANY(%(sources)s::alert_status_enum[])"
                        " RETURNING {columns}").format(records=records, columns=_ALERT_COLUMNS)
        params = {"target": target, "id": alert_id, "sources": list(sources), "actor": optional_uuid("by", actor)}
        async with guarded(self.conn, "alert", {"by": params["actor"]}):
            moved = await fetch_one(self.conn, Alert, query, params)
        if moved is not None:
            return moved
        current = await self.get(alert_id)  # NotFound when it does not exist (or is not visible)
        raise FailedPrecondition(f"alert {alert_id} is {current.status}; it cannot become {target}")
