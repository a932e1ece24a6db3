"""Sites, their DVRs (credentials encrypted at rest), cameras and camera zones."""

from __future__ import annotations

import base64
import ipaddress
import math
import re
import uuid
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from vigil.errors import FailedPrecondition, InvalidArgument, NotFound
from vigil.storage.crypto import SecretBox
from vigil.storage.repositories.base import (
    BY_NAME,
    Keyset,
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
    uuid_list,
)
from vigil.storage.repositories.filters import Filters

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
    site_id: UUID  # of its DVR
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
    node_id: UUID | None = None  # the pipeline node it is assigned to (stream_assignments); None if none


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
    # defaults for the zone's analytics (camera.proto ZoneThresholds); None = not set
    dwell_threshold_seconds: float | None = None
    loiter_threshold_seconds: float | None = None
    crowd_threshold: int | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Zone:
        polygon = tuple((float(p["x"]), float(p["y"])) for p in row["polygon"])
        return cls(**{**row, "polygon": polygon})


# --------------------------------------------------------------------------- shared


async def _delete_unless_referenced(conn: psycopg.AsyncConnection, table: str, row_id: UUID, resource: str,
                                    referrers: sql.Composable, refusal: str) -> None:
    """Delete one row, or FailedPrecondition(refusal) while `referrers` (a query on %(id)s) finds a row.

    The row is locked first: inserting a child takes a key-share lock on it, so no child can appear
    between the check and the delete (and be cascaded away unseen).
    """
    async with guarded(conn, resource):
        locked = await conn.execute(
            sql.SQL("SELECT 1 FROM {} WHERE id = %(id)s FOR UPDATE").format(sql.Identifier(table)), {"id": row_id})
        if await locked.fetchone() is None:
            raise NotFound(resource, row_id)
        found = await conn.execute(referrers, {"id": row_id})
        if await found.fetchone() is not None:
            raise FailedPrecondition(f"{resource} {row_id} {refusal}")
        await conn.execute(sql.SQL("DELETE FROM {} WHERE id = %(id)s").format(sql.Identifier(table)), {"id": row_id})


def _like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --------------------------------------------------------------------------- sites

_SITE_COLUMNS = columns_of(Site)
_SITE_UPDATABLE = ("name", "address", "timezone", "vpn_config")
_SITE_DVRS = sql.SQL("SELECT 1 FROM dvrs WHERE site_id = %(id)s LIMIT 1")
# A VPN client configuration (it may hold private keys) is given in clear under VPN_CLIENT_CONFIG and
# stored encrypted under VPN_CLIENT_CONFIG_SEALED (base64), bound to the site's row.
VPN_CLIENT_CONFIG = "config"
VPN_CLIENT_CONFIG_SEALED = "config_encrypted"


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidArgument("timezone", f"unknown IANA time zone {value!r}") from None
    return value


def _json_or_none(value: dict[str, Any] | None) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def _site_secret_context(site_id: UUID) -> str:
    # binds the ciphertext to its row: copied to another site, it does not decrypt
    return f"sites.vpn_config:{site_id}"


