"""Sites, their DVRs (credentials encrypted at rest), cameras and camera zones."""

from __future__ import annotations

import ipaddress
import math
import re
import uuid
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from vigil.storage.crypto import SecretBox
from vigil.storage.repositories.base import (
    BY_NAME,
    InvalidArgument,
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
    update_row,
)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Site:
    id: UUID
    name: str
    address: str | None
    timezone: str
    vpn_config: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True)
class Dvr:
    id: UUID
    site_id: UUID
    name: str
    brand: str | None
    model: str | None
    ip_address: IpAddress
    ports: dict[str, Any]
    firmware_version: str | None
    status: str
    last_seen: datetime | None
    has_credentials: bool  # the credentials themselves only come from DvrRepository.credentials()
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DvrCredentials:
    username: str | None
    password: str | None = field(repr=False)


@dataclass(frozen=True)
class Camera:
    id: UUID
    dvr_id: UUID
    channel_number: int
    name: str
    location: str | None
    rtsp_url: str | None
    resolution: str | None
    fps: int | None
    status: str
    is_active: bool
    last_frame_time: datetime | None
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


Point = tuple[float, float]


@dataclass(frozen=True)
class Zone:
    id: UUID
    camera_id: UUID
    name: str
    zone_type: str
    polygon: tuple[Point, ...]  # normalised (x, y) in [0, 1], stored as polygon_points [{"x", "y"}]
    color: str | None
    is_active: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Zone":
        polygon = tuple((float(p["x"]), float(p["y"])) for p in row["polygon"])
        return cls(**{**row, "polygon": polygon})


# --------------------------------------------------------------------------- sites

_SITE_COLUMNS = columns_of(Site)
_SITE_UPDATABLE = ("name", "address", "timezone", "vpn_config")


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidArgument("timezone", f"unknown IANA time zone {value!r}") from None
    return value


def _json_or_none(value: dict[str, Any] | None) -> Jsonb | None:
    return None if value is None else Jsonb(value)


class SiteRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def create(self, name: str, *, address: str | None = None, timezone: str = "UTC",
                     vpn_config: dict[str, Any] | None = None) -> Site:
        values = {"name": name, "address": address, "timezone": _timezone(timezone),
                  "vpn_config": _json_or_none(vpn_config)}
        return await insert_row(self.conn, "sites", values, Site, _SITE_COLUMNS, "site")

    async def get(self, site_id: UUID | str) -> Site:
        site_id = as_uuid("site_id", site_id)
        site = await fetch_one(self.conn, Site, sql.SQL("SELECT {} FROM sites WHERE id = %s").format(_SITE_COLUMNS),
                               (site_id,))
        if site is None:
            raise NotFound("site", site_id)
        return site

    async def list(self, *, page_size: int = 0, page_token: str | None = None) -> Page[Site]:
        return await fetch_page(self.conn, Site, select=_SITE_COLUMNS, table="sites", where=[], params=[],
                                keyset=BY_NAME, page_size=page_size, page_token=page_token, resource="site")

    async def update(self, site_id: UUID | str, changes: dict[str, Any]) -> Site:
        check_updatable("site", changes, _SITE_UPDATABLE)
        values = dict(changes)
        if "timezone" in values:
            values["timezone"] = _timezone(values["timezone"])
        if "vpn_config" in values:
            values["vpn_config"] = _json_or_none(values["vpn_config"])
        return await update_row(self.conn, "sites", as_uuid("site_id", site_id), values, Site, _SITE_COLUMNS, "site")

    async def delete(self, site_id: UUID | str) -> None:
        """Deletes the site with its DVRs, cameras, zones and their events (ON DELETE CASCADE)."""
        await delete_row(self.conn, "sites", as_uuid("site_id", site_id), "site")


# --------------------------------------------------------------------------- DVRs

_DVR_COLUMNS = columns_of(Dvr, has_credentials=sql.SQL("password_encrypted IS NOT NULL OR username_encrypted IS NOT NULL"))
_DVR_UPDATABLE = ("name", "brand", "model", "ip_address", "ports", "firmware_version", "status", "last_seen")


