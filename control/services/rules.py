"""RuleService: alert rules (when to raise an alert) and suspicious-activity analytics configurations.

Updates copy the masked fields onto the stored resource and check the result as a whole, like a
create, so cross-field rules (a zone of the rule's camera, event_type or activity_type) hold after
any update.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
from google.protobuf.field_mask_pb2 import FieldMask

from vigil.api.v1 import common_pb2, rule_pb2_grpc
from vigil.api.v1 import rule_pb2 as pb
from vigil.control.analytics import REGISTRY
from vigil.control.convert import EnumMap
from vigil.control.field_mask import apply_mask
from vigil.control.request_checks import api_token, id_list, repository_token, required_id
from vigil.control.rpc import rpc
from vigil.control.rules import analytics_api, rule_api
from vigil.control.rules.analytics_api import analytic_message, config_message, config_values
from vigil.control.rules.rule_api import rule_message, rule_values
from vigil.control.transactions import CallerDatabase
from vigil.errors import InvalidArgument, NotFound
from vigil.storage.repositories.alerts import AlertRuleRepository, AnalyticsConfigRepository
from vigil.storage.repositories.persons import PersonRepository
from vigil.storage.repositories.sites import CameraRepository, Zone, ZoneRepository
from vigil.storage.repositories.watchlists import WatchlistRepository

SEVERITY_FILTER = EnumMap(common_pb2.Severity, "SEVERITY_", "severities")
ACTIVITY_FILTER = EnumMap(common_pb2.ActivityType, "ACTIVITY_TYPE_", "activity_types")


def any_of(enum: EnumMap, numbers) -> list[str] | None:
    """An enum filter's labels; None (no filter) when empty or when it lists UNSPECIFIED ("any")."""
    if not numbers or 0 in numbers:
        return None
    return enum.labels(numbers)