class SiteRepository:
    def __init__(self, conn: psycopg.AsyncConnection, secrets: SecretBox | None = None):
        """`secrets` is needed only to store or read a VPN client configuration."""
        self.conn = conn
        self.secrets = secrets

    def _box(self) -> SecretBox:
        if self.secrets is None:
            raise ValueError("SiteRepository needs a SecretBox for VPN client configurations")
        return self.secrets

    def _sealed_vpn(self, site_id: UUID, vpn_config: dict[str, Any] | None) -> Jsonb | None:
        """The stored form of a VPN config: a client configuration given in clear under "config"
        is encrypted into "config_encrypted"; one already sealed for this site is kept as it is."""
        if vpn_config is None:
            return None
        document = dict(vpn_config)
        client_config = document.pop(VPN_CLIENT_CONFIG, None)
        if client_config is not None:
            ciphertext = self._box().encrypt(client_config, _site_secret_context(site_id))
            document[VPN_CLIENT_CONFIG_SEALED] = base64.b64encode(ciphertext).decode()
        return Jsonb(document)

    async def create(self, name: str, *, address: str | None = None, timezone: str = "UTC",
                     vpn_config: dict[str, Any] | None = None) -> Site:
        site_id = uuid.uuid4()  # known before the insert: a VPN client configuration is bound to it
        values = {"id": site_id, "name": name, "address": address, "timezone": _timezone(timezone),
                  "vpn_config": self._sealed_vpn(site_id, vpn_config)}
        return await insert_row(self.conn, "sites", values, Site, _SITE_COLUMNS, "site")

    async def get(self, site_id: UUID | str) -> Site:
        site_id = as_uuid("site_id", site_id)
        site = await fetch_one(self.conn, Site, sql.SQL("SELECT {} FROM sites WHERE id = %s").format(_SITE_COLUMNS),
                               (site_id,))
        if site is None:
            raise NotFound("site", site_id)
        return site

    async def list(self, *, name_contains: str | None = None, page_size: int = 0,
                   page_token: str | None = None) -> Page[Site]:
        """Ordered by name; `name_contains` matches case-insensitively."""
        filters = Filters()
        if name_contains:
            filters.raw("name ILIKE %s", _like_pattern(name_contains))
        return await fetch_page(self.conn, Site, select=_SITE_COLUMNS, table="sites", filters=filters,
                                keyset=BY_NAME, page_size=page_size, page_token=page_token, resource="site",
                                values={"name_contains": name_contains})

    async def update(self, site_id: UUID | str, changes: dict[str, Any]) -> Site:
        check_updatable("site", changes, _SITE_UPDATABLE)
        site_id = as_uuid("site_id", site_id)
        values = dict(changes)
        if "timezone" in values:
            values["timezone"] = _timezone(values["timezone"])
        if "vpn_config" in values:
            values["vpn_config"] = self._sealed_vpn(site_id, values["vpn_config"])
        return await update_row(self.conn, "sites", site_id, values, Site, _SITE_COLUMNS, "site")

    async def vpn_client_config(self, site_id: UUID | str) -> str | None:
        """Decrypts on demand; only the component that sets up the site's VPN should call this."""
        site = await self.get(site_id)
        sealed = (site.vpn_config or {}).get(VPN_CLIENT_CONFIG_SEALED)
        if sealed is None:
            return None
        return self._box().decrypt(base64.b64decode(sealed), _site_secret_context(site.id))

    async def delete(self, site_id: UUID | str, *, force: bool = False) -> None:
        """FailedPrecondition while the site has DVRs, unless `force`: then its DVRs, cameras, zones
        and everything recorded on them go too (ON DELETE CASCADE)."""
        site_id = as_uuid("site_id", site_id)
        if force:
            await delete_row(self.conn, "sites", site_id, "site")
        else:
            await _delete_unless_referenced(self.conn, "sites", site_id, "site", _SITE_DVRS,
                                            "still has DVRs (force deletes them too)")


# --------------------------------------------------------------------------- DVRs

_DVR_COLUMNS = columns_of(
    Dvr, has_credentials=sql.SQL("password_encrypted IS NOT NULL OR username_encrypted IS NOT NULL")
)
_DVR_UPDATABLE = ("site_id", "name", "brand", "model", "ip_address", "ports", "firmware_version", "status",
                  "last_seen")
_DVR_CAMERAS = sql.SQL("SELECT 1 FROM cameras WHERE dvr_id = %(id)s LIMIT 1")
BY_SITE_THEN_NAME = Keyset(("site_id", "name", "id"), (UUID, str, UUID), descending=False)


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

    async def list(self, *, site_ids: Iterable[UUID | str] | None = None, statuses: Iterable[str] | None = None,
                   page_size: int = 0, page_token: str | None = None) -> Page[Dvr]:
        """Ordered by site, then name. A filter left None matches everything."""
        statuses = None if statuses is None else list(statuses)
        filters = Filters().any("site_id", uuid_list("site_ids", site_ids))
        filters.any("status", statuses, cast="device_status_enum")
        return await fetch_page(self.conn, Dvr, select=_DVR_COLUMNS, table="dvrs", filters=filters,
                                keyset=BY_SITE_THEN_NAME, page_size=page_size, page_token=page_token,
                                resource="dvr", values={"statuses": statuses})

    async def update(self, dvr_id: UUID | str, changes: dict[str, Any]) -> Dvr:
        """Credentials are not updatable here: set_credentials() encrypts them."""
        check_updatable("dvr", changes, _DVR_UPDATABLE)
        values = dict(changes)
        if "site_id" in values:
            values["site_id"] = as_uuid("site_id", values["site_id"])
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

    async def delete(self, dvr_id: UUID | str, *, force: bool = False) -> None:
        """FailedPrecondition while the DVR has cameras, unless `force`: then they and everything
        recorded on them go too (ON DELETE CASCADE)."""
        dvr_id = as_uuid("dvr_id", dvr_id)
        if force:
            await delete_row(self.conn, "dvrs", dvr_id, "dvr")
        else:
            await _delete_unless_referenced(self.conn, "dvrs", dvr_id, "dvr", _DVR_CAMERAS,
                                            "still has cameras (force deletes them too)")


# --------------------------------------------------------------------------- cameras

