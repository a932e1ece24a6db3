"""The demo's configuration, made through the public gRPC API as an integrator would: a site, a
DVR and two replayed cameras, a restricted zone with intrusion analytics, a watchlist holding
one enrolled person, and the alert rules. Find-or-create by name, so a second run reuses all of
it (camera URLs are brought up to date: another media directory, --loop, --speed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import duration_pb2, field_mask_pb2, struct_pb2

from vigil.api.v1 import (
    camera_pb2,
    camera_pb2_grpc,
    common_pb2,
    event_pb2_grpc,
    ingest_pb2,
    media_pb2_grpc,
    node_pb2_grpc,
    person_pb2,
    person_pb2_grpc,
    rule_pb2,
    rule_pb2_grpc,
    watchlist_pb2,
    watchlist_pb2_grpc,
)
from vigil.logs import get_logger
from vigil.samples import SampleVideo

log = get_logger("vigil.demo")

SITE = "Vigil demo"
DVR = "Demo recorder"
WATCHLIST = "Demo VIPs"
PERSON = "Barack Obama"
# One alert per intrusion episode in a zone: every track fragment entering it within a minute of
# the last joins the open alert instead of raising another (AlertRule.group_window).
ZONE_EPISODE = duration_pb2.Duration(seconds=60)


@dataclass(frozen=True)
class CameraPlan:
    key: str  # sample video name
    name: str
    location: str
    channel: int
    # restricted zone (normalised polygon) watched by intrusion analytics, or None
    zone: tuple[str, tuple[tuple[float, float], ...]] | None = None
    watch_vehicles: bool = False  # also raise an alert for a vehicle stopped in the zone


RIGHT_THIRD = ((2 / 3, 0.0), (1.0, 0.0), (1.0, 1.0), (2 / 3, 1.0))
CAMERAS = (
    CameraPlan("people_walk", "Lobby corridor", "replayed people_walk.mp4", 1,
               zone=("Corridor east end", RIGHT_THIRD)),
    # intrusion is judged by where a body's feet are: the street's real pedestrians give the
    # person detector full bodies to find
    # ... and two vehicles parked in its zone for the whole video
    CameraPlan("people_street", "Street entrance", "replayed people_street.mp4", 2,
               zone=("Street east side", RIGHT_THIRD), watch_vehicles=True),
)


class Api:
    """Typed stubs on one channel, with the admin key on every call."""

    def __init__(self, channel: grpc.aio.Channel, key: str):
        self.metadata = (("authorization", f"Bearer {key}"),)
        self.cameras = camera_pb2_grpc.CameraServiceStub(channel)
        self.persons = person_pb2_grpc.PersonServiceStub(channel)
        self.watchlists = watchlist_pb2_grpc.WatchlistServiceStub(channel)
        self.rules = rule_pb2_grpc.RuleServiceStub(channel)
        self.events = event_pb2_grpc.EventServiceStub(channel)
        self.media = media_pb2_grpc.MediaServiceStub(channel)
        self.nodes = node_pb2_grpc.NodeServiceStub(channel)

    async def call(self, method, request, timeout: float = 30.0):
        return await method(request, metadata=self.metadata, timeout=timeout)


async def _all(api: Api, method, request, items: str) -> AsyncIterator:
    """Every item of a paged List RPC."""
    request.page_size = 1000
    while True:
        response = await api.call(method, request)
        for item in getattr(response, items):
            yield item
        if not response.next_page_token:
            return
        request.page_token = response.next_page_token


async def _find(api: Api, method, request, items: str, match: Callable) -> object | None:
    async for item in _all(api, method, request, items):
        if match(item):
            return item
    return None


@dataclass
class Scenario:
    site_id: str = ""
    dvr_id: str = ""
    cameras: dict[str, camera_pb2.Camera] = field(default_factory=dict)  # by sample video name
    zones: dict[str, camera_pb2.Zone] = field(default_factory=dict)  # by zone id
    person: person_pb2.Person | None = None
    enrolled_quality: float | None = None  # None: enrolled by an earlier run
    watchlist_id: str = ""
    rules: list[str] = field(default_factory=list)  # rule names
    created: list[str] = field(default_factory=list)  # what this run created, in words

    def camera_names(self) -> dict[str, str]:
        return {c.id: c.name for c in self.cameras.values()}


async def configure(api: Api, videos: dict[str, SampleVideo], *, loop: bool, speed: str,
                    model_version: str) -> Scenario:
    s = Scenario()
    await _site_and_dvr(api, s)
    for plan in CAMERAS:
        video = videos[plan.key]
        camera = await _camera(api, s, plan, video, _stream_url(video.path, loop=loop, speed=speed))
        s.cameras[plan.key] = camera
        if plan.zone:
            zone = await _zone(api, s, camera, *plan.zone)
            s.zones[zone.id] = zone
            await _intrusion(api, s, camera, zone)
            if plan.watch_vehicles:
                await _vehicle_stopped(api, s, camera, zone)
    await _person(api, s, videos["people_walk"].enrol["obama"], model_version)
    await _watchlist(api, s)
    return s


def _stream_url(path: Path, *, loop: bool, speed: str) -> str:
    # a replayed recording: paced at its own frame rate (a live camera) unless --speed max
    query = f"rate={'max' if speed == 'max' else 'native'}" + ("&loop=true" if loop else "")
    return f"{path.resolve().as_uri()}?{query}"


async def _site_and_dvr(api: Api, s: Scenario) -> None:
    site = await _find(api, api.cameras.ListSites, camera_pb2.ListSitesRequest(name_contains=SITE), "sites",
                       lambda x: x.name == SITE)
    if site is None:
        site = (await api.call(api.cameras.CreateSite, camera_pb2.CreateSiteRequest(site=camera_pb2.Site(
            name=SITE, address="Recorded video replayed by `vigil demo`", timezone="UTC")))).site
        s.created.append(f"site {SITE!r}")
    s.site_id = site.id
    dvr = await _find(api, api.cameras.ListDvrs, camera_pb2.ListDvrsRequest(site_ids=[site.id]), "dvrs",
                      lambda x: x.name == DVR)
    if dvr is None:
        dvr = (await api.call(api.cameras.CreateDvr, camera_pb2.CreateDvrRequest(dvr=camera_pb2.Dvr(
            site_id=site.id, name=DVR, brand="Vigil", model="file replay", ip_address="127.0.0.1")))).dvr
        s.created.append(f"DVR {DVR!r}")
    s.dvr_id = dvr.id


async def _camera(api: Api, s: Scenario, plan: CameraPlan, video: SampleVideo, url: str) -> camera_pb2.Camera:
    camera = await _find(api, api.cameras.ListCameras, camera_pb2.ListCamerasRequest(dvr_ids=[s.dvr_id]), "cameras",
                         lambda x: x.channel_number == plan.channel)
    wanted = camera_pb2.Camera(
        dvr_id=s.dvr_id, channel_number=plan.channel, name=plan.name, location=plan.location, rtsp_url=url,
        resolution=f"{video.width}x{video.height}", fps=max(1, round(video.fps)), is_active=True,
        status=common_pb2.DEVICE_STATUS_UNKNOWN)
    if camera is None:
        camera = (await api.call(api.cameras.CreateCamera, camera_pb2.CreateCameraRequest(camera=wanted))).camera
        s.created.append(f"camera {plan.name!r}")
        return camera
    stale = [
        f for f in ("name", "rtsp_url", "resolution", "fps", "is_active") if getattr(camera, f) != getattr(wanted, f)
    ]
    if camera.status == common_pb2.DEVICE_STATUS_MAINTENANCE:  # maintenance cameras are not processed
        stale.append("status")
    if stale:
        wanted.id = camera.id
        camera = (await api.call(api.cameras.UpdateCamera, camera_pb2.UpdateCameraRequest(
            camera=wanted, update_mask=field_mask_pb2.FieldMask(paths=stale)))).camera
        log.info("camera updated", camera=camera.id, fields=stale)
    return camera


async def _zone(api: Api, s: Scenario, camera: camera_pb2.Camera, name: str,
                polygon: tuple[tuple[float, float], ...]) -> camera_pb2.Zone:
    zone = await _find(api, api.cameras.ListZones, camera_pb2.ListZonesRequest(camera_ids=[camera.id]), "zones",
                       lambda x: x.name == name)
    if zone is None:
        zone = (await api.call(api.cameras.CreateZone, camera_pb2.CreateZoneRequest(zone=camera_pb2.Zone(
            camera_id=camera.id, name=name, zone_type=camera_pb2.ZONE_TYPE_RESTRICTED, color="#FF3030",
            polygon=[common_pb2.Point(x=x, y=y) for x, y in polygon], is_active=True)))).zone
        s.created.append(f"zone {name!r}")
    return zone


async def _intrusion(api: Api, s: Scenario, camera: camera_pb2.Camera, zone: camera_pb2.Zone) -> None:
    """Intrusion analytics on the zone (they raise the activity) and a rule that turns each
    intrusion episode into one high-severity alert."""
    analytics_name = f"Intrusion: {zone.name}"
    config = await _find(api, api.rules.ListAnalyticsConfigs, rule_pb2.ListAnalyticsConfigsRequest(
        zone_ids=[zone.id], activity_types=[common_pb2.ACTIVITY_TYPE_INTRUSION]), "analytics_configs",
        lambda x: True)
    if config is None:
        await api.call(api.rules.CreateAnalyticsConfig, rule_pb2.CreateAnalyticsConfigRequest(
            analytics_config=rule_pb2.AnalyticsConfig(
                name=analytics_name, camera_id=camera.id, zone_id=zone.id,
                activity_type=common_pb2.ACTIVITY_TYPE_INTRUSION, severity=common_pb2.SEVERITY_HIGH,
                is_active=True)))
        s.created.append(f"intrusion analytics on {zone.name!r}")
    await _rule(api, s, rule_pb2.AlertRule(
        name=f"Restricted zone: {zone.name}", camera_id=camera.id, zone_id=zone.id,
        activity_type=common_pb2.ACTIVITY_TYPE_INTRUSION, severity=common_pb2.SEVERITY_HIGH,
        # the activity's confidence is the person detector's; any intrusion it reports counts
        confidence_threshold=0.0, is_active=True, group_window=ZONE_EPISODE))


VEHICLE_STOPPED_AFTER_S = 20


async def _vehicle_stopped(api: Api, s: Scenario, camera: camera_pb2.Camera, zone: camera_pb2.Zone) -> None:
    """Loitering analytics over vehicles (loitering@2, objects: vehicle): a vehicle that stays in the
    zone without moving on raises the activity, and a rule on vehicles turns it into an alert."""
    config = await _find(api, api.rules.ListAnalyticsConfigs, rule_pb2.ListAnalyticsConfigsRequest(
        zone_ids=[zone.id], activity_types=[common_pb2.ACTIVITY_TYPE_LOITERING]), "analytics_configs",
        lambda x: True)
    if config is None:
        parameters = struct_pb2.Struct()
        parameters.update({"objects": ["vehicle"], "min_duration": VEHICLE_STOPPED_AFTER_S})
        await api.call(api.rules.CreateAnalyticsConfig, rule_pb2.CreateAnalyticsConfigRequest(
            analytics_config=rule_pb2.AnalyticsConfig(
                name=f"Vehicle stopped: {zone.name}", camera_id=camera.id, zone_id=zone.id,
                activity_type=common_pb2.ACTIVITY_TYPE_LOITERING, severity=common_pb2.SEVERITY_MEDIUM,
                analytic="loitering@2", parameter_values=parameters, is_active=True)))
        s.created.append(f"stopped-vehicle analytics on {zone.name!r}")
    await _rule(api, s, rule_pb2.AlertRule(
        name=f"Vehicle stopped: {zone.name}", camera_id=camera.id, zone_id=zone.id,
        activity_type=common_pb2.ACTIVITY_TYPE_LOITERING, object_class=ingest_pb2.OBJECT_CLASS_VEHICLE,
        severity=common_pb2.SEVERITY_MEDIUM, confidence_threshold=0.0, is_active=True, group_window=ZONE_EPISODE))


async def _rule(api: Api, s: Scenario, rule: rule_pb2.AlertRule) -> None:
    found = await _find(api, api.rules.ListAlertRules, rule_pb2.ListAlertRulesRequest(), "alert_rules",
                        lambda x: x.name == rule.name)
    if found is None:
        await api.call(api.rules.CreateAlertRule, rule_pb2.CreateAlertRuleRequest(alert_rule=rule))
        s.created.append(f"alert rule {rule.name!r}")
    elif found.group_window != rule.group_window:  # made by an earlier version of the demo
        await api.call(api.rules.UpdateAlertRule, rule_pb2.UpdateAlertRuleRequest(
            alert_rule=rule_pb2.AlertRule(id=found.id, group_window=rule.group_window),
            update_mask=field_mask_pb2.FieldMask(paths=["group_window"])))
    s.rules.append(rule.name)


async def _person(api: Api, s: Scenario, photo: Path, model_version: str) -> None:
    person = await _find(api, api.persons.ListPersons, person_pb2.ListPersonsRequest(query=PERSON), "persons",
                         lambda x: x.name == PERSON)
    if person is None:
        person = (await api.call(api.persons.CreatePerson, person_pb2.CreatePersonRequest(person=person_pb2.Person(
            name=PERSON, status=common_pb2.PERSON_STATUS_VIP, role="visitor",
            notes="Enrolled by `vigil demo` from obama.jpg (face_recognition sdist).")))).person
        s.created.append(f"person {PERSON!r}")
    faces = await api.call(api.persons.ListFaces, person_pb2.ListFacesRequest(
        person_id=person.id, model_versions=[model_version]))
    if not faces.faces:
        response = await api.call(api.persons.EnrollFace, person_pb2.EnrollFaceRequest(
            person_id=person.id, model_version=model_version,
            images=[person_pb2.EnrollImage(image=photo.read_bytes())]), timeout=60)
        result = response.results[0]
        if result.WhichOneof("result") != "face":
            raise RuntimeError(f"enrolling {PERSON} from {photo} was rejected: {result.rejection.message}")
        s.enrolled_quality = result.face.quality
        s.created.append(f"face of {PERSON!r} ({model_version})")
    s.person = person


async def _watchlist(api: Api, s: Scenario) -> None:
    watchlist = await _find(api, api.watchlists.ListWatchlists, watchlist_pb2.ListWatchlistsRequest(), "watchlists",
                            lambda x: x.name == WATCHLIST)
    if watchlist is None:
        watchlist = (await api.call(api.watchlists.CreateWatchlist, watchlist_pb2.CreateWatchlistRequest(
            watchlist=watchlist_pb2.Watchlist(name=WATCHLIST, watch_type=watchlist_pb2.WATCHLIST_TYPE_VIP,
                                              description="Persons the demo greets", is_active=True)))).watchlist
        s.created.append(f"watchlist {WATCHLIST!r}")
    s.watchlist_id = watchlist.id
    entries = await api.call(api.watchlists.ListWatchlistEntries, watchlist_pb2.ListWatchlistEntriesRequest(
        watchlist_id=watchlist.id, person_id=s.person.id))
    if not entries.entries:
        await api.call(api.watchlists.AddWatchlistEntry, watchlist_pb2.AddWatchlistEntryRequest(
            entry=watchlist_pb2.WatchlistEntry(watchlist_id=watchlist.id, person_id=s.person.id,
                                               notes="added by `vigil demo`")))
    await _rule(api, s, rule_pb2.AlertRule(
        name=f"Watchlist: {WATCHLIST}", watchlist_id=watchlist.id,
        event_type=common_pb2.EVENT_TYPE_PERSON_RECOGNIZED, severity=common_pb2.SEVERITY_HIGH,
        # recognition already applied the model version's own match threshold
        confidence_threshold=0.0, is_active=True))
