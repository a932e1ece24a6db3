"""RuleService and AlertService through a real gRPC channel: rule and analytics CRUD with
validation naming fields, alerts raised the way the ingest path raises them (evaluate, then
write_alerts in the event's transaction), their lifecycle with who/when/notes, the cooldown and
its behaviour under concurrent writers."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, struct_pb2

from tests.fixtures.control import bearer, database
from tests.storage.builders import make_camera
from vigil.api.v1 import (
    alert_pb2,
    alert_pb2_grpc,
    camera_pb2,
    camera_pb2_grpc,
    common_pb2,
    event_pb2,
    event_pb2_grpc,
    ingest_pb2,
    person_pb2,
    person_pb2_grpc,
    rule_pb2,
    rule_pb2_grpc,
    watchlist_pb2,
    watchlist_pb2_grpc,
)
from vigil.control.alerting import AlertingHook
from vigil.control.analytics import Box, ObjectClass, TrackObservation
from vigil.control.jobs.devices import _transition as device_transition
from vigil.control.rules import Fact, RuleEvaluator, camera_facts, person_facts, write_alerts
from vigil.storage.db import acting_as
from vigil.storage.repositories.alerts import AlertRepository, AlertRuleRepository, AnalyticsConfigRepository
from vigil.storage.repositories.api_keys import ApiKeyRepository
from vigil.storage.repositories.events import EventRepository

TRIANGLE = [common_pb2.Point(x=0.1, y=0.1), common_pb2.Point(x=0.9, y=0.1), common_pb2.Point(x=0.5, y=0.8)]
BOX = {"x": 0.1, "y": 0.1, "width": 0.2, "height": 0.4}


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:8]}"


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=paths)


def seconds(n: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(n), nanos=round((n - int(n)) * 1e9))


def at(hours: int, minutes: int = 0) -> rule_pb2.LocalTime:
    return rule_pb2.LocalTime(hours=hours, minutes=minutes)


async def refused(call, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value.details()


@pytest.fixture
def app(control):
    return control[1]


@pytest.fixture
def admin(as_role):
    return as_role("admin")


@pytest.fixture
def rules(channel):
    return rule_pb2_grpc.RuleServiceStub(channel)


@pytest.fixture
def alerts(channel):
    return alert_pb2_grpc.AlertServiceStub(channel)


class Scene:
    """A site in Singapore with a camera and its gate zone, a second camera, a blacklisted courier on
    a watchlist and a known employee."""

    site: camera_pb2.Site
    camera: camera_pb2.Camera
    other_camera: camera_pb2.Camera
    gate: camera_pb2.Zone
    courier: person_pb2.Person
    employee: person_pb2.Person
    watchlist: watchlist_pb2.Watchlist


@pytest.fixture
async def scene(channel, admin) -> Scene:
    cameras = camera_pb2_grpc.CameraServiceStub(channel)
    persons = person_pb2_grpc.PersonServiceStub(channel)
    watchlists = watchlist_pb2_grpc.WatchlistServiceStub(channel)
    s = Scene()
    s.site = (await cameras.CreateSite(camera_pb2.CreateSiteRequest(site=camera_pb2.Site(
        name=unique("site"), timezone="Asia/Singapore")), metadata=admin)).site
    dvr = (await cameras.CreateDvr(camera_pb2.CreateDvrRequest(dvr=camera_pb2.Dvr(
        site_id=s.site.id, name="nvr", ip_address="10.0.0.5")), metadata=admin)).dvr
    s.camera, s.other_camera = [(await cameras.CreateCamera(camera_pb2.CreateCameraRequest(camera=camera_pb2.Camera(
        dvr_id=dvr.id, channel_number=n, name=name)), metadata=admin)).camera for n, name in ((1, "Loading bay"),
                                                                                             (2, "Lobby"))]
    s.gate = (await cameras.CreateZone(camera_pb2.CreateZoneRequest(zone=camera_pb2.Zone(
        camera_id=s.camera.id, name="Gate", zone_type=camera_pb2.ZONE_TYPE_RESTRICTED, polygon=TRIANGLE)),
        metadata=admin)).zone
    s.courier = (await persons.CreatePerson(person_pb2.CreatePersonRequest(person=person_pb2.Person(
        name="Eve Courier", role="Courier", status=common_pb2.PERSON_STATUS_BLACKLISTED)), metadata=admin)).person
    s.employee = (await persons.CreatePerson(person_pb2.CreatePersonRequest(person=person_pb2.Person(
        name="Bob Staff", role="Guard", status=common_pb2.PERSON_STATUS_KNOWN)), metadata=admin)).person
    s.watchlist = (await watchlists.CreateWatchlist(watchlist_pb2.CreateWatchlistRequest(
        watchlist=watchlist_pb2.Watchlist(name=unique("banned"), watch_type=watchlist_pb2.WATCHLIST_TYPE_BLACKLIST)),
        metadata=admin)).watchlist
    await watchlists.AddWatchlistEntry(watchlist_pb2.AddWatchlistEntryRequest(entry=watchlist_pb2.WatchlistEntry(
        watchlist_id=s.watchlist.id, person_id=s.courier.id)), metadata=admin)
    return s


async def create_rule(rules, metadata, **fields) -> rule_pb2.AlertRule:
    rule = rule_pb2.AlertRule(name=fields.pop("name", unique("rule")), **fields)
    return (await rules.CreateAlertRule(rule_pb2.CreateAlertRuleRequest(alert_rule=rule), metadata=metadata)).alert_rule


async def observe(app, scene: Scene, *, when: datetime, person: person_pb2.Person | None = None,
                  camera: camera_pb2.Camera | None = None, track_id: str = "track-1", rule_ids=None,
                  similarity: float = 0.91, activity_type: str | None = None):
    """What the ingest path does for one observation: store the event (or take an activity), build
    the fact, evaluate the camera's rules (only `rule_ids`, so tests do not see each other's) and
    write the alerts, all in one transaction. Returns the alerts created."""
    camera_id = uuid.UUID((camera or scene.camera).id)
    async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
        context = await camera_facts(conn, camera_id)
        persons = await person_facts(conn, [uuid.UUID(person.id)]) if person else {}
        source = {"suspicious_activity_id": uuid.uuid4(), "activity_type": activity_type, "activity_severity": "low"}
        if activity_type is None:
            stored = await EventRepository(conn).insert(
                camera_id, "person_recognized" if person else "human_detected", when, 0.97, BOX,
                person_id=person.id if person else None, frame_number=1200, metadata={"track_id": track_id})
            source = {"event_id": stored.id, "event_type": stored.event_type}
        fact = Fact(camera_id=camera_id, observed_at=when, confidence=0.97, track_id=track_id,
                    similarity=similarity if person else None, frame_number=1200,
                    # the track is in the gate zone, which only the scene's first camera has
                    zone_ids=frozenset({uuid.UUID(scene.gate.id)}) if camera is None else frozenset(),
                    persons=tuple(persons.values()), site_timezone=context.site_timezone,
                    camera_name=context.name, zone_names=context.zone_names, **source)
        candidates = [r for r in await AlertRuleRepository(conn).active_for_camera(camera_id)
                      if rule_ids is None or str(r.id) in rule_ids]
        return await write_alerts(conn, RuleEvaluator().evaluate(candidates, fact))


# --------------------------------------------------------------------------- alert rules


async def test_alert_rule_round_trip_defaults_and_partial_updates(rules, admin, as_role, scene, app):
    defaults = await create_rule(rules, admin)
    assert (defaults.confidence_threshold, defaults.cooldown.seconds, defaults.is_active) == (0.75, 60, True)
    assert defaults.severity == common_pb2.SEVERITY_UNSPECIFIED  # from the person's status
    assert not defaults.HasField("schedule") and not defaults.HasField("quiet_hours")

    full = await create_rule(
        rules, admin, camera_id=scene.camera.id, zone_id=scene.gate.id, watchlist_id=scene.watchlist.id,
        person_role="Courier", event_type=common_pb2.EVENT_TYPE_PERSON_RECOGNIZED, confidence_threshold=0.8,
        schedule=rule_pb2.Schedule(days=[5, 1], start=at(22), end=at(6), timezone="Europe/Paris"),
        quiet_hours=rule_pb2.QuietHours(enabled=True, start=at(2), end=at(3, 30)),
        severity=common_pb2.SEVERITY_HIGH, cooldown=seconds(30.5), is_active=False)
    assert full.confidence_threshold == pytest.approx(0.8) and list(full.schedule.days) == [1, 5]
    assert (full.schedule.end.hours, full.quiet_hours.end.minutes, full.cooldown.nanos) == (6, 30, 500_000_000)
    got = (await rules.GetAlertRule(rule_pb2.GetAlertRuleRequest(id=full.id), metadata=as_role("viewer"))).alert_rule
    assert got == full

    listed = await rules.ListAlertRules(rule_pb2.ListAlertRulesRequest(
        watchlist_ids=[scene.watchlist.id], severities=[common_pb2.SEVERITY_HIGH], is_active=False), metadata=admin)
    assert [r.id for r in listed.alert_rules] == [full.id]

    partial = rule_pb2.AlertRule(id=full.id, schedule=rule_pb2.Schedule(days=[0]),
                                 quiet_hours=rule_pb2.QuietHours(enabled=False))
    updated = (await rules.UpdateAlertRule(rule_pb2.UpdateAlertRuleRequest(
        alert_rule=partial, update_mask=mask("schedule.days", "quiet_hours.enabled", "confidence_threshold",
                                             "is_active")), metadata=admin)).alert_rule
    assert list(updated.schedule.days) == [0] and updated.schedule.timezone == "Europe/Paris"
    assert not updated.quiet_hours.enabled and updated.quiet_hours.start.hours == 2
    assert updated.confidence_threshold == 0.75 and updated.is_active  # unset: the defaults again
    assert updated.name == full.name and updated.update_time.ToDatetime() >= full.update_time.ToDatetime()

    replaced = (await rules.UpdateAlertRule(rule_pb2.UpdateAlertRuleRequest(
        alert_rule=rule_pb2.AlertRule(id=full.id, name="renamed", camera_id=scene.other_camera.id),
        update_mask=mask("*")), metadata=admin)).alert_rule
    assert (replaced.name, replaced.camera_id, replaced.zone_id, replaced.watchlist_id) == (
        "renamed", scene.other_camera.id, "", "")
    assert not replaced.HasField("schedule") and replaced.cooldown.seconds == 60

    audit = await fetch(app, "SELECT action FROM audit_logs WHERE resource_id = %s AND action LIKE 'alert_rule.%%'"
                             " ORDER BY timestamp", (full.id,))
    assert [row["action"] for row in audit] == ["alert_rule.create", "alert_rule.update", "alert_rule.update"]
    await rules.DeleteAlertRule(rule_pb2.DeleteAlertRuleRequest(id=full.id), metadata=admin)
    await refused(rules.GetAlertRule(rule_pb2.GetAlertRuleRequest(id=full.id), metadata=admin),
                  grpc.StatusCode.NOT_FOUND)


async def fetch(app, query: str, params=()) -> list[dict]:
    """Rows read as the schema owner, past row-level security."""
    async with app.pool.connection() as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall()


INVALID_RULES = [
    ({"name": " "}, "alert_rule.name"),
    ({"camera_id": "front-door"}, "alert_rule.camera_id"),
    ({"person_role": "x" * 101}, "alert_rule.person_role"),
    ({"confidence_threshold": 1.5}, "alert_rule.confidence_threshold"),
    ({"confidence_threshold": math.nan}, "alert_rule.confidence_threshold"),
    ({"event_type": 42}, "alert_rule.event_type"),
    ({"severity": 9}, "alert_rule.severity"),
    ({"event_type": common_pb2.EVENT_TYPE_HUMAN_DETECTED, "activity_type": common_pb2.ACTIVITY_TYPE_LOITERING},
     "alert_rule.event_type"),
    ({"schedule": rule_pb2.Schedule(days=[1, 7], start=at(8), end=at(9))}, "alert_rule.schedule.days[1]"),
    ({"schedule": rule_pb2.Schedule(days=[1, 1], start=at(8), end=at(9))}, "alert_rule.schedule.days[1]"),
    ({"schedule": rule_pb2.Schedule(end=at(9))}, "alert_rule.schedule.start"),
    ({"schedule": rule_pb2.Schedule(start=at(24), end=at(9))}, "alert_rule.schedule.start.hours"),
    ({"schedule": rule_pb2.Schedule(start=at(8), end=at(24, 30))}, "alert_rule.schedule.end.minutes"),
    ({"schedule": rule_pb2.Schedule(start=at(8), end=at(9, 60))}, "alert_rule.schedule.end.minutes"),
    ({"schedule": rule_pb2.Schedule(start=at(8), end=at(9), timezone="Mars/Olympus")}, "alert_rule.schedule.timezone"),
    ({"quiet_hours": rule_pb2.QuietHours(enabled=True, start=at(12))}, "alert_rule.quiet_hours.end"),
    ({"cooldown": seconds(24 * 3600 + 1)}, "alert_rule.cooldown"),
    ({"cooldown": duration_pb2.Duration(seconds=-1)}, "alert_rule.cooldown"),
    ({"notification_channel_ids": ["not-a-channel"]}, "alert_rule.notification_channel_ids[0]"),
    ({"notification_channel_ids": [str(uuid.uuid4()) for _ in range(21)]}, "alert_rule.notification_channel_ids"),
    ({"object_class": 9}, "alert_rule.object_class"),
    ({"object_label": "truck"}, "alert_rule.object_label"),  # labels name vehicles: needs object_class VEHICLE
    ({"object_class": ingest_pb2.OBJECT_CLASS_PERSON, "object_label": "person"}, "alert_rule.object_label"),
    ({"object_class": ingest_pb2.OBJECT_CLASS_VEHICLE, "object_label": "boat" * 50}, "alert_rule.object_label"),
]


@pytest.mark.parametrize(("fields", "field"), INVALID_RULES, ids=[f for _, f in INVALID_RULES])
async def test_invalid_rules_are_refused_naming_the_field_and_write_nothing(rules, admin, app, fields, field):
    name = unique("refused")
    details = await refused(rules.CreateAlertRule(rule_pb2.CreateAlertRuleRequest(
        alert_rule=rule_pb2.AlertRule(name=fields.pop("name", name), **fields)), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith(f"{field}:"), details
    assert await fetch(app, "SELECT id FROM alert_rules WHERE name = %s", (name,)) == []


async def test_a_rules_object_condition_round_trips_and_updates_by_mask(rules, admin):
    created = (await rules.CreateAlertRule(rule_pb2.CreateAlertRuleRequest(alert_rule=rule_pb2.AlertRule(
        name=unique("trucks"), object_class=ingest_pb2.OBJECT_CLASS_VEHICLE, object_label="truck")),
        metadata=admin)).alert_rule
    assert (created.object_class, created.object_label) == (ingest_pb2.OBJECT_CLASS_VEHICLE, "truck")
    any_vehicle = (await rules.UpdateAlertRule(rule_pb2.UpdateAlertRuleRequest(
        alert_rule=rule_pb2.AlertRule(id=created.id), update_mask=mask("object_label")), metadata=admin)).alert_rule
    assert (any_vehicle.object_class, any_vehicle.object_label) == (ingest_pb2.OBJECT_CLASS_VEHICLE, "")
    details = await refused(rules.UpdateAlertRule(rule_pb2.UpdateAlertRuleRequest(
        alert_rule=rule_pb2.AlertRule(id=created.id, object_label="bus"),
        update_mask=mask("object_class", "object_label")), metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("alert_rule.object_label: needs object_class OBJECT_CLASS_VEHICLE"), details
    boat = await refused(rules.CreateAlertRule(rule_pb2.CreateAlertRuleRequest(alert_rule=rule_pb2.AlertRule(
        name=unique("boats"), object_class=ingest_pb2.OBJECT_CLASS_VEHICLE, object_label="boat" * 50)),
        metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert "must be one of bicycle, bus, car, motorcycle, truck, got 'boatboat" in boat and len(boat) < 200, boat


async def test_rule_references_must_exist_and_fit_together(rules, admin, as_role, scene, app, channel):
    for fields, field in (({"camera_id": str(uuid.uuid4())}, "alert_rule.camera_id"),
                          ({"person_id": str(uuid.uuid4())}, "alert_rule.person_id"),
                          ({"watchlist_id": str(uuid.uuid4())}, "alert_rule.watchlist_id"),
                          ({"zone_id": str(uuid.uuid4())}, "alert_rule.zone_id"),
                          ({"notification_channel_ids": [str(uuid.uuid4())]},
                           "alert_rule.notification_channel_ids[0]")):
        details = await refused(rules.CreateAlertRule(rule_pb2.CreateAlertRuleRequest(
            alert_rule=rule_pb2.AlertRule(name="dangling", **fields)), metadata=admin), grpc.StatusCode.NOT_FOUND)
        assert details.startswith(f"{field}:"), details
    details = await refused(rules.CreateAlertRule(rule_pb2.CreateAlertRuleRequest(alert_rule=rule_pb2.AlertRule(
        name="elsewhere", camera_id=scene.other_camera.id, zone_id=scene.gate.id)), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("alert_rule.zone_id:") and scene.camera.id in details

    rule = await create_rule(rules, admin, zone_id=scene.gate.id)
    for paths, why in ((["created_by"], "not an updatable"), (["bogus"], "not an updatable"), ([], "name the"),
                       (["id"], "cannot be changed"), (["schedule.weekday"], "names no field"),
                       (["name.first"], "no fields of its own")):
        details = await refused(rules.UpdateAlertRule(rule_pb2.UpdateAlertRuleRequest(
            alert_rule=rule_pb2.AlertRule(id=rule.id, name="x"), update_mask=mask(*paths)), metadata=admin),
            grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith("update_mask:") and why in details, details
    # an update is checked as a whole: moving the rule to another camera leaves its zone behind
    details = await refused(rules.UpdateAlertRule(rule_pb2.UpdateAlertRuleRequest(
        alert_rule=rule_pb2.AlertRule(id=rule.id, camera_id=scene.other_camera.id), update_mask=mask("camera_id")),
        metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("alert_rule.zone_id:")
    assert (await fetch(app, "SELECT camera_id FROM alert_rules WHERE id = %s", (rule.id,)))[0]["camera_id"] is None

    # a watchlist a rule names cannot be deleted from under it (that would widen or drop the rule)
    await create_rule(rules, admin, watchlist_id=scene.watchlist.id)
    watchlists = watchlist_pb2_grpc.WatchlistServiceStub(channel)
    await refused(watchlists.DeleteWatchlist(watchlist_pb2.DeleteWatchlistRequest(id=scene.watchlist.id),
                                             metadata=as_role("super_admin")), grpc.StatusCode.FAILED_PRECONDITION)


async def test_rule_writes_need_configure_and_reads_need_read(rules, as_role):
    details = await refused(rules.CreateAlertRule(rule_pb2.CreateAlertRuleRequest(
        alert_rule=rule_pb2.AlertRule(name="nope")), metadata=as_role("operator")), grpc.StatusCode.PERMISSION_DENIED)
    assert "configure alerts" in details
    await rules.ListAlertRules(rule_pb2.ListAlertRulesRequest(), metadata=as_role("viewer"))


# --------------------------------------------------------------------------- analytics configurations


async def test_analytics_config_round_trip_and_validation(rules, admin, scene, app):
    created = (await rules.CreateAnalyticsConfig(rule_pb2.CreateAnalyticsConfigRequest(
        analytics_config=rule_pb2.AnalyticsConfig(
            name="gate loitering", camera_id=scene.camera.id, zone_id=scene.gate.id,
            activity_type=common_pb2.ACTIVITY_TYPE_LOITERING,
            dwell=rule_pb2.DwellParameters(min_duration=seconds(90)))), metadata=admin)).analytics_config
    assert (created.severity, created.is_active, created.dwell.min_duration.seconds) == (
        common_pb2.SEVERITY_MEDIUM, True, 90)
    stored = await fetch(app, "SELECT parameters FROM analytics_configs WHERE id = %s", (created.id,))
    assert stored[0]["parameters"] == {"min_duration": 90.0}
    assert (await rules.GetAnalyticsConfig(rule_pb2.GetAnalyticsConfigRequest(id=created.id),
                                           metadata=admin)).analytics_config == created

    hours = rule_pb2.Schedule(days=[1, 2, 3, 4, 5], start=at(8), end=at(18))
    after_hours = (await rules.CreateAnalyticsConfig(rule_pb2.CreateAnalyticsConfigRequest(
        analytics_config=rule_pb2.AnalyticsConfig(
            name="after hours", camera_id=scene.camera.id, activity_type=common_pb2.ACTIVITY_TYPE_AFTER_HOURS,
            severity=common_pb2.SEVERITY_HIGH, after_hours=rule_pb2.AfterHoursParameters(allowed_hours=hours))),
        metadata=admin)).analytics_config
    assert after_hours.after_hours.allowed_hours == hours
    listed = await rules.ListAnalyticsConfigs(rule_pb2.ListAnalyticsConfigsRequest(camera_ids=[scene.camera.id]),
                                              metadata=admin)
    assert [c.name for c in listed.analytics_configs] == ["after hours", "gate loitering"]

    updated = (await rules.UpdateAnalyticsConfig(rule_pb2.UpdateAnalyticsConfigRequest(
        analytics_config=rule_pb2.AnalyticsConfig(id=created.id, dwell=rule_pb2.DwellParameters(
            min_duration=seconds(300)), severity=common_pb2.SEVERITY_LOW),
        update_mask=mask("dwell.min_duration", "severity")), metadata=admin)).analytics_config
    assert (updated.dwell.min_duration.seconds, updated.severity, updated.name) == (
        300, common_pb2.SEVERITY_LOW, "gate loitering")

    def config(**fields):
        base = {"name": "x", "camera_id": scene.camera.id, "activity_type": common_pb2.ACTIVITY_TYPE_CROWDING}
        return rule_pb2.CreateAnalyticsConfigRequest(analytics_config=rule_pb2.AnalyticsConfig(**{**base, **fields}))

    for request, code, field in (
            (config(activity_type=common_pb2.ACTIVITY_TYPE_FALL), grpc.StatusCode.FAILED_PRECONDITION,
             "analytics_config.activity_type"),
            (config(activity_type=common_pb2.ACTIVITY_TYPE_INTRUSION), grpc.StatusCode.INVALID_ARGUMENT,
             "analytics_config.zone_id"),
            (config(speed=rule_pb2.SpeedParameters(min_speed=2)), grpc.StatusCode.INVALID_ARGUMENT,
             "analytics_config.speed"),
            (config(crowd=rule_pb2.CrowdParameters(min_persons=1)), grpc.StatusCode.INVALID_ARGUMENT,
             "analytics_config.crowd.min_persons"),
            (config(crowd=rule_pb2.CrowdParameters(min_duration=seconds(7200))), grpc.StatusCode.INVALID_ARGUMENT,
             "analytics_config.crowd.min_duration"),
            (config(activity_type=common_pb2.ACTIVITY_TYPE_AFTER_HOURS), grpc.StatusCode.INVALID_ARGUMENT,
             "analytics_config.after_hours"),
            (config(activity_type=common_pb2.ACTIVITY_TYPE_UNSPECIFIED), grpc.StatusCode.INVALID_ARGUMENT,
             "analytics_config.activity_type"),
            (config(camera_id=""), grpc.StatusCode.INVALID_ARGUMENT, "analytics_config.camera_id"),
            (config(camera_id=str(uuid.uuid4())), grpc.StatusCode.NOT_FOUND, "analytics_config.camera_id"),
            (config(camera_id=scene.other_camera.id, zone_id=scene.gate.id), grpc.StatusCode.INVALID_ARGUMENT,
             "analytics_config.zone_id")):
        details = await refused(rules.CreateAnalyticsConfig(request, metadata=admin), code)
        assert details.startswith(f"{field}:"), details
    details = await refused(rules.UpdateAnalyticsConfig(rule_pb2.UpdateAnalyticsConfigRequest(
        analytics_config=rule_pb2.AnalyticsConfig(id=created.id, camera_id=scene.other_camera.id),
        update_mask=mask("camera_id")), metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert "cannot be changed" in details
    details = await refused(rules.UpdateAnalyticsConfig(rule_pb2.UpdateAnalyticsConfigRequest(
        analytics_config=rule_pb2.AnalyticsConfig(id=created.id, crowd=rule_pb2.CrowdParameters(min_persons=3)),
        update_mask=mask("crowd")), metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("analytics_config.crowd:") and "LOITERING" in details

    await rules.DeleteAnalyticsConfig(rule_pb2.DeleteAnalyticsConfigRequest(id=created.id), metadata=admin)
    await refused(rules.GetAnalyticsConfig(rule_pb2.GetAnalyticsConfigRequest(id=created.id), metadata=admin),
                  grpc.StatusCode.NOT_FOUND)


async def test_stored_analytics_configs_read_as_the_engine_reads_them_never_internal(rules, admin, scene, app):
    """Configurations written past the API (as tests/ingest/test_scenario.py writes them, in the
    engine's "start"/"end" spelling) or holding values no message field can carry: Get, List and
    partial updates answer, showing what the analytics engine runs on; the rest is left out."""
    stored = {
        "engine spelling": ("after_hours", {"allowed_hours": {"days": [1, 2], "start": "08:00", "end": "18:00",
                                                              "timezone": "UTC"}}),
        "no end": ("after_hours", {"allowed_hours": {"start": "08:00"}}),  # the engine refuses it too
        "crowd odd": ("crowding", {"min_persons": 5.0, "min_duration": "soon", "max_gap": 3}),
        "entries huge": ("repeated_entry", {"min_entries": 1e30, "window": 600}),
    }
    ids = {}
    async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
        for name, (activity, parameters) in stored.items():
            ids[name] = str((await AnalyticsConfigRepository(conn).create(
                name, scene.camera.id, activity, None, zone_id=scene.gate.id, parameters=parameters)).id)

    async def get(name: str) -> rule_pb2.AnalyticsConfig:
        return (await rules.GetAnalyticsConfig(rule_pb2.GetAnalyticsConfigRequest(id=ids[name]),
                                               metadata=admin)).analytics_config

    assert (await get("engine spelling")).after_hours.allowed_hours == rule_pb2.Schedule(
        days=[1, 2], start=at(8), end=at(18), timezone="UTC")
    no_end = await get("no end")
    assert no_end.WhichOneof("parameters") == "after_hours" and not no_end.after_hours.HasField("allowed_hours")
    crowd = (await get("crowd odd")).crowd
    assert crowd.min_persons == 5 and not crowd.HasField("min_duration")
    entries = (await get("entries huge")).repeated_entry
    assert not entries.HasField("min_entries") and entries.window.seconds == 600
    listed = await rules.ListAnalyticsConfigs(rule_pb2.ListAnalyticsConfigsRequest(camera_ids=[scene.camera.id]),
                                              metadata=admin)
    assert sorted(c.name for c in listed.analytics_configs) == sorted(stored)

    # an update that leaves the parameters alone keeps them as stored, spelling and engine-only keys included
    for name in ("engine spelling", "crowd odd"):
        renamed = (await rules.UpdateAnalyticsConfig(rule_pb2.UpdateAnalyticsConfigRequest(
            analytics_config=rule_pb2.AnalyticsConfig(id=ids[name], name=f"{name} 2"), update_mask=mask("name")),
            metadata=admin)).analytics_config
        assert renamed.name == f"{name} 2"
        assert (await fetch(app, "SELECT parameters FROM analytics_configs WHERE id = %s",
                            (ids[name],)))[0]["parameters"] == stored[name][1]
    # one the engine cannot run either must be repaired, naming the field; then it is stored as the API writes
    details = await refused(rules.UpdateAnalyticsConfig(rule_pb2.UpdateAnalyticsConfigRequest(
        analytics_config=rule_pb2.AnalyticsConfig(id=ids["no end"], severity=common_pb2.SEVERITY_LOW),
        update_mask=mask("severity")), metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("analytics_config.after_hours.allowed_hours:"), details
    repaired = (await rules.UpdateAnalyticsConfig(rule_pb2.UpdateAnalyticsConfigRequest(
        analytics_config=rule_pb2.AnalyticsConfig(id=ids["no end"], after_hours=rule_pb2.AfterHoursParameters(
            allowed_hours=rule_pb2.Schedule(start=at(8), end=at(9)))),
        update_mask=mask("after_hours")), metadata=admin)).analytics_config
    assert repaired.after_hours.allowed_hours == rule_pb2.Schedule(start=at(8), end=at(9))
    assert (await fetch(app, "SELECT parameters FROM analytics_configs WHERE id = %s", (ids["no end"],)))[0][
        "parameters"] == {"allowed_hours": {"days": [], "start_time": "08:00", "end_time": "09:00"}}


async def test_every_manifest_parameter_is_settable_and_validated_through_the_api(rules, admin, scene, app):
    """Loitering's max_net_speed and running's window (not in the typed messages) through
    parameter_values, bounded by the manifest; the stored row names its unit and version."""
    def struct(**values) -> struct_pb2.Struct:
        message = struct_pb2.Struct()
        message.update(values)
        return message

    loitering = (await rules.CreateAnalyticsConfig(rule_pb2.CreateAnalyticsConfigRequest(
        analytics_config=rule_pb2.AnalyticsConfig(
            name="slow gate", camera_id=scene.camera.id, zone_id=scene.gate.id,
            activity_type=common_pb2.ACTIVITY_TYPE_LOITERING, dwell=rule_pb2.DwellParameters(min_duration=seconds(30)),
            parameter_values=struct(max_net_speed=0.35))), metadata=admin)).analytics_config
    assert loitering.analytic == "loitering@2" and loitering.dwell.min_duration.seconds == 30
    assert dict(loitering.parameter_values) == {"min_duration": 30.0, "max_net_speed": 0.35}
    stored = await fetch(app, "SELECT analytic, parameters FROM analytics_configs WHERE id = %s", (loitering.id,))
    assert stored[0] == {"analytic": "loitering@2", "parameters": {"min_duration": 30.0, "max_net_speed": 0.35}}

    running = (await rules.CreateAnalyticsConfig(rule_pb2.CreateAnalyticsConfigRequest(
        analytics_config=rule_pb2.AnalyticsConfig(
            name="runners", camera_id=scene.camera.id, activity_type=common_pb2.ACTIVITY_TYPE_RUNNING,
            analytic="running@1", parameter_values=struct(window=2.5, min_speed=1.8))),
        metadata=admin)).analytics_config
    assert dict(running.parameter_values) == {"window": 2.5, "min_speed": 1.8}
    assert math.isclose(running.speed.min_speed, 1.8, rel_tol=1e-6)

    # one key of parameter_values updated, another unset (it falls back to the manifest default)
    updated = (await rules.UpdateAnalyticsConfig(rule_pb2.UpdateAnalyticsConfigRequest(
        analytics_config=rule_pb2.AnalyticsConfig(id=running.id, parameter_values=struct(window=4)),
        update_mask=mask("parameter_values.window", "parameter_values.min_speed")), metadata=admin)).analytics_config
    assert dict(updated.parameter_values) == {"window": 4.0}
    # a typed update keeps the parameters the typed message cannot show
    updated = (await rules.UpdateAnalyticsConfig(rule_pb2.UpdateAnalyticsConfigRequest(
        analytics_config=rule_pb2.AnalyticsConfig(id=loitering.id, dwell=rule_pb2.DwellParameters(
            min_duration=seconds(45))), update_mask=mask("dwell.min_duration")), metadata=admin)).analytics_config
    assert dict(updated.parameter_values) == {"min_duration": 45.0, "max_net_speed": 0.35}

    for config_id, given, field, excerpt in (
            (running.id, struct(window=11), "analytics_config.parameter_values.window", "got 11"),
            (running.id, struct(window=0.1), "analytics_config.parameter_values.window", "got 0.1"),
            (loitering.id, struct(max_net_speed=9), "analytics_config.parameter_values.max_net_speed", "got 9"),
            (loitering.id, struct(max_net_speed="q" * 5000), "analytics_config.parameter_values.max_net_speed",
             "got 'qqq"),
            (loitering.id, struct(window=3), "analytics_config.parameter_values.window", "not a parameter")):
        name = field.rsplit(".", 1)[1]
        details = await refused(rules.UpdateAnalyticsConfig(rule_pb2.UpdateAnalyticsConfigRequest(
            analytics_config=rule_pb2.AnalyticsConfig(id=config_id, parameter_values=given),
            update_mask=mask(f"parameter_values.{name}")), metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith(f"{field}:") and excerpt in details and len(details) < 200, details

    details = await refused(rules.CreateAnalyticsConfig(rule_pb2.CreateAnalyticsConfigRequest(
        analytics_config=rule_pb2.AnalyticsConfig(
            name="x", camera_id=scene.camera.id, activity_type=common_pb2.ACTIVITY_TYPE_LOITERING,
            analytic="running@1")), metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("analytics_config.analytic:") and "does not detect loitering" in details


async def test_list_analytics_returns_every_manifest_to_any_reader(rules, as_role):
    listed = (await rules.ListAnalytics(rule_pb2.ListAnalyticsRequest(), metadata=as_role("viewer"))).analytics
    assert [a.analytic for a in listed] == [
        "after_hours@1", "crowding@1", "dwell_time@1", "dwell_time@2", "intrusion@1", "intrusion@2", "loitering@1",
        "loitering@2", "repeated_entry@1", "running@1", "zone_breach@1", "zone_breach@2"]
    assert [a.analytic for a in listed if a.latest] == [
        "after_hours@1", "crowding@1", "dwell_time@2", "intrusion@2", "loitering@2", "repeated_entry@1", "running@1",
        "zone_breach@2"]
    watching = next(a for a in listed if a.analytic == "loitering@2")
    assert [p.name for p in watching.parameters] == ["objects", "min_duration", "max_net_speed", "max_gap"]
    objects = watching.parameters[0]
    assert (objects.type, list(objects.default_choices), list(objects.choices), objects.required) == (
        rule_pb2.ANALYTIC_PARAMETER_TYPE_OBJECTS, ["person"],
        ["person", "vehicle", "bicycle", "bus", "car", "motorcycle", "truck"], False)
    loitering = next(a for a in listed if a.analytic == "loitering@1")
    assert [p.name for p in loitering.parameters] == ["min_duration", "max_net_speed", "max_gap"]
    min_duration, max_net_speed, _ = loitering.parameters
    assert (min_duration.type, min_duration.unit, min_duration.default_value, min_duration.minimum,
            min_duration.maximum, min_duration.zone_threshold) == (
        rule_pb2.ANALYTIC_PARAMETER_TYPE_DURATION, "s", 120.0, 1.0, 86400.0, "loiter_threshold")
    assert max_net_speed.exclusive_minimum and max_net_speed.unit == "person_heights/s"
    assert list(loitering.zone_types) == [camera_pb2.ZONE_TYPE_RESTRICTED, camera_pb2.ZONE_TYPE_INTEREST]
    after_hours = next(a for a in listed if a.name == "after_hours")
    assert after_hours.parameters[0].required and not after_hours.parameters[0].HasField("default_value")
    only = (await rules.ListAnalytics(rule_pb2.ListAnalyticsRequest(
        activity_types=[common_pb2.ACTIVITY_TYPE_RUNNING]), metadata=as_role("viewer"))).analytics
    assert [a.analytic for a in only] == ["running@1"]


async def test_a_configurations_zone_must_be_of_a_type_its_analytic_runs_on(rules, admin, scene, channel):
    cameras = camera_pb2_grpc.CameraServiceStub(channel)
    entrance = (await cameras.CreateZone(camera_pb2.CreateZoneRequest(zone=camera_pb2.Zone(
        camera_id=scene.camera.id, name="Entrance", zone_type=camera_pb2.ZONE_TYPE_ENTRY, polygon=TRIANGLE)),
        metadata=admin)).zone
    details = await refused(rules.CreateAnalyticsConfig(rule_pb2.CreateAnalyticsConfigRequest(
        analytics_config=rule_pb2.AnalyticsConfig(name="x", camera_id=scene.camera.id, zone_id=entrance.id,
                                                  activity_type=common_pb2.ACTIVITY_TYPE_INTRUSION)), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("analytics_config.zone_id:") and "intrusion@2" in details and "entry" in details


async def test_unset_parameters_fall_back_to_the_zone_threshold_then_the_manifest_default(
        rules, admin, scene, channel, app):
    """Through the API and the ingest hook: a loitering config without min_duration uses the zone's
    loiter_threshold (10 s), one that sets it (20 s) its own, and dwell_time, whose zone threshold is
    unset, the manifest default (60 s)."""
    cameras = camera_pb2_grpc.CameraServiceStub(channel)
    hall = (await cameras.CreateZone(camera_pb2.CreateZoneRequest(zone=camera_pb2.Zone(
        camera_id=scene.camera.id, name="Hall", zone_type=camera_pb2.ZONE_TYPE_INTEREST, polygon=TRIANGLE,
        thresholds=camera_pb2.ZoneThresholds(loiter_threshold=seconds(10)))), metadata=admin)).zone
    ids = {}
    for name, activity, typed in (("zone threshold", common_pb2.ACTIVITY_TYPE_LOITERING, {}),
                                  ("own value", common_pb2.ACTIVITY_TYPE_LOITERING,
                                   {"dwell": rule_pb2.DwellParameters(min_duration=seconds(20))}),
                                  ("default", common_pb2.ACTIVITY_TYPE_DWELL_TIME, {})):
        ids[(await rules.CreateAnalyticsConfig(rule_pb2.CreateAnalyticsConfigRequest(
            analytics_config=rule_pb2.AnalyticsConfig(name=name, camera_id=scene.camera.id, zone_id=hall.id,
                                                      activity_type=activity, **typed)),
            metadata=admin)).analytics_config.id] = name
    start = datetime(2026, 3, 6, 2, 0, tzinfo=UTC)
    observations = [TrackObservation(scene.camera.id, "t-1", ObjectClass.PERSON, Box(0.46, 0.2, 0.08, 0.2), 0.9,
                                     start + timedelta(seconds=i), frame_width=1920, frame_height=1080)
                    for i in range(66)]
    async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
        await AlertingHook()(SimpleNamespace(conn=conn), [], observations)  # as the ingest path calls it
    rows = await fetch(app, "SELECT details->>'config_id' AS config, timestamp FROM suspicious_activity_events"
                            " WHERE camera_id = %s ORDER BY timestamp", (scene.camera.id,))
    assert [(ids[r["config"]], (r["timestamp"] - start).total_seconds()) for r in rows] == [
        ("zone threshold", 10.0), ("own value", 20.0), ("default", 60.0)]


# --------------------------------------------------------------------------- alerts


async def test_an_alert_records_its_rule_clause_and_track_and_takes_the_persons_severity(
        rules, alerts, admin, scene, app):
    rule = await create_rule(rules, admin, name="Banned at the gate", camera_id=scene.camera.id,
                             zone_id=scene.gate.id, watchlist_id=scene.watchlist.id)
    when = datetime.now(UTC).replace(microsecond=0)
    [created] = await observe(app, scene, when=when, person=scene.courier, track_id="trk-42", rule_ids={rule.id})
    assert await observe(app, scene, when=when, person=scene.employee, rule_ids={rule.id}) == []  # not listed

    alert = (await alerts.GetAlert(alert_pb2.GetAlertRequest(id=str(created.id)), metadata=admin)).alert
    assert (alert.alert_rule_id, alert.person_id, alert.camera_id, alert.site_id) == (
        rule.id, scene.courier.id, scene.camera.id, scene.site.id)
    assert alert.event_id and not alert.suspicious_activity_id and alert.alert_type == "person_recognized"
    assert alert.severity == common_pb2.SEVERITY_CRITICAL  # the rule has none: blacklisted person
    assert alert.status == alert_pb2.ALERT_STATUS_PENDING and not alert.HasField("sent_time")
    trigger = alert.trigger
    assert (trigger.rule_id, trigger.rule_name, trigger.clause, trigger.track_id) == (
        rule.id, "Banned at the gate", alert_pb2.RULE_CLAUSE_WATCHLIST, "trk-42")
    assert (trigger.event_type, trigger.zone_id, trigger.frame_number) == (
        common_pb2.EVENT_TYPE_PERSON_RECOGNIZED, scene.gate.id, 1200)
    assert trigger.confidence == pytest.approx(0.91) and trigger.similarity == pytest.approx(0.91)
    assert trigger.capture_time.ToDatetime(tzinfo=UTC) == when
    assert alert.message.startswith(
        'Blacklisted person "Eve Courier" recognised on camera "Loading bay" in zone "Gate"')
    site_time = when.astimezone(ZoneInfo("Asia/Singapore")).strftime("%Y-%m-%d %H:%M:%S +08")
    assert site_time in alert.message  # said in the site's time

    listed = await alerts.ListAlerts(alert_pb2.ListAlertsRequest(
        alert_rule_ids=[rule.id], site_ids=[scene.site.id], person_ids=[scene.courier.id],
        statuses=[alert_pb2.ALERT_STATUS_PENDING], severities=[common_pb2.SEVERITY_CRITICAL]), metadata=admin)
    assert [a.id for a in listed.alerts] == [alert.id] and not listed.alerts[0].history
    for request in (alert_pb2.ListAlertsRequest(alert_rule_ids=[rule.id], statuses=[alert_pb2.ALERT_STATUS_SENT]),
                    alert_pb2.ListAlertsRequest(alert_rule_ids=[rule.id], camera_ids=[scene.other_camera.id])):
        assert not (await alerts.ListAlerts(request, metadata=admin)).alerts
    details = await refused(alerts.ListAlerts(alert_pb2.ListAlertsRequest(
        statuses=[alert_pb2.ALERT_STATUS_UNSPECIFIED]), metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("statuses:")

    # the alert outlives its rule, which the trigger still names
    await rules.DeleteAlertRule(rule_pb2.DeleteAlertRuleRequest(id=rule.id), metadata=admin)
    kept = (await alerts.GetAlert(alert_pb2.GetAlertRequest(id=alert.id), metadata=admin)).alert
    assert kept.alert_rule_id == "" and kept.trigger.rule_id == rule.id
    found = await alerts.ListAlerts(alert_pb2.ListAlertsRequest(alert_rule_ids=[rule.id]), metadata=admin)
    assert [a.id for a in found.alerts] == [alert.id]


async def test_alert_lifecycle_records_who_when_and_notes_and_refuses_invalid_moves(
        rules, alerts, admin, as_role, scene, app):
    rule = await create_rule(rules, admin, camera_id=scene.camera.id, severity=common_pb2.SEVERITY_HIGH,
                             cooldown=seconds(0))
    when = datetime.now(UTC)
    first, second = [(await observe(app, scene, when=when, rule_ids={rule.id}, track_id=f"t-{n}"))[0]
                     for n in range(2)]
    assert first.severity == "high" and first.trigger_clause == "camera"

    # an operator bound to a user of this site acts: who is recorded
    user_id, operator = await site_operator(app, scene.site.id)
    ack = alert_pb2.AcknowledgeAlertRequest(id=str(first.id), note="on my way")
    acknowledged = (await alerts.AcknowledgeAlert(ack, metadata=operator)).alert
    assert acknowledged.status == alert_pb2.ALERT_STATUS_ACKNOWLEDGED and acknowledged.acknowledged_by == user_id
    assert acknowledged.HasField("acknowledge_time")
    again = (await alerts.AcknowledgeAlert(ack, metadata=operator)).alert  # repeating changes nothing
    assert again.acknowledge_time == acknowledged.acknowledge_time
    resolved = (await alerts.ResolveAlert(alert_pb2.ResolveAlertRequest(id=str(first.id), note="false alarm"),
                                          metadata=operator)).alert
    assert (resolved.status, resolved.resolved_by, resolved.ignored_by) == (
        alert_pb2.ALERT_STATUS_RESOLVED, user_id, "")
    assert resolved.HasField("resolve_time") and not resolved.HasField("ignore_time")
    for move in (alerts.AcknowledgeAlert(alert_pb2.AcknowledgeAlertRequest(id=str(first.id)), metadata=operator),
                 alerts.IgnoreAlert(alert_pb2.IgnoreAlertRequest(id=str(first.id)), metadata=operator)):
        details = await refused(move, grpc.StatusCode.FAILED_PRECONDITION)
        assert "is resolved" in details
    await alerts.ResolveAlert(alert_pb2.ResolveAlertRequest(id=str(first.id)), metadata=operator)

    history = (await alerts.GetAlert(alert_pb2.GetAlertRequest(id=str(first.id)), metadata=admin)).alert.history
    assert [(h.from_status, h.to_status, h.actor_id, h.note) for h in history] == [
        (alert_pb2.ALERT_STATUS_PENDING, alert_pb2.ALERT_STATUS_ACKNOWLEDGED, user_id, "on my way"),
        (alert_pb2.ALERT_STATUS_ACKNOWLEDGED, alert_pb2.ALERT_STATUS_RESOLVED, user_id, "false alarm")]
    assert history[0].change_time.ToDatetime() <= history[1].change_time.ToDatetime()

    # the notifier marks the second sent (the system acts); an operator then ignores it
    async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
        await AlertRepository(conn).mark_sent(second.id)
    ignored = (await alerts.IgnoreAlert(alert_pb2.IgnoreAlertRequest(id=str(second.id), note="drill"),
                                        metadata=admin)).alert
    assert ignored.status == alert_pb2.ALERT_STATUS_IGNORED and ignored.HasField("sent_time")
    assert ignored.HasField("ignore_time") and not ignored.HasField("resolve_time")
    assert ignored.ignored_by == ""  # a user-less API key has no user to name; the history keeps the key
    details = await refused(alerts.ResolveAlert(alert_pb2.ResolveAlertRequest(id=str(second.id)), metadata=admin),
                            grpc.StatusCode.FAILED_PRECONDITION)
    assert "is ignored" in details
    history = (await alerts.GetAlert(alert_pb2.GetAlertRequest(id=str(second.id)), metadata=admin)).alert.history
    assert [(h.to_status, h.actor_id, h.note) for h in history] == [
        (alert_pb2.ALERT_STATUS_SENT, "", ""), (alert_pb2.ALERT_STATUS_IGNORED, "", "drill")]
    changes = await fetch(app, "SELECT api_key_id FROM alert_status_changes WHERE alert_id = %s ORDER BY id",
                          (second.id,))
    assert changes[0]["api_key_id"] is None and changes[1]["api_key_id"] is not None

    await refused(alerts.AcknowledgeAlert(alert_pb2.AcknowledgeAlertRequest(id=str(second.id)),
                                          metadata=as_role("viewer")), grpc.StatusCode.PERMISSION_DENIED)
    await refused(alerts.AcknowledgeAlert(alert_pb2.AcknowledgeAlertRequest(id=str(uuid.uuid4())), metadata=admin),
                  grpc.StatusCode.NOT_FOUND)
    details = await refused(alerts.AcknowledgeAlert(alert_pb2.AcknowledgeAlertRequest(id="nope"), metadata=admin),
                            grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("id:")
    details = await refused(alerts.ResolveAlert(alert_pb2.ResolveAlertRequest(id=str(second.id), note="x" * 2001),
                                                metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("note:")


async def site_operator(app, site_id: str) -> tuple[str, tuple]:
    """A user with the operator role assigned to the site, and metadata for a key bound to them."""
    user_id = uuid.uuid4()
    async with app.pool.connection() as conn:
        await conn.execute("INSERT INTO users (id, username, email, password_hash, role_id)"
                           " SELECT %s, %s, %s, 'not-a-real-hash', id FROM roles WHERE name = 'operator'",
                           (user_id, f"alerts-{user_id.hex[:12]}", f"{user_id.hex[:12]}@alerts-test.invalid"))
        await conn.execute("INSERT INTO user_site_assignments (user_id, site_id) VALUES (%s, %s)",
                           (user_id, site_id))
        key = await ApiKeyRepository(conn).create("operator on site", "operator", user_id=user_id,
                                                  rate_limit_per_minute=100_000)
    return str(user_id), bearer(key.plaintext)


async def test_an_operator_of_another_site_cannot_see_or_move_the_alert(rules, alerts, admin, scene, app, channel):
    rule = await create_rule(rules, admin, camera_id=scene.camera.id)
    [alert] = await observe(app, scene, when=datetime.now(UTC), rule_ids={rule.id})
    cameras = camera_pb2_grpc.CameraServiceStub(channel)
    elsewhere = (await cameras.CreateSite(camera_pb2.CreateSiteRequest(site=camera_pb2.Site(
        name=unique("elsewhere"))), metadata=admin)).site
    _, stranger = await site_operator(app, elsewhere.id)
    await refused(alerts.GetAlert(alert_pb2.GetAlertRequest(id=str(alert.id)), metadata=stranger),
                  grpc.StatusCode.NOT_FOUND)
    await refused(alerts.AcknowledgeAlert(alert_pb2.AcknowledgeAlertRequest(id=str(alert.id)), metadata=stranger),
                  grpc.StatusCode.NOT_FOUND)


async def test_alerts_page_newest_first_under_unchanged_filters(rules, alerts, admin, scene, app):
    rule = await create_rule(rules, admin, camera_id=scene.camera.id, cooldown=seconds(0))
    start = datetime.now(UTC)
    created = [(await observe(app, scene, when=start + timedelta(seconds=n), track_id=f"p-{n}",
                              rule_ids={rule.id}))[0] for n in range(3)]
    request = alert_pb2.ListAlertsRequest(alert_rule_ids=[rule.id], page_size=2)
    first = await alerts.ListAlerts(request, metadata=admin)
    request.page_token = first.next_page_token
    second = await alerts.ListAlerts(request, metadata=admin)
    assert [a.id for a in [*first.alerts, *second.alerts]] == [str(a.id) for a in reversed(created)]
    assert first.next_page_token and not second.next_page_token
    request.camera_ids.append(scene.other_camera.id)  # another query: its pages are not these
    details = await refused(alerts.ListAlerts(request, metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("page_token:")


# --------------------------------------------------------------------------- cooldown


async def test_a_repeat_within_the_cooldown_raises_no_second_alert(rules, admin, scene, app):
    rule = await create_rule(rules, admin, camera_id=scene.camera.id, zone_id=scene.gate.id,
                             person_role="courier", cooldown=seconds(30))
    start = datetime.now(UTC)

    async def alerts_at(offset_s: float, **kwargs) -> int:
        return len(await observe(app, scene, when=start + timedelta(seconds=offset_s), person=scene.courier,
                                 rule_ids={rule.id}, **kwargs))

    assert await alerts_at(0) == 1
    assert await alerts_at(0) == 0  # the same firing again
    assert await alerts_at(29.9, track_id="another track of the same person") == 0  # the subject is the person
    assert await alerts_at(30) == 1  # the cooldown has passed
    assert await alerts_at(45) == 0
    assert await alerts_at(45, camera=scene.other_camera) == 0  # the rule is for the first camera only

    # the writer reads the rule's current cooldown: zero means none
    await rules.UpdateAlertRule(rule_pb2.UpdateAlertRuleRequest(alert_rule=rule_pb2.AlertRule(
        id=rule.id, cooldown=seconds(0)), update_mask=mask("cooldown")), metadata=admin)
    assert await alerts_at(46) == 1 and await alerts_at(46) == 1
    # a rule deactivated after evaluation raises nothing
    await rules.UpdateAlertRule(rule_pb2.UpdateAlertRuleRequest(alert_rule=rule_pb2.AlertRule(
        id=rule.id, is_active=False), update_mask=mask("is_active")), metadata=admin)
    assert await alerts_at(100) == 0

    async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
        assert await AlertRepository(conn).prune_cooldowns(start + timedelta(days=1)) >= 1
        assert await AlertRepository(conn).claim_cooldown(uuid.UUID(rule.id), uuid.UUID(scene.camera.id),
                                                          f"person:{scene.courier.id}", start) is False


async def test_unknown_tracks_and_activities_cool_down_per_track(rules, admin, scene, app):
    rule = await create_rule(rules, admin, camera_id=scene.camera.id, event_type=common_pb2.EVENT_TYPE_HUMAN_DETECTED)
    when = datetime.now(UTC)
    assert len(await observe(app, scene, when=when, track_id="a", rule_ids={rule.id})) == 1
    assert len(await observe(app, scene, when=when, track_id="b", rule_ids={rule.id})) == 1
    assert len(await observe(app, scene, when=when, track_id="a", rule_ids={rule.id})) == 0

    loitering = await create_rule(rules, admin, zone_id=scene.gate.id, activity_type=common_pb2.ACTIVITY_TYPE_LOITERING)
    [alert] = await observe(app, scene, when=when, track_id="c", activity_type="loitering",
                            rule_ids={loitering.id})
    assert alert.event_id is None and alert.suspicious_activity_id is not None
    assert (alert.alert_type, alert.trigger_clause, alert.severity) == ("suspicious_activity_loitering", "zone", "low")


async def test_concurrent_writers_of_the_same_firing_create_one_alert(rules, admin, scene, app):
    rule = await create_rule(rules, admin, camera_id=scene.camera.id, cooldown=seconds(60))
    when = datetime.now(UTC)
    claimed = asyncio.Event()

    async def writer(hold: bool) -> int:
        """One replica: evaluates and writes; the first holds its transaction open after claiming."""
        async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
            event = await EventRepository(conn).insert(uuid.UUID(scene.camera.id), "human_detected", when, 0.9, BOX)
            fact = Fact(camera_id=uuid.UUID(scene.camera.id), observed_at=when, confidence=0.9, track_id="same",
                        event_type="human_detected", event_id=event.id)
            stored = await AlertRuleRepository(conn).get(rule.id)
            created = await write_alerts(conn, RuleEvaluator().evaluate([stored], fact))
            if hold:
                claimed.set()
                await asyncio.sleep(0.5)  # the others now wait on this claim
            return len(created)

    first = asyncio.create_task(writer(hold=True))
    await claimed.wait()
    others = [asyncio.create_task(writer(hold=False)) for _ in range(4)]
    counts = await asyncio.gather(first, *others)
    assert sorted(counts) == [0, 0, 0, 0, 1]
    rows = await fetch(app, "SELECT count(*) AS n FROM alerts WHERE alert_rule_id = %s", (rule.id,))
    assert rows[0]["n"] == 1


# --------------------------------------------------------------------------- notification channels


async def test_notification_channels_keep_secrets_write_only_and_rules_notify_them(rules, alerts, admin, scene, app):
    webhook = alert_pb2.NotificationChannel(
        name=unique("ops hook"), webhook=alert_pb2.WebhookConfig(url="https://hooks.example.com/vigil",
                                                                 signing_secret="s" * 20),
        delivery=alert_pb2.DeliveryPolicy(retry_count=2))
    created = (await alerts.CreateNotificationChannel(alert_pb2.CreateNotificationChannelRequest(
        notification_channel=webhook), metadata=admin)).notification_channel
    assert created.channel_type == alert_pb2.CHANNEL_TYPE_WEBHOOK and created.webhook.has_signing_secret
    assert created.webhook.signing_secret == "" and b"s" * 20 not in created.SerializeToString()
    assert (created.delivery.retry_count, created.delivery.timeout.seconds, created.is_active) == (2, 30, True)
    got = (await alerts.GetNotificationChannel(alert_pb2.GetNotificationChannelRequest(id=created.id),
                                               metadata=admin)).notification_channel
    assert got == created
    listed = await alerts.ListNotificationChannels(alert_pb2.ListNotificationChannelsRequest(
        channel_types=[alert_pb2.CHANNEL_TYPE_WEBHOOK]), metadata=admin)
    assert created.id in [c.id for c in listed.notification_channels]

    def update(channel, *paths):
        return alerts.UpdateNotificationChannel(alert_pb2.UpdateNotificationChannelRequest(
            notification_channel=channel, update_mask=mask(*paths)), metadata=admin)

    updated = (await update(alert_pb2.NotificationChannel(id=created.id, delivery=alert_pb2.DeliveryPolicy(
        retry_count=5)), "delivery.retry_count")).notification_channel
    assert updated.delivery.retry_count == 5 and updated.webhook.has_signing_secret  # kept: not named
    cleared = (await update(alert_pb2.NotificationChannel(id=created.id),
                            "webhook.signing_secret")).notification_channel
    assert not cleared.webhook.has_signing_secret and cleared.delivery.retry_count == 5
    for channel, paths, field in (
            (alert_pb2.NotificationChannel(id=created.id, email=alert_pb2.EmailConfig(smtp_host="mx")), ["email"],
             "notification_channel.config"),
            (alert_pb2.NotificationChannel(id=created.id), ["webhook.has_signing_secret"], "update_mask"),
            (alert_pb2.NotificationChannel(id=created.id), ["telegram.bot_token"], "update_mask"),
            (alert_pb2.NotificationChannel(id=created.id, webhook=alert_pb2.WebhookConfig(url="http://example.com/")),
             ["webhook.url"], "notification_channel.webhook.url")):
        details = await refused(update(channel, *paths), grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith(f"{field}:"), details
    for channel, field in ((alert_pb2.NotificationChannel(name="x"), "notification_channel.config"),
                           (alert_pb2.NotificationChannel(name="x", telegram=alert_pb2.TelegramConfig(chat_id="@ops")),
                            "notification_channel.telegram.bot_token"),
                           (alert_pb2.NotificationChannel(name="", webhook=webhook.webhook),
                            "notification_channel.name")):
        details = await refused(alerts.CreateNotificationChannel(alert_pb2.CreateNotificationChannelRequest(
            notification_channel=channel), metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith(f"{field}:"), details

    # an alert of a rule naming the channel is queued for it in the alert's transaction
    rule = await create_rule(rules, admin, camera_id=scene.camera.id, notification_channel_ids=[created.id])
    assert list(rule.notification_channel_ids) == [created.id]
    [alert] = await observe(app, scene, when=datetime.now(UTC), rule_ids={rule.id})
    queued = await fetch(app, "SELECT channel_id, attempt FROM notification_deliveries WHERE alert_id = %s",
                         (alert.id,))
    assert [(str(q["channel_id"]), q["attempt"]) for q in queued] == [(created.id, 1)]
    await alerts.ListNotificationDeliveries(alert_pb2.ListNotificationDeliveriesRequest(
        alert_ids=[str(alert.id)]), metadata=admin)
    details = await refused(alerts.ListNotificationDeliveries(alert_pb2.ListNotificationDeliveriesRequest(
        statuses=[alert_pb2.DELIVERY_STATUS_UNSPECIFIED]), metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("statuses[0]:")

    # deleting the channel takes it off every rule
    await alerts.DeleteNotificationChannel(alert_pb2.DeleteNotificationChannelRequest(id=created.id), metadata=admin)
    after = (await rules.GetAlertRule(rule_pb2.GetAlertRuleRequest(id=rule.id), metadata=admin)).alert_rule
    assert list(after.notification_channel_ids) == []


# --------------------------------------------------------------------------- incidents: alert episodes


async def notification_rounds(app, alert_id) -> list[int]:
    """The notification rounds queued for the alert (first attempts only: retries are not new notifications)."""
    rows = await fetch(app, "SELECT round FROM notification_deliveries WHERE alert_id = %s AND attempt = 1"
                            " ORDER BY round", (alert_id,))
    return [r["round"] for r in rows]


async def webhook_channel(alerts, admin) -> alert_pb2.NotificationChannel:
    return (await alerts.CreateNotificationChannel(alert_pb2.CreateNotificationChannelRequest(
        notification_channel=alert_pb2.NotificationChannel(
            name=unique("episode hook"), webhook=alert_pb2.WebhookConfig(url="https://hooks.example.com/episodes"))),
        metadata=admin)).notification_channel


async def test_a_grouping_rule_keeps_one_alert_per_episode_with_its_tracks_evidence_and_count(
        rules, alerts, admin, scene, app):
    hook = await webhook_channel(alerts, admin)
    rule = await create_rule(rules, admin, camera_id=scene.camera.id, zone_id=scene.gate.id,
                             group_window=seconds(60), notification_channel_ids=[hook.id])
    assert rule.group_window.seconds == 60
    t0 = datetime.now(UTC)
    # three track fragments in the zone, each within the window of the last: one alert
    created = [await observe(app, scene, when=t0 + timedelta(seconds=s), track_id=f"frag-{s}", rule_ids={rule.id})
               for s in (0, 40, 80)]
    assert [len(c) for c in created] == [1, 0, 0]
    alert = created[0][0]
    got = (await alerts.GetAlert(alert_pb2.GetAlertRequest(id=str(alert.id)), metadata=admin)).alert
    assert got.match_count == 3 and list(got.track_ids) == ["frag-0", "frag-40", "frag-80"]
    assert [m.track_id for m in got.matches] == ["frag-40", "frag-80"]
    assert all(m.rule_id == rule.id and m.zone_id == scene.gate.id for m in got.matches)
    assert got.matches[1].capture_time.ToDatetime(UTC) == t0 + timedelta(seconds=80)
    assert got.last_match_time.ToDatetime(UTC) > got.trigger.capture_time.ToDatetime(UTC)
    assert await notification_rounds(app, alert.id) == [1]  # later matches notify nobody
    rows = await fetch(app, "SELECT count(*) AS n FROM alert_matches WHERE alert_id = %s", (alert.id,))
    assert rows[0]["n"] == 2

    # the window passes quietly: the next match opens a new episode, and the first is closed
    [second] = await observe(app, scene, when=t0 + timedelta(seconds=141), track_id="later", rule_ids={rule.id})
    assert second.id != alert.id and second.match_count == 1
    rows = await fetch(app, "SELECT id, episode_open FROM alerts WHERE alert_rule_id = %s ORDER BY created_at",
                       (rule.id,))
    assert [(r["id"], r["episode_open"]) for r in rows] == [(alert.id, False), (second.id, True)]
    assert await notification_rounds(app, second.id) == [1]

    # resolving the open alert ends its episode: a match right after opens another alert
    await alerts.ResolveAlert(alert_pb2.ResolveAlertRequest(id=str(second.id), note="cleared"), metadata=admin)
    [third] = await observe(app, scene, when=t0 + timedelta(seconds=145), track_id="again", rule_ids={rule.id})
    assert third.id not in (alert.id, second.id)


async def test_a_match_that_raises_the_severity_of_an_open_alert_notifies_again(rules, alerts, admin, scene, app):
    hook = await webhook_channel(alerts, admin)
    # no severity on the rule: the person's status decides (known: low, blacklisted: critical)
    rule = await create_rule(rules, admin, camera_id=scene.camera.id, zone_id=scene.gate.id,
                             group_window=seconds(300), notification_channel_ids=[hook.id])
    t0 = datetime.now(UTC)
    [alert] = await observe(app, scene, when=t0, person=scene.employee, track_id="staff", rule_ids={rule.id})
    assert alert.severity == "low"
    assert await observe(app, scene, when=t0 + timedelta(seconds=5), person=scene.employee, track_id="staff-2",
                         rule_ids={rule.id}) == []
    assert await notification_rounds(app, alert.id) == [1]
    assert await observe(app, scene, when=t0 + timedelta(seconds=9), person=scene.courier, track_id="courier",
                         rule_ids={rule.id}) == []
    got = (await alerts.GetAlert(alert_pb2.GetAlertRequest(id=str(alert.id)), metadata=admin)).alert
    assert (got.severity, got.match_count) == (common_pb2.SEVERITY_CRITICAL, 3)
    assert await notification_rounds(app, alert.id) == [1, 2]  # the rise notified once more
    # a lower severity afterwards changes neither the severity nor the notifications
    await observe(app, scene, when=t0 + timedelta(seconds=12), person=scene.employee, track_id="staff-3",
                  rule_ids={rule.id})
    got = (await alerts.GetAlert(alert_pb2.GetAlertRequest(id=str(alert.id)), metadata=admin)).alert
    assert (got.severity, got.match_count) == (common_pb2.SEVERITY_CRITICAL, 4)
    assert await notification_rounds(app, alert.id) == [1, 2]


async def test_concurrent_writers_of_one_episode_open_one_alert(rules, admin, scene, app):
    rule = await create_rule(rules, admin, camera_id=scene.camera.id, group_window=seconds(60))
    when = datetime.now(UTC)
    opened = asyncio.Event()

    async def writer(n: int, hold: bool) -> int:
        """One replica: stores its event, evaluates and writes; the first holds its open alert
        uncommitted while the others try to open the same episode."""
        async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
            event = await EventRepository(conn).insert(uuid.UUID(scene.camera.id), "human_detected", when, 0.9, BOX)
            fact = Fact(camera_id=uuid.UUID(scene.camera.id), observed_at=when + timedelta(seconds=n),
                        confidence=0.9, track_id=f"racer-{n}", event_type="human_detected", event_id=event.id)
            stored = await AlertRuleRepository(conn).get(rule.id)
            created = await write_alerts(conn, RuleEvaluator().evaluate([stored], fact))
            if hold:
                opened.set()
                await asyncio.sleep(0.5)  # the others now wait on this insert
            return len(created)

    first = asyncio.create_task(writer(0, hold=True))
    await opened.wait()
    others = [asyncio.create_task(writer(n, hold=False)) for n in range(1, 5)]
    counts = await asyncio.gather(first, *others)
    assert sorted(counts) == [0, 0, 0, 0, 1]
    rows = await fetch(app, "SELECT match_count, cardinality(track_ids) AS tracks FROM alerts WHERE alert_rule_id = %s",
                       (rule.id,))
    assert [(r["match_count"], r["tracks"]) for r in rows] == [(5, 5)]


async def test_group_window_is_validated_and_updatable(rules, admin, scene):
    plain = await create_rule(rules, admin, camera_id=scene.camera.id)
    assert plain.group_window.seconds == 0  # unset: one alert per match
    details = await refused(rules.CreateAlertRule(rule_pb2.CreateAlertRuleRequest(alert_rule=rule_pb2.AlertRule(
        name=unique("rule"), group_window=seconds(-1))), metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("alert_rule.group_window:"), details
    updated = (await rules.UpdateAlertRule(rule_pb2.UpdateAlertRuleRequest(
        alert_rule=rule_pb2.AlertRule(id=plain.id, group_window=seconds(90)), update_mask=mask("group_window")),
        metadata=admin)).alert_rule
    assert updated.group_window.seconds == 90


async def test_a_device_back_online_resolves_its_offline_alert_on_the_feed(app, channel, admin):
    async with database(app) as conn:
        camera = await make_camera(conn, app.secrets)
    feed = event_pb2_grpc.EventServiceStub(channel).Subscribe(event_pb2.SubscribeRequest(
        camera_ids=[str(camera.id)], kinds=[event_pb2.FEED_ITEM_KIND_ALERT, event_pb2.FEED_ITEM_KIND_ALERT_UPDATE]),
        metadata=admin)
    assert (await feed.read()).WhichOneof("item") == "keepalive"
    now = datetime.now(UTC)
    # what the device_health job does on each transition
    await device_transition(app, "camera", camera.id, camera.id, camera.name, "offline", "unknown", None, now)
    await device_transition(app, "camera", camera.id, camera.id, camera.name, "online", "offline", now, now)
    items = []
    async with asyncio.timeout(20):
        while len(items) < 2:
            response = await feed.read()
            if response.WhichOneof("item") in ("alert", "alert_update"):
                items.append(response)
    feed.cancel()
    offline, update = items[0].alert, items[1].alert_update
    assert offline.alert_type == "camera_offline" and update.alert.id == offline.id
    assert (update.previous_status, update.alert.status, update.change.note, update.change.actor_id) == (
        alert_pb2.ALERT_STATUS_PENDING, alert_pb2.ALERT_STATUS_RESOLVED, "camera back online", "")