_CAMERA_COLUMNS = columns_of(
    Camera, site_id=sql.SQL("(SELECT d.site_id FROM dvrs d WHERE d.id = cameras.dvr_id)"),
    # in the same statement (a primary-key lookup per row), so a page of cameras costs one query
    node_id=sql.SQL("(SELECT a.node_id FROM stream_assignments a WHERE a.camera_id = cameras.id)"))
_CAMERA_UPDATABLE = ("channel_number", "name", "location", "rtsp_url", "resolution", "fps", "status", "is_active",
                     "last_frame_time", "config")
_CAMERA_RECORDINGS = sql.SQL(
    "SELECT 1 FROM events WHERE camera_id = %(id)s"
    " UNION ALL SELECT 1 FROM suspicious_activity_events WHERE camera_id = %(id)s"
    " UNION ALL SELECT 1 FROM alerts WHERE camera_id = %(id)s"
    " UNION ALL SELECT 1 FROM media_files WHERE camera_id = %(id)s"
    " LIMIT 1")
BY_DVR_THEN_CHANNEL = Keyset(("dvr_id", "channel_number", "id"), (UUID, int, UUID), descending=False)
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

    async def list(self, *, site_ids: Iterable[UUID | str] | None = None,
                   dvr_ids: Iterable[UUID | str] | None = None, statuses: Iterable[str] | None = None,
                   is_active: bool | None = None, node_ids: Iterable[UUID | str] | None = None,
                   page_size: int = 0, page_token: str | None = None) -> Page[Camera]:
        """Ordered by DVR, then channel number. A filter left None matches everything; node_ids
        matches the cameras currently assigned to one of those pipeline nodes."""
        site_ids, dvr_ids = uuid_list("site_ids", site_ids), uuid_list("dvr_ids", dvr_ids)
        node_ids = uuid_list("node_ids", node_ids)
        statuses = None if statuses is None else list(statuses)
        filters = Filters()
        if site_ids is not None:
            filters.raw("dvr_id IN (SELECT id FROM dvrs WHERE site_id = ANY(%s))", site_ids)
        filters.any("dvr_id", dvr_ids).any("status", statuses, cast="device_status_enum").eq("is_active", is_active)
        if node_ids is not None:
            filters.raw("id IN (SELECT a.camera_id FROM stream_assignments a WHERE a.node_id = ANY(%s))", node_ids)
        return await fetch_page(self.conn, Camera, select=_CAMERA_COLUMNS, table="cameras", filters=filters,
                                keyset=BY_DVR_THEN_CHANNEL, page_size=page_size,
                                page_token=page_token, resource="camera", values={"statuses": statuses})

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

    async def delete(self, camera_id: UUID | str, *, force: bool = False) -> None:
        """FailedPrecondition while the camera has events, alerts or media, unless `force`: then
        they go too, with its zones (ON DELETE CASCADE)."""
        camera_id = as_uuid("camera_id", camera_id)
        if force:
            await delete_row(self.conn, "cameras", camera_id, "camera")
        else:
            await _delete_unless_referenced(self.conn, "cameras", camera_id, "camera", _CAMERA_RECORDINGS,
                                            "still has events, alerts or media (force deletes them too)")


# --------------------------------------------------------------------------- zones

_ZONE_COLUMNS = columns_of(Zone, polygon=sql.Identifier("polygon_points"))
ZONE_THRESHOLD_COLUMNS = ("dwell_threshold_seconds", "loiter_threshold_seconds", "crowd_threshold")
_ZONE_UPDATABLE = ("name", "zone_type", "polygon", "color", "is_active", *ZONE_THRESHOLD_COLUMNS)
_ZONE_RULES = sql.SQL("SELECT 1 FROM alert_rules WHERE zone_id = %(id)s LIMIT 1")
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
MAX_POLYGON_POINTS = 100
BY_CAMERA_THEN_NAME = Keyset(("camera_id", "name", "id"), (UUID, str, UUID), descending=False)


def polygon_points(polygon: Any) -> Jsonb:
    """Validate a zone polygon (3..100 points, x and y in [0, 1], not crossing itself) and give its
    stored form.

    Points may be (x, y) pairs or {"x": .., "y": ..} objects.
    """
    try:
        points = [(p["x"], p["y"]) if isinstance(p, dict) else tuple(p) for p in polygon]
    except (TypeError, KeyError):
        raise InvalidArgument("polygon", "must be a list of (x, y) points") from None
    if not 3 <= len(points) <= MAX_POLYGON_POINTS:
        raise InvalidArgument("polygon", f"needs 3 to {MAX_POLYGON_POINTS} points, got {len(points)}")
    for i, point in enumerate(points):
        if len(point) != 2 or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in point):
            raise InvalidArgument("polygon", f"point {i} is not a pair of numbers")
        if not all(math.isfinite(c) and 0.0 <= c <= 1.0 for c in point):
            raise InvalidArgument("polygon", f"point {i} {point} lies outside the normalised frame [0, 1]")
    if (problem := _self_intersection(points)) is not None:
        raise InvalidArgument("polygon", problem)
    return Jsonb([{"x": float(x), "y": float(y)} for x, y in points])