def jsonable(value: Any) -> Any:
    """A value as the audit log can store it."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


async def _existing(lookup, path: str, value: UUID):
    """The referenced row, or NOT_FOUND naming the request field that refers to it."""
    try:
        return await lookup(value)
    except NotFound as exc:
        raise NotFound(f"{path}: {exc.resource}", exc.id) from None


async def _zone_of_camera(conn: psycopg.AsyncConnection, path: str, zone_id: UUID, camera_id: UUID | None,
                          camera_path: str) -> Zone:
    zone = await _existing(ZoneRepository(conn).get, path, zone_id)
    if camera_id is not None and zone.camera_id != camera_id:
        raise InvalidArgument(path, f"zone {zone_id} belongs to camera {zone.camera_id}, not to {camera_path}")
    return zone


async def check_rule_references(conn: psycopg.AsyncConnection, values: dict[str, Any]) -> None:
    path = rule_api.PATH
    if values["camera_id"] is not None:
        await _existing(CameraRepository(conn).get, f"{path}.camera_id", values["camera_id"])
    if values["person_id"] is not None:
        await _existing(PersonRepository(conn).get, f"{path}.person_id", values["person_id"])
    if values["watchlist_id"] is not None:
        await _existing(WatchlistRepository(conn).get, f"{path}.watchlist_id", values["watchlist_id"])
    if values["zone_id"] is not None:
        await _zone_of_camera(conn, f"{path}.zone_id", values["zone_id"], values["camera_id"], f"{path}.camera_id")
    missing = await AlertRuleRepository(conn).missing_channels(values["notification_channel_ids"])
    if missing:
        index = values["notification_channel_ids"].index(missing[0])
        raise NotFound(f"{path}.notification_channel_ids[{index}]: notification_channel", missing[0])


async def check_config_references(conn: psycopg.AsyncConnection, values: dict[str, Any]) -> None:
    path = analytics_api.PATH
    await _existing(CameraRepository(conn).get, f"{path}.camera_id", values["camera_id"])
    if values["zone_id"] is not None:
        zone = await _zone_of_camera(conn, f"{path}.zone_id", values["zone_id"], values["camera_id"],
                                     f"{path}.camera_id")
        analytics_api.check_zone_type(values, zone.zone_type)


def changed(stored: object, values: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    return {name: values[name] for name in columns if getattr(stored, name) != values[name]}


class RuleService(rule_pb2_grpc.RuleServiceServicer):
    def __init__(self, db: CallerDatabase):
        self.db = db

    # ----------------------------------------------------------------------- alert rules

    @rpc("alerts", "read")
    async def GetAlertRule(self, request, context):
        rule_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            return pb.GetAlertRuleResponse(alert_rule=rule_message(await AlertRuleRepository(tx.conn).get(rule_id)))

    @rpc("alerts", "read")
    async def ListAlertRules(self, request, context):
        filters = {
            "camera_ids": id_list("camera_ids", request.camera_ids) or None,
            "person_ids": id_list("person_ids", request.person_ids) or None,
            "zone_ids": id_list("zone_ids", request.zone_ids) or None,
            "watchlist_ids": id_list("watchlist_ids", request.watchlist_ids) or None,
            "severities": any_of(SEVERITY_FILTER, request.severities),
            "is_active": request.is_active if request.HasField("is_active") else None,
        }
        token = repository_token(request)
        async with self.db.transaction() as tx:
            page = await AlertRuleRepository(tx.conn).list(**filters, page_size=request.page_size, page_token=token)
            return pb.ListAlertRulesResponse(alert_rules=[rule_message(r) for r in page.items],
                                             next_page_token=api_token(request, page.next_page_token))

    @rpc("alerts", "configure")
    async def CreateAlertRule(self, request, context):
        values = rule_values(request.alert_rule)
        async with self.db.transaction() as tx:
            await check_rule_references(tx.conn, values)
            created = await AlertRuleRepository(tx.conn).create(created_by=tx.caller.user_id, **values)
            await tx.audit("alert_rule.create", "alert_rule", created.id, jsonable(values))
            return pb.CreateAlertRuleResponse(alert_rule=rule_message(created))

    @rpc("alerts", "configure")
    async def UpdateAlertRule(self, request, context):
        rule_id = required_id("alert_rule.id", request.alert_rule.id)
        async with self.db.transaction() as tx:
            repo = AlertRuleRepository(tx.conn)
            stored = await repo.get(rule_id)
            merged = rule_message(stored)
            apply_mask(request.alert_rule, merged, request.update_mask, resource="alert_rule",
                       updatable=rule_api.UPDATABLE)
            values = rule_values(merged)
            await check_rule_references(tx.conn, values)
            changes = changed(stored, values, rule_api.UPDATABLE)
            updated = await repo.update(rule_id, changes)
            await tx.audit("alert_rule.update", "alert_rule", rule_id, jsonable(changes))
            return pb.UpdateAlertRuleResponse(alert_rule=rule_message(updated))

    @rpc("alerts", "configure")
    async def DeleteAlertRule(self, request, context):
        rule_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            await AlertRuleRepository(tx.conn).delete(rule_id)
            await tx.audit("alert_rule.delete", "alert_rule", rule_id)
            return pb.DeleteAlertRuleResponse()

    # ----------------------------------------------------------------------- analytics configurations

    @rpc("alerts", "read")
    async def GetAnalyticsConfig(self, request, context):
        config_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            config = await AnalyticsConfigRepository(tx.conn).get(config_id)
            return pb.GetAnalyticsConfigResponse(analytics_config=config_message(config))

    @rpc("alerts", "read")
    async def ListAnalyticsConfigs(self, request, context):
        filters = {
            "camera_ids": id_list("camera_ids", request.camera_ids) or None,
            "zone_ids": id_list("zone_ids", request.zone_ids) or None,
            "activity_types": any_of(ACTIVITY_FILTER, request.activity_types),
            "is_active": request.is_active if request.HasField("is_active") else None,
        }
        token = repository_token(request)
        async with self.db.transaction() as tx:
            page = await AnalyticsConfigRepository(tx.conn).list(**filters, page_size=request.page_size,
                                                                 page_token=token)
            return pb.ListAnalyticsConfigsResponse(analytics_configs=[config_message(c) for c in page.items],
                                                   next_page_token=api_token(request, page.next_page_token))

    @rpc("alerts", "configure")
    async def CreateAnalyticsConfig(self, request, context):
        values = config_values(request.analytics_config)
        async with self.db.transaction() as tx:
            await check_config_references(tx.conn, values)
            created = await AnalyticsConfigRepository(tx.conn).create(
                values["name"], values["camera_id"], values["activity_type"], tx.caller.user_id,
                zone_id=values["zone_id"], severity=values["severity"], parameters=values["parameters"],
                is_active=values["is_active"], analytic=values["analytic"])
            await tx.audit("analytics_config.create", "analytics_config", created.id, jsonable(values))
            return pb.CreateAnalyticsConfigResponse(analytics_config=config_message(created))

    @rpc("alerts", "configure")
    async def UpdateAnalyticsConfig(self, request, context):
        config_id = required_id("analytics_config.id", request.analytics_config.id)
        # "parameter_values.<name>" names a key of a Struct, which apply_mask cannot copy: applied below
        value_paths = [p for p in request.update_mask.paths if p.startswith(f"{analytics_api.VALUES}.")]
        other_paths = [p for p in request.update_mask.paths if p not in value_paths]
        async with self.db.transaction() as tx:
            repo = AnalyticsConfigRepository(tx.conn)
            stored = await repo.get(config_id)
            merged = config_message(stored)
            paths = value_paths
            if other_paths or not value_paths:
                paths = value_paths + apply_mask(
                    request.analytics_config, merged, FieldMask(paths=other_paths), resource="analytics_config",
                    updatable=analytics_api.UPDATABLE, immutable=analytics_api.IMMUTABLE)
            activity, unit = analytics_api.config_unit(merged)
            if analytics_api.names_parameters(paths) or unit.ref() != stored.analytic:
                parameters = analytics_api.updated_parameters(stored.parameters, request.analytics_config, paths,
                                                              activity, unit)
            else:
                # untouched parameters stay as stored, with what the message cannot show (another
                # spelling, an engine-only key) rather than rewritten from the message
                analytics_api.check_stored_parameters(stored.parameters, activity, unit)
                parameters = stored.parameters
            values = config_values(merged, parameters=parameters)
            await check_config_references(tx.conn, values)
            changes = changed(stored, values, analytics_api.UPDATABLE_COLUMNS)
            updated = await repo.update(config_id, changes)
            await tx.audit("analytics_config.update", "analytics_config", config_id, jsonable(changes))
            return pb.UpdateAnalyticsConfigResponse(analytics_config=config_message(updated))

    @rpc("alerts", "configure")
    async def DeleteAnalyticsConfig(self, request, context):
        config_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            await AnalyticsConfigRepository(tx.conn).delete(config_id)
            await tx.audit("analytics_config.delete", "analytics_config", config_id)
            return pb.DeleteAnalyticsConfigResponse()


    @rpc("alerts", "read")
    async def ListAnalytics(self, request, context):
        activity_types = set(any_of(ACTIVITY_FILTER, request.activity_types) or ())
        return pb.ListAnalyticsResponse(analytics=[
            analytic_message(unit) for unit in REGISTRY
            if not activity_types or activity_types & {t.value for t in unit.activity_types}])


SERVICE = (RuleService, rule_pb2_grpc.add_RuleServiceServicer_to_server, "vigil.v1.RuleService")