def _ip(value: str | IpAddress) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidArgument("ip_address", f"not an IPv4 or IPv6 address: {value!r}") from None


def _secret_context(column: str, dvr_id: UUID) -> str:
    # binds each ciphertext to its column and row: copied elsewhere, it does not decrypt
    return f"dvrs.{column}:{dvr_id}"


class DvrRepository:
    def __init__(self, conn: psycopg.AsyncConnection, secrets: SecretBox):
        self.conn = conn
        self.secrets = secrets

    def _encrypt(self, column: str, dvr_id: UUID, value: str | None) -> bytes | None:
        return None if value is None else self.secrets.encrypt(value, _secret_context(column, dvr_id))

    async def create(self, site_id: UUID | str, name: str, ip_address: str, *, username: str | None = None,
                     password: str | None = None, brand: str | None = None, model: str | None = None,
                     ports: dict[str, int] | None = None, firmware_version: str | None = None,
                     status: str = "unknown") -> Dvr:
        dvr_id = uuid.uuid4()  # known before the insert: the ciphertexts are bound to it
        values = {
            "id": dvr_id, "site_id": as_uuid("site_id", site_id), "name": name, "brand": brand, "model": model,
            "ip_address": _ip(ip_address), "ports": Jsonb(ports or {}), "firmware_version": firmware_version,
            "status": status,
            "username_encrypted": self._encrypt("username_encrypted", dvr_id, username),
            "password_encrypted": self._encrypt("password_encrypted", dvr_id, password),
        }
        return await insert_row(self.conn, "dvrs", values, Dvr, _DVR_COLUMNS, "dvr")

    async def get(self, dvr_id: UUID | str) -> Dvr:
        dvr_id = as_uuid("dvr_id", dvr_id)
        dvr = await fetch_one(self.conn, Dvr, sql.SQL("SELECT {} FROM dvrs WHERE id = %s").format(_DVR_COLUMNS),
                              (dvr_id,))
        if dvr is None:
            raise NotFound("dvr", dvr_id)
        return dvr

    async def list(self, *, site_id: UUID | str | None = None, status: str | None = None, page_size: int = 0,
                   page_token: str | None = None) -> Page[Dvr]:
        where, params = [], []
        if site_id is not None:
            where.append(sql.SQL("site_id = %s"))
            params.append(as_uuid("site_id", site_id))
        if status is not None:
            where.append(sql.SQL("status = %s::device_status_enum"))
            params.append(status)
        return await fetch_page(self.conn, Dvr, select=_DVR_COLUMNS, table="dvrs", where=where, params=params,
                                keyset=BY_NAME, page_size=page_size, page_token=page_token, resource="dvr",
                                values={"status": status})

    async def update(self, dvr_id: UUID | str, changes: dict[str, Any]) -> Dvr:
        """Credentials are not updatable here: set_credentials() encrypts them."""
        check_updatable("dvr", changes, _DVR_UPDATABLE)
        values = dict(changes)
        if "ip_address" in values:
            values["ip_address"] = _ip(values["ip_address"])
        if "ports" in values:
            values["ports"] = Jsonb(values["ports"] or {})
        if "last_seen" in values:
            aware("last_seen", values["last_seen"])
        return await update_row(self.conn, "dvrs", as_uuid("dvr_id", dvr_id), values, Dvr, _DVR_COLUMNS, "dvr")

    async def set_credentials(self, dvr_id: UUID | str, username: str | None, password: str | None) -> None:
        dvr_id = as_uuid("dvr_id", dvr_id)
        async with guarded(self.conn, "dvr"):
            cur = await self.conn.execute(
                "UPDATE dvrs SET username_encrypted = %s, password_encrypted = %s WHERE id = %s",
                (self._encrypt("username_encrypted", dvr_id, username),
                 self._encrypt("password_encrypted", dvr_id, password), dvr_id))
        if cur.rowcount == 0:
            raise NotFound("dvr", dvr_id)

    async def credentials(self, dvr_id: UUID | str) -> DvrCredentials:
        """Decrypts on demand; only the component that connects to the DVR should call this."""
        dvr_id = as_uuid("dvr_id", dvr_id)
        cur = await self.conn.execute("SELECT username_encrypted, password_encrypted FROM dvrs WHERE id = %s",
                                      (dvr_id,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound("dvr", dvr_id)

        def decrypt(column: str) -> str | None:
            blob = row[column]
            return None if blob is None else self.secrets.decrypt(bytes(blob), _secret_context(column, dvr_id))

        return DvrCredentials(decrypt("username_encrypted"), decrypt("password_encrypted"))

    async def delete(self, dvr_id: UUID | str) -> None:
        await delete_row(self.conn, "dvrs", as_uuid("dvr_id", dvr_id), "dvr")


# --------------------------------------------------------------------------- cameras

_CAMERA_COLUMNS = columns_of(Camera)
_CAMERA_UPDATABLE = ("channel_number", "name", "location", "rtsp_url", "resolution", "fps", "status", "is_active",
                     "last_frame_time", "config")
_URL_CREDENTIALS = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]+@")


def _rtsp_url(value: str | None) -> str | None:
    # the DVR's encrypted credentials are added when connecting; a URL must never carry its own
    if value is not None and _URL_CREDENTIALS.match(value):
        raise InvalidArgument("rtsp_url", "must not contain credentials; set them on the DVR")
    return value


class CameraRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def create(self, dvr_id: UUID | str, channel_number: int, name: str, *, location: str | None = None,
                     rtsp_url: str | None = None, resolution: str | None = None, fps: int | None = 25,
                     status: str = "unknown", is_active: bool = True, config: dict[str, Any] | None = None) -> Camera:
        values = {
            "dvr_id": as_uuid("dvr_id", dvr_id), "channel_number": channel_number, "name": name,
            "location": location, "rtsp_url": _rtsp_url(rtsp_url), "resolution": resolution, "fps": fps,
            "status": status, "is_active": is_active, "config": Jsonb(config or {}),
        }
        return await insert_row(self.conn, "cameras", values, Camera, _CAMERA_COLUMNS, "camera")

    async def get(self, camera_id: UUID | str) -> Camera:
        camera_id = as_uuid("camera_id", camera_id)
        camera = await fetch_one(self.conn, Camera,
                                 sql.SQL("SELECT {} FROM cameras WHERE id = %s").format(_CAMERA_COLUMNS), (camera_id,))
        if camera is None:
            raise NotFound("camera", camera_id)
        return camera

    async def list(self, *, site_id: UUID | str | None = None, dvr_id: UUID | str | None = None,
                   status: str | None = None, is_active: bool | None = None, page_size: int = 0,
                   page_token: str | None = None) -> Page[Camera]:
        where, params = [], []
        if site_id is not None:
            where.append(sql.SQL("dvr_id IN (SELECT id FROM dvrs WHERE site_id = %s)"))
            params.append(as_uuid("site_id", site_id))
        if dvr_id is not None:
            where.append(sql.SQL("dvr_id = %s"))
            params.append(as_uuid("dvr_id", dvr_id))
        if status is not None:
            where.append(sql.SQL("status = %s::device_status_enum"))
            params.append(status)
        if is_active is not None:
            where.append(sql.SQL("is_active = %s"))
            params.append(is_active)
        return await fetch_page(self.conn, Camera, select=_CAMERA_COLUMNS, table="cameras", where=where,
                                params=params, keyset=BY_NAME, page_size=page_size, page_token=page_token,
                                resource="camera", values={"status": status})

    async def update(self, camera_id: UUID | str, changes: dict[str, Any]) -> Camera:
        check_updatable("camera", changes, _CAMERA_UPDATABLE)
        values = dict(changes)
        if "rtsp_url" in values:
            values["rtsp_url"] = _rtsp_url(values["rtsp_url"])
        if "config" in values:
            values["config"] = Jsonb(values["config"] or {})
        if "last_frame_time" in values:
            aware("last_frame_time", values["last_frame_time"])
        return await update_row(self.conn, "cameras", as_uuid("camera_id", camera_id), values, Camera,
                                _CAMERA_COLUMNS, "camera")

    async def delete(self, camera_id: UUID | str) -> None:
        await delete_row(self.conn, "cameras", as_uuid("camera_id", camera_id), "camera")


# --------------------------------------------------------------------------- zones

_ZONE_COLUMNS = columns_of(Zone, polygon=sql.Identifier("polygon_points"))
_ZONE_UPDATABLE = ("name", "zone_type", "polygon", "color", "is_active")
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")


def polygon_points(polygon: Any) -> Jsonb:
    """Validate a zone polygon (>= 3 points, x and y in [0, 1]) and give its stored form.

    Points may be (x, y) pairs or {"x": .., "y": ..} objects.
    """
    try:
        points = [(p["x"], p["y"]) if isinstance(p, dict) else tuple(p) for p in polygon]
    except (TypeError, KeyError):
        raise InvalidArgument("polygon", "must be a list of (x, y) points") from None
    if len(points) < 3:
        raise InvalidArgument("polygon", f"needs at least 3 points, got {len(points)}")
    for i, point in enumerate(points):
        if len(point) != 2 or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in point):
            raise InvalidArgument("polygon", f"point {i} is not a pair of numbers")
        if not all(math.isfinite(c) and 0.0 <= c <= 1.0 for c in point):
            raise InvalidArgument("polygon", f"point {i} {point} lies outside the normalised frame [0, 1]")
    return Jsonb([{"x": float(x), "y": float(y)} for x, y in points])