def _cross(o: Point, a: Point, b: Point) -> float:
    """> 0 when o→a→b turns left, < 0 when it turns right, 0 when the three are collinear."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _folds_back(corner: Point, a: Point, b: Point) -> bool:
    """Edges corner→a and corner→b run along each other (collinear, same direction)."""
    same_direction = (a[0] - corner[0]) * (b[0] - corner[0]) + (a[1] - corner[1]) * (b[1] - corner[1]) > 0
    return _cross(corner, a, b) == 0 and same_direction


def _within_box(p: Point, a: Point, b: Point) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_meet(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Segments a-b and c-d cross or touch."""
    d1, d2, d3, d4 = _cross(c, d, a), _cross(c, d, b), _cross(a, b, c), _cross(a, b, d)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return True
    return ((d1 == 0 and _within_box(a, c, d)) or (d2 == 0 and _within_box(b, c, d))
            or (d3 == 0 and _within_box(c, a, b)) or (d4 == 0 and _within_box(d, a, b)))


def _self_intersection(points: list[Point]) -> str | None:
    """Why the closed polygon through `points` is not simple, or None when it is."""
    n = len(points)
    for i in range(n):
        if points[i] == points[(i + 1) % n]:
            return f"point {(i + 1) % n} repeats point {i}"
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            (a, b), (c, d) = edges[i], edges[j]
            if j == i + 1:  # b == c is their shared corner
                meet = _folds_back(b, a, d)
            elif i == 0 and j == n - 1:  # a == d
                meet = _folds_back(a, b, c)
            else:
                meet = _segments_meet(a, b, c, d)
            if meet:
                return f"edges {i} and {j} intersect: the polygon must not cross itself"
    return None


def _color(value: str | None) -> str | None:
    if value is not None and not _COLOR.match(value):
        raise InvalidArgument("color", f"must be a hex colour like #FF0000, got {value!r}")
    return value


class ZoneRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def create(self, camera_id: UUID | str, name: str, zone_type: str, polygon: Any, *,
                     color: str | None = "#FF0000", is_active: bool = True,
                     thresholds: dict[str, float | int | None] | None = None) -> Zone:
        """thresholds: values of ZONE_THRESHOLD_COLUMNS (checked by the caller against the analytics)."""
        values = {"camera_id": as_uuid("camera_id", camera_id), "name": name, "zone_type": zone_type,
                  "polygon_points": polygon_points(polygon), "color": _color(color), "is_active": is_active,
                  **{column: (thresholds or {}).get(column) for column in ZONE_THRESHOLD_COLUMNS}}
        return await insert_row(self.conn, "camera_zones", values, Zone, _ZONE_COLUMNS, "zone")

    async def get(self, zone_id: UUID | str) -> Zone:
        zone_id = as_uuid("zone_id", zone_id)
        zone = await fetch_one(self.conn, Zone,
                               sql.SQL("SELECT {} FROM camera_zones WHERE id = %s").format(_ZONE_COLUMNS), (zone_id,))
        if zone is None:
            raise NotFound("zone", zone_id)
        return zone

    async def list(self, *, camera_ids: Iterable[UUID | str] | None = None,
                   zone_types: Iterable[str] | None = None, is_active: bool | None = None, page_size: int = 0,
                   page_token: str | None = None) -> Page[Zone]:
        """Ordered by camera, then name. A filter left None matches everything."""
        zone_types = None if zone_types is None else list(zone_types)
        filters = Filters().any("camera_id", uuid_list("camera_ids", camera_ids))
        filters.any("zone_type", zone_types, cast="zone_type_enum").eq("is_active", is_active)
        return await fetch_page(self.conn, Zone, select=_ZONE_COLUMNS, table="camera_zones", filters=filters,
                                keyset=BY_CAMERA_THEN_NAME, page_size=page_size,
                                page_token=page_token, resource="zone", values={"zone_types": zone_types})

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
        """FailedPrecondition while an alert rule names the zone: the schema would set the rule's
        zone to NULL, silently widening the rule to the whole camera."""
        await _delete_unless_referenced(self.conn, "camera_zones", as_uuid("zone_id", zone_id), "zone", _ZONE_RULES,
                                        "is still used by alert rules")
