"""CameraService: sites, their DVRs (credentials write-only), camera channels and the zones drawn on them."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from datetime import timedelta
from typing import Any

import numpy
from google.protobuf import duration_pb2, field_mask_pb2
from google.protobuf.message import Message

from vigil.api.v1 import camera_pb2 as pb
from vigil.api.v1 import camera_pb2_grpc, common_pb2
from vigil.control.analytics import REGISTRY, ParameterError
from vigil.control.convert import EnumMap, text, timestamp
from vigil.control.field_mask import masked_changes, split_secrets
from vigil.control.request_checks import api_token, checked_text, fields_of, is_active, repository_token
from vigil.control.rpc import rpc
from vigil.control.rules.api_values import duration_seconds
from vigil.control.transactions import CallerDatabase
from vigil.errors import InvalidArgument
from vigil.storage.crypto import SecretBox
from vigil.storage.repositories.base import as_uuid
from vigil.storage.repositories.sites import (
    VPN_CLIENT_CONFIG,
    VPN_CLIENT_CONFIG_SEALED,
    Camera,
    CameraRepository,
    Dvr,
    DvrRepository,
    Site,
    SiteRepository,
    Zone,
    ZoneRepository,
)

DEVICE_STATUS = EnumMap(common_pb2.DeviceStatus, "DEVICE_STATUS_", "statuses")
ZONE_TYPE = EnumMap(pb.ZoneType, "ZONE_TYPE_", "zone.zone_type")
ZONE_TYPE_FILTER = EnumMap(pb.ZoneType, "ZONE_TYPE_", "zone_types")
VPN_TYPE = EnumMap(pb.VpnType, "VPN_TYPE_", "site.vpn.type")

# Statuses are observed, not set, except that an operator may take a device out of service and back.
SETTABLE_STATUS = {common_pb2.DEVICE_STATUS_MAINTENANCE: "maintenance", common_pb2.DEVICE_STATUS_UNKNOWN: "unknown"}
PORTS = ("rtsp", "http", "https", "sdk")
CAMERA_CONFIG = ("detection_enabled", "sensitivity", "min_face_size", "night_mode", "recording_enabled", "codec")
CODECS = ("h264", "h265")
DEFAULT_FPS = 25
DEFAULT_ZONE_COLOR = "#FF0000"
VPN_CONFIG_MAX_BYTES = 64 * 1024
STREAM_URL = re.compile(r"^(rtsps?|https?|file)://.", re.IGNORECASE)
RESOLUTION = re.compile(r"^[1-9][0-9]{0,4}x[1-9][0-9]{0,4}$")
HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$")
# ZoneThresholds fields (named as the analytics manifests' zone_threshold) → camera_zones columns
THRESHOLD_COLUMNS = {"dwell_threshold": "dwell_threshold_seconds", "loiter_threshold": "loiter_threshold_seconds",
                     "crowd_threshold": "crowd_threshold"}

SITE_OUTPUT_ONLY = ("create_time", "vpn.has_config")
DVR_OUTPUT_ONLY = ("has_credentials", "last_seen_time", "create_time", "update_time")
CAMERA_OUTPUT_ONLY = ("dvr_id", "site_id", "last_frame_time", "node_id", "create_time", "update_time")
ZONE_OUTPUT_ONLY = ("camera_id", "create_time")

Fields = dict[str, Callable[[], Any]]  # field path → reads and checks the request's value (only when used)


# --------------------------------------------------------------------------- checks of single fields


def in_range(path: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidArgument(path, f"must be within {low}..{high}, got {value}")
    return value


def uuid_text(path: str, value: str) -> str:
    return str(as_uuid(path, value))


def float32(value: float) -> float:
    """The shortest decimal that reads back as the same float32: 0.7 rather than 0.699999988079071."""
    return float(str(numpy.float32(value)))


def device_status(path: str, number: int, *, named: bool) -> str | None:
    """MAINTENANCE, or UNKNOWN to end it; other values are output only: ignored (None) unless named."""
    if number not in SETTABLE_STATUS and named:
        raise InvalidArgument(path, "only DEVICE_STATUS_MAINTENANCE, or DEVICE_STATUS_UNKNOWN to end it, can be set")
    return SETTABLE_STATUS.get(number)


# --------------------------------------------------------------------------- update masks, pages, errors


def top_level(fields: Fields) -> dict[str, Any]:
    """Every field of a create request: whole sub-messages, not their parts."""
    return {path: read() for path, read in fields.items() if "." not in path}


def masked(message: Message, mask: field_mask_pb2.FieldMask, fields: Fields, *, resource: str,
           output_only: Collection[str], secrets: Collection[str] = ()) -> tuple[dict[str, Any], set[str]]:
    """The checked values of the paths an update_mask names, and the input-only secret paths it names.

    "*" means every top-level field, never a secret: secrets change only when named.
    """
    rest, named_secrets = split_secrets(mask, secrets)
    if named_secrets and not rest.paths:
        return {}, set(named_secrets)
    chosen = masked_changes(rest, fields, resource=resource, immutable=output_only)
    return {path: read() for path, read in chosen.items()}, set(named_secrets)


def merged(stored: Mapping[str, Any] | None, changes: Mapping[str, Any], field: str) -> dict[str, Any] | None:
    """A JSON-stored sub-message after an update: replaced when `field` is named, then each named
    part ("field.part") set, or removed when None."""
    document = changes.get(field, stored)
    parts = {path.split(".", 1)[1]: value for path, value in changes.items() if path.startswith(f"{field}.")}
    if not parts:
        return None if document is None else dict(document)
    document = dict(document or {})
    for key, value in parts.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def names_part_of(changes: Collection[str], field: str) -> bool:
    return any(path == field or path.startswith(f"{field}.") for path in changes)


def audited(changes: Mapping[str, Any], secrets: Collection[str] = ()) -> dict[str, Any]:
    """Changes for the audit log: secret values never, only that they changed."""
    return {**changes, **{path: "changed" for path in secrets}}


# --------------------------------------------------------------------------- sites


def vpn_endpoint(value: str) -> str | None:
    endpoint = checked_text("site.vpn.endpoint", value, 255)
    if endpoint is not None:
        match = HOST_PORT.match(endpoint)
        if not match or not 1 <= int(match[2]) <= 65535:
            raise InvalidArgument("site.vpn.endpoint", f"must be host:port, e.g. vpn.example.com:51820, got {value!r}")
    return endpoint


def vpn_settings(site: pb.Site) -> dict[str, Any] | None:
    """The stored form of site.vpn without its client configuration, or None when unset."""
    if not site.HasField("vpn"):
        return None
    settings = {"type": VPN_TYPE.label(site.vpn.type)}
    if endpoint := vpn_endpoint(site.vpn.endpoint):
        settings["endpoint"] = endpoint
    return settings


def vpn_client_config(vpn: pb.VpnConfig) -> str | None:
    """The input-only client configuration, to be encrypted by the repository; None when empty."""
    if len(vpn.config.encode()) > VPN_CONFIG_MAX_BYTES:
        raise InvalidArgument("site.vpn.config", f"must be at most {VPN_CONFIG_MAX_BYTES} bytes")
    return vpn.config or None


def site_fields(site: pb.Site) -> Fields:
    return {
        "name": lambda: checked_text("site.name", site.name, 100, required=True),
        "address": lambda: checked_text("site.address", site.address, 1000),
        "timezone": lambda: site.timezone or "UTC",  # checked by the repository
        "vpn": lambda: vpn_settings(site),
        "vpn.type": lambda: VPN_TYPE.label(site.vpn.type),
        "vpn.endpoint": lambda: vpn_endpoint(site.vpn.endpoint),
    }


def updated_vpn(stored: dict[str, Any] | None, changes: Mapping[str, Any], *, config_named: bool,
                client_config: str | None) -> dict[str, Any] | None:
    """The stored VPN document after an update; its sealed client configuration survives unless
    "vpn.config" is named."""
    vpn = merged(stored, changes, "vpn")
    sealed = (stored or {}).get(VPN_CLIENT_CONFIG_SEALED)
    if config_named:
        if vpn is not None:
            vpn.pop(VPN_CLIENT_CONFIG_SEALED, None)
        if client_config is not None:
            vpn = {**(vpn or {}), VPN_CLIENT_CONFIG: client_config}
    elif vpn is not None and sealed is not None:
        vpn[VPN_CLIENT_CONFIG_SEALED] = sealed  # replacing "vpn" keeps the secret: only "vpn.config" changes it
    if vpn is not None and "type" not in vpn:
        raise InvalidArgument("site.vpn.type", "is required when a VPN is configured")
    return vpn


def site_message(site: Site) -> pb.Site:
    vpn = None
    if site.vpn_config is not None:
        vpn = pb.VpnConfig(type=VPN_TYPE.number(site.vpn_config.get("type")),
                           endpoint=site.vpn_config.get("endpoint", ""),
                           has_config=VPN_CLIENT_CONFIG_SEALED in site.vpn_config)
    return pb.Site(id=str(site.id), name=site.name, address=site.address or "", timezone=site.timezone, vpn=vpn,
                   create_time=timestamp(site.created_at))


# --------------------------------------------------------------------------- DVRs


def port(ports: pb.DvrPorts, name: str) -> int | None:
    if not ports.HasField(name):
        return None
    return in_range(f"dvr.ports.{name}", getattr(ports, name), 1, 65535)


def dvr_fields(dvr: pb.Dvr, named: Collection[str] = ()) -> Fields:
    fields = {
        "site_id": lambda: uuid_text("dvr.site_id", dvr.site_id),
        "name": lambda: checked_text("dvr.name", dvr.name, 100, required=True),
        "brand": lambda: checked_text("dvr.brand", dvr.brand, 50),
        "model": lambda: checked_text("dvr.model", dvr.model, 100),
        "ip_address": lambda: dvr.ip_address,  # checked by the repository
        "ports": lambda: {name: port(dvr.ports, name) for name in PORTS if dvr.ports.HasField(name)},
        "firmware_version": lambda: checked_text("dvr.firmware_version", dvr.firmware_version, 50),
        "status": lambda: device_status("dvr.status", dvr.status, named="status" in named),
    }
    for name in PORTS:
        fields[f"ports.{name}"] = lambda name=name: port(dvr.ports, name)
    return fields


def dvr_credentials(dvr: pb.Dvr) -> tuple[str | None, str | None]:
    """(username, password) to store; (None, None) clears them."""
    if not dvr.HasField("credentials"):
        return None, None
    return (checked_text("dvr.credentials.username", dvr.credentials.username, 256, required=True),
            checked_text("dvr.credentials.password", dvr.credentials.password, 256))


def dvr_columns(changes: Mapping[str, Any], stored: Dvr) -> dict[str, Any]:
    columns = {path: value for path, value in changes.items() if not path.startswith("ports")}
    if names_part_of(changes, "ports"):
        columns["ports"] = merged(stored.ports, changes, "ports")
    if columns.get("status", "") is None:
        del columns["status"]  # an observed status sent back under "*": left as it is
    return columns


def dvr_message(dvr: Dvr) -> pb.Dvr:
    return pb.Dvr(id=str(dvr.id), site_id=str(dvr.site_id), name=dvr.name, brand=dvr.brand or "",
                  model=dvr.model or "", ip_address=str(dvr.ip_address),
                  ports=pb.DvrPorts(**{name: dvr.ports[name] for name in PORTS if name in dvr.ports}),
                  firmware_version=dvr.firmware_version or "", has_credentials=dvr.has_credentials,
                  status=DEVICE_STATUS.number(dvr.status), last_seen_time=timestamp(dvr.last_seen),
                  create_time=timestamp(dvr.created_at), update_time=timestamp(dvr.updated_at))


# --------------------------------------------------------------------------- cameras


def stream_url(value: str) -> str | None:
    url = checked_text("camera.rtsp_url", value, 2048)
    if url is not None and not STREAM_URL.match(url):
        raise InvalidArgument("camera.rtsp_url", "must be an rtsp://, rtsps://, file:// or http(s):// URL")
    return url  # a user:password@ part is refused by the repository


def resolution(value: str) -> str | None:
    if value and not RESOLUTION.match(value):
        raise InvalidArgument("camera.resolution", f"must be WIDTHxHEIGHT, e.g. 1920x1080, got {value!r}")
    return value or None


def config_value(config: pb.CameraConfig, name: str) -> Any:
    """One CameraConfig field as stored, or None when unset (the server default applies)."""
    path = f"camera.config.{name}"
    if name == "codec":
        if config.codec and config.codec not in CODECS:
            raise InvalidArgument(path, f"must be one of {', '.join(CODECS)}, or empty to detect it")
        return config.codec or None
    if not config.HasField(name):
        return None
    value = getattr(config, name)
    if name == "sensitivity":
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise InvalidArgument(path, f"must be within [0, 1], got {value}")
        return float32(value)
    if name == "min_face_size":
        return in_range(path, value, 16, 1024)
    return value


def camera_config(config: pb.CameraConfig) -> dict[str, Any]:
    values = {name: config_value(config, name) for name in CAMERA_CONFIG}
    return {name: value for name, value in values.items() if value is not None}


def camera_fields(camera: pb.Camera, named: Collection[str] = ()) -> Fields:
    fields = {
        "channel_number": lambda: in_range("camera.channel_number", camera.channel_number, 0, 1024),
        "name": lambda: checked_text("camera.name", camera.name, 100, required=True),
        "location": lambda: checked_text("camera.location", camera.location, 200),
        "rtsp_url": lambda: stream_url(camera.rtsp_url),
        "resolution": lambda: resolution(camera.resolution),
        "fps": lambda: in_range("camera.fps", camera.fps or DEFAULT_FPS, 1, 240),
        "status": lambda: device_status("camera.status", camera.status, named="status" in named),
        "is_active": lambda: is_active(camera),
        "config": lambda: camera_config(camera.config),
    }
    for name in CAMERA_CONFIG:
        fields[f"config.{name}"] = lambda name=name: config_value(camera.config, name)
    return fields


def camera_columns(changes: Mapping[str, Any], stored: Camera) -> dict[str, Any]:
    columns = {path: value for path, value in changes.items() if not path.startswith("config")}
    if names_part_of(changes, "config"):
        columns["config"] = merged(stored.config, changes, "config")
    if columns.get("status", "") is None:
        del columns["status"]  # an observed status sent back under "*": left as it is
    return columns


def camera_message(camera: Camera) -> pb.Camera:
    config = pb.CameraConfig(**{name: camera.config[name] for name in CAMERA_CONFIG if name in camera.config})
    return pb.Camera(id=str(camera.id), dvr_id=str(camera.dvr_id), site_id=str(camera.site_id),
                     channel_number=camera.channel_number, name=camera.name, location=camera.location or "",
                     rtsp_url=camera.rtsp_url or "", resolution=camera.resolution or "", fps=camera.fps or 0,
                     status=DEVICE_STATUS.number(camera.status), is_active=camera.is_active,
                     last_frame_time=timestamp(camera.last_frame_time), config=config,
                     create_time=timestamp(camera.created_at), update_time=timestamp(camera.updated_at),
                     node_id=text(camera.node_id))


# --------------------------------------------------------------------------- zones


def zone_fields(zone: pb.Zone) -> Fields:
    return {
        "name": lambda: checked_text("zone.name", zone.name, 100, required=True),
        "zone_type": lambda: ZONE_TYPE.label(zone.zone_type),
        "polygon": lambda: [(float32(p.x), float32(p.y)) for p in zone.polygon],  # checked by the repository
        "color": lambda: zone.color or DEFAULT_ZONE_COLOR,  # checked by the repository
        "is_active": lambda: is_active(zone),
        "thresholds": lambda: {column: zone_threshold(zone.thresholds, name)
                               for name, column in THRESHOLD_COLUMNS.items()},
        **{f"thresholds.{name}": (lambda name=name: zone_threshold(zone.thresholds, name))
           for name in THRESHOLD_COLUMNS},
    }


def zone_threshold(thresholds: pb.ZoneThresholds, name: str) -> float | int | None:
    """A threshold's stored value (durations in seconds), None when unset. Its bounds are those of
    every analytic parameter that falls back to it (the manifests'), so any value stored can run."""
    if not thresholds.HasField(name):
        return None
    path = f"zone.thresholds.{name}"
    value = getattr(thresholds, name)
    if isinstance(value, duration_pb2.Duration):
        value = duration_seconds(path, value)
    for unit, spec in REGISTRY.falling_back_to(name):
        try:
            value = spec.coerce(value)
        except ParameterError as exc:
            raise InvalidArgument(path, f"{exc.reason} (the bound of {unit.ref()} {spec.name}, "
                                        "which falls back to it)") from None
    return value


def threshold_columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """A zone's create values or update changes with their thresholds ("thresholds", or parts of
    it) as camera_zones columns."""
    values = dict(values)
    values.update(values.pop("thresholds", None) or {})
    for name, column in THRESHOLD_COLUMNS.items():
        if f"thresholds.{name}" in values:
            values[column] = values.pop(f"thresholds.{name}")
    return values


def zone_thresholds_message(zone: Zone) -> pb.ZoneThresholds:
    message = pb.ZoneThresholds()
    for name, column in THRESHOLD_COLUMNS.items():
        value = getattr(zone, column)
        if value is None:
            continue
        if isinstance(getattr(message, name), duration_pb2.Duration):
            getattr(message, name).FromTimedelta(timedelta(seconds=value))
        else:
            setattr(message, name, value)
    return message


def zone_message(zone: Zone) -> pb.Zone:
    return pb.Zone(id=str(zone.id), camera_id=str(zone.camera_id), name=zone.name,
                   zone_type=ZONE_TYPE.number(zone.zone_type),
                   polygon=[common_pb2.Point(x=x, y=y) for x, y in zone.polygon], color=zone.color or "",
                   is_active=zone.is_active, create_time=timestamp(zone.created_at),
                   thresholds=zone_thresholds_message(zone))


# --------------------------------------------------------------------------- the service


class CameraService(camera_pb2_grpc.CameraServiceServicer):
    def __init__(self, db: CallerDatabase, secrets: SecretBox):
        self.db = db
        self.secrets = secrets

    # ----------------------------------------------------------------------- sites

    @rpc("sites", "read")
    async def GetSite(self, request, context):
        site_id = as_uuid("id", request.id)
        async with self.db.transaction() as tx:
            return pb.GetSiteResponse(site=site_message(await SiteRepository(tx.conn).get(site_id)))

    @rpc("sites", "read")
    async def ListSites(self, request, context):
        name_contains = checked_text("name_contains", request.name_contains, 100)
        async with self.db.transaction() as tx:
            page = await SiteRepository(tx.conn).list(name_contains=name_contains, page_size=request.page_size,
                                                      page_token=repository_token(request))
            return pb.ListSitesResponse(sites=[site_message(s) for s in page.items],
                                        next_page_token=api_token(request, page.next_page_token))

    @rpc("sites", "write")
    async def CreateSite(self, request, context):
        values = top_level(site_fields(request.site))
        client_config = vpn_client_config(request.site.vpn)
        vpn = values.pop("vpn")
        async with self.db.transaction() as tx:
            with fields_of("site"):
                created = await SiteRepository(tx.conn, self.secrets).create(
                    **values, vpn_config=None if vpn is None else {**vpn, VPN_CLIENT_CONFIG: client_config})
            await tx.audit("site.create", "site", created.id,
                           audited({**values, "vpn": vpn}, ["vpn.config"] if client_config else []))
            return pb.CreateSiteResponse(site=site_message(created))

    @rpc("sites", "write")
    async def UpdateSite(self, request, context):
        site = request.site
        site_id = as_uuid("site.id", site.id)
        changes, secrets = masked(site, request.update_mask, site_fields(site), resource="site",
                                  output_only=SITE_OUTPUT_ONLY, secrets=["vpn.config"])
        client_config = vpn_client_config(site.vpn) if secrets else None
        async with self.db.transaction() as tx:
            repo = SiteRepository(tx.conn, self.secrets)
            stored = await repo.get(site_id)
            columns = {path: value for path, value in changes.items() if not path.startswith("vpn")}
            if secrets or names_part_of(changes, "vpn"):
                columns["vpn_config"] = updated_vpn(stored.vpn_config, changes, config_named=bool(secrets),
                                                    client_config=client_config)
            with fields_of("site"):
                updated = await repo.update(site_id, columns)
            await tx.audit("site.update", "site", site_id, audited(changes, secrets))
            return pb.UpdateSiteResponse(site=site_message(updated))

    @rpc("sites", "delete")
    async def DeleteSite(self, request, context):
        site_id = as_uuid("id", request.id)
        async with self.db.transaction() as tx:
            await SiteRepository(tx.conn).delete(site_id, force=request.force)
            await tx.audit("site.delete", "site", site_id, {"force": request.force})
            return pb.DeleteSiteResponse()

    # ----------------------------------------------------------------------- DVRs

    @rpc("cameras", "read")
    async def GetDvr(self, request, context):
        dvr_id = as_uuid("id", request.id)
        async with self.db.transaction() as tx:
            return pb.GetDvrResponse(dvr=dvr_message(await DvrRepository(tx.conn, self.secrets).get(dvr_id)))

    @rpc("cameras", "read")
    async def ListDvrs(self, request, context):
        statuses = DEVICE_STATUS.labels(request.statuses) or None
        async with self.db.transaction() as tx:
            page = await DvrRepository(tx.conn, self.secrets).list(
                site_ids=list(request.site_ids) or None, statuses=statuses, page_size=request.page_size,
                page_token=repository_token(request))
            return pb.ListDvrsResponse(dvrs=[dvr_message(d) for d in page.items],
                                       next_page_token=api_token(request, page.next_page_token))

    @rpc("cameras", "write")
    async def CreateDvr(self, request, context):
        values = top_level(dvr_fields(request.dvr))
        values["status"] = values["status"] or "unknown"
        username, password = dvr_credentials(request.dvr)
        async with self.db.transaction() as tx:
            await SiteRepository(tx.conn).get(values["site_id"])  # NOT_FOUND names the missing site
            with fields_of("dvr"):
                created = await DvrRepository(tx.conn, self.secrets).create(
                    **values, username=username, password=password)
            await tx.audit("dvr.create", "dvr", created.id,
                           audited(values, ["credentials"] if created.has_credentials else []))
            return pb.CreateDvrResponse(dvr=dvr_message(created))

    @rpc("cameras", "write")
    async def UpdateDvr(self, request, context):
        dvr = request.dvr
        dvr_id = as_uuid("dvr.id", dvr.id)
        changes, secrets = masked(dvr, request.update_mask, dvr_fields(dvr, request.update_mask.paths),
                                  resource="dvr", output_only=DVR_OUTPUT_ONLY, secrets=["credentials"])
        credentials = dvr_credentials(dvr) if secrets else None
        async with self.db.transaction() as tx:
            repo = DvrRepository(tx.conn, self.secrets)
            stored = await repo.get(dvr_id)
            if "site_id" in changes:
                await SiteRepository(tx.conn).get(changes["site_id"])
            with fields_of("dvr"):
                updated = await repo.update(dvr_id, dvr_columns(changes, stored))
            if credentials is not None:
                await repo.set_credentials(dvr_id, *credentials)
                updated = await repo.get(dvr_id)
            await tx.audit("dvr.update", "dvr", dvr_id, audited(changes, secrets))
            return pb.UpdateDvrResponse(dvr=dvr_message(updated))

    @rpc("cameras", "delete")
    async def DeleteDvr(self, request, context):
        dvr_id = as_uuid("id", request.id)
        async with self.db.transaction() as tx:
            await DvrRepository(tx.conn, self.secrets).delete(dvr_id, force=request.force)
            await tx.audit("dvr.delete", "dvr", dvr_id, {"force": request.force})
            return pb.DeleteDvrResponse()

    # ----------------------------------------------------------------------- cameras

    @rpc("cameras", "read")
    async def GetCamera(self, request, context):
        camera_id = as_uuid("id", request.id)
        async with self.db.transaction() as tx:
            return pb.GetCameraResponse(camera=camera_message(await CameraRepository(tx.conn).get(camera_id)))

    @rpc("cameras", "read")
    async def ListCameras(self, request, context):
        statuses = DEVICE_STATUS.labels(request.statuses) or None
        async with self.db.transaction() as tx:
            page = await CameraRepository(tx.conn).list(
                site_ids=list(request.site_ids) or None, dvr_ids=list(request.dvr_ids) or None, statuses=statuses,
                is_active=request.is_active if request.HasField("is_active") else None,
                node_ids=list(request.node_ids) or None,
                page_size=request.page_size, page_token=repository_token(request))
            return pb.ListCamerasResponse(cameras=[camera_message(c) for c in page.items],
                                          next_page_token=api_token(request, page.next_page_token))

    @rpc("cameras", "write")
    async def CreateCamera(self, request, context):
        camera = request.camera
        dvr_id = uuid_text("camera.dvr_id", camera.dvr_id)
        values = top_level(camera_fields(camera))
        values["status"] = values["status"] or "unknown"
        async with self.db.transaction() as tx:
            await DvrRepository(tx.conn, self.secrets).get(dvr_id)  # NOT_FOUND names the missing DVR
            with fields_of("camera"):
                created = await CameraRepository(tx.conn).create(dvr_id, **values)
            await tx.audit("camera.create", "camera", created.id, {"dvr_id": dvr_id, **values})
            return pb.CreateCameraResponse(camera=camera_message(created))

    @rpc("cameras", "write")
    async def UpdateCamera(self, request, context):
        camera = request.camera
        camera_id = as_uuid("camera.id", camera.id)
        changes, _ = masked(camera, request.update_mask, camera_fields(camera, request.update_mask.paths),
                            resource="camera", output_only=CAMERA_OUTPUT_ONLY)
        async with self.db.transaction() as tx:
            repo = CameraRepository(tx.conn)
            stored = await repo.get(camera_id)
            with fields_of("camera"):
                updated = await repo.update(camera_id, camera_columns(changes, stored))
            await tx.audit("camera.update", "camera", camera_id, changes)
            return pb.UpdateCameraResponse(camera=camera_message(updated))

    @rpc("cameras", "delete")
    async def DeleteCamera(self, request, context):
        camera_id = as_uuid("id", request.id)
        async with self.db.transaction() as tx:
            await CameraRepository(tx.conn).delete(camera_id, force=request.force)
            await tx.audit("camera.delete", "camera", camera_id, {"force": request.force})
            return pb.DeleteCameraResponse()

    # ----------------------------------------------------------------------- zones

    @rpc("cameras", "read")
    async def GetZone(self, request, context):
        zone_id = as_uuid("id", request.id)
        async with self.db.transaction() as tx:
            return pb.GetZoneResponse(zone=zone_message(await ZoneRepository(tx.conn).get(zone_id)))

    @rpc("cameras", "read")
    async def ListZones(self, request, context):
        zone_types = ZONE_TYPE_FILTER.labels(request.zone_types) or None
        async with self.db.transaction() as tx:
            page = await ZoneRepository(tx.conn).list(
                camera_ids=list(request.camera_ids) or None, zone_types=zone_types,
                is_active=request.is_active if request.HasField("is_active") else None,
                page_size=request.page_size, page_token=repository_token(request))
            return pb.ListZonesResponse(zones=[zone_message(z) for z in page.items],
                                        next_page_token=api_token(request, page.next_page_token))

    @rpc("cameras", "write")
    async def CreateZone(self, request, context):
        zone = request.zone
        camera_id = uuid_text("zone.camera_id", zone.camera_id)
        values = top_level(zone_fields(zone))
        async with self.db.transaction() as tx:
            await CameraRepository(tx.conn).get(camera_id)  # NOT_FOUND names the missing camera
            with fields_of("zone"):
                created = await ZoneRepository(tx.conn).create(camera_id, **values)
            await tx.audit("zone.create", "zone", created.id, {"camera_id": camera_id, **values})
            return pb.CreateZoneResponse(zone=zone_message(created))

    @rpc("cameras", "write")
    async def UpdateZone(self, request, context):
        zone = request.zone
        zone_id = as_uuid("zone.id", zone.id)
        changes, _ = masked(zone, request.update_mask, zone_fields(zone), resource="zone",
                            output_only=ZONE_OUTPUT_ONLY)
        changes = threshold_columns(changes)
        async with self.db.transaction() as tx:
            with fields_of("zone"):
                updated = await ZoneRepository(tx.conn).update(zone_id, changes)
            await tx.audit("zone.update", "zone", zone_id, changes)
            return pb.UpdateZoneResponse(zone=zone_message(updated))

    @rpc("cameras", "delete")
    async def DeleteZone(self, request, context):
        zone_id = as_uuid("id", request.id)
        async with self.db.transaction() as tx:
            await ZoneRepository(tx.conn).delete(zone_id)
            await tx.audit("zone.delete", "zone", zone_id)
            return pb.DeleteZoneResponse()


SERVICE = (CameraService, camera_pb2_grpc.add_CameraServiceServicer_to_server, "vigil.v1.CameraService")