def _color(value: str | None) -> str | None:
    if value is not None and not _COLOR.match(value):
        raise InvalidArgument("color", f"must be a hex colour like #FF0000, got {value!r}")
    return value


class ZoneRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def create(self, camera_id: UUID | str, name: str, zone_type: str, polygon: Any, *,
                     color: str | None = "#FF0000", is_active: bool = True) -> Zone:
        values = {"camera_id": as_uuid("camera_id", camera_id), "name": name, "zone_type": zone_type,
                  "polygon_points": polygon_points(polygon), "color": _color(color), "is_active": is_active}
        return await insert_row(self.conn, "camera_zones", values, Zone, _ZONE_COLUMNS, "zone")

    async def get(self, zone_id: UUID | str) -> Zone:
        zone_id = as_uuid("zone_id", zone_id)
        zone = await fetch_one(self.conn, Zone,
                               sql.SQL("SELECT {} FROM camera_zones WHERE id = %s").format(_ZONE_COLUMNS), (zone_id,))
        if zone is None:
            raise NotFound("zone", zone_id)
        return zone

    async def list_for_camera(self, camera_id: UUID | str, *, active_only: bool = False) -> list[Zone]:
        query = sql.SQL("SELECT {} FROM camera_zones WHERE camera_id = %s AND (is_active OR NOT %s)"
                        " ORDER BY name, id").format(_ZONE_COLUMNS)
        return await fetch_all(self.conn, Zone, query, (as_uuid("camera_id", camera_id), active_only))

    async def update(self, zone_id: UUID | str, changes: dict[str, Any]) -> Zone:
        check_updatable("zone", changes, _ZONE_UPDATABLE)
        values = dict(changes)
        if "polygon" in values:
            values["polygon_points"] = polygon_points(values.pop("polygon"))
        if "color" in values:
            values["color"] = _color(values["color"])
        return await update_row(self.conn, "camera_zones", as_uuid("zone_id", zone_id), values, Zone, _ZONE_COLUMNS,
                                "zone")

    async def delete(self, zone_id: UUID | str) -> None:
        await delete_row(self.conn, "camera_zones", as_uuid("zone_id", zone_id), "zone")
