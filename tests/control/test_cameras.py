"""CameraService through a real gRPC channel: sites, DVRs (write-only credentials), cameras and
zones; update masks, pages, force deletes, validation that writes nothing, audit rows."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from tests.nodes.builders import register_node
from vigil.api.v1 import camera_pb2 as pb
from vigil.api.v1 import camera_pb2_grpc, common_pb2
from vigil.storage.repositories.alerts import AlertRuleRepository
from vigil.storage.repositories.api_keys import ApiKeyRepository
from vigil.storage.repositories.events import EventRepository
from vigil.storage.repositories.sites import DvrRepository, SiteRepository

TRIANGLE = [common_pb2.Point(x=0.1, y=0.1), common_pb2.Point(x=0.9, y=0.1), common_pb2.Point(x=0.5, y=0.8)]
PASSWORD = "S3cret-DVR-Passw0rd"
VPN_CLIENT_CONFIG = "[Interface]\nPrivateKey = wg-private-key-do-not-leak\n"


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:8]}"


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=paths)


@pytest.fixture
def stub(channel):
    return camera_pb2_grpc.CameraServiceStub(channel)


@pytest.fixture
def admin(as_role):
    return as_role("admin")


@pytest.fixture
def root(as_role):
    """super_admin: the only role that may delete sites and cameras."""
    return as_role("super_admin")


@pytest.fixture
def app(control):
    return control[1]


async def fetch(app, query: str, params=()) -> list[dict]:
    """Rows read as the schema owner, past row-level security."""
    async with app.pool.connection() as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall()


async def key_id(app, plaintext: str) -> str:
    async with app.pool.connection() as conn:
        return str((await ApiKeyRepository(conn).authenticate(plaintext)).key.id)


async def assert_audited(app, action: str, resource_id: str, api_key_id: str) -> dict:
    rows = await fetch(app, "SELECT details, details->>'api_key_id' AS api_key_id FROM audit_logs"
                            " WHERE action = %s AND resource_id = %s", (action, resource_id))
    assert len(rows) == 1, f"{action} {resource_id}: {len(rows)} audit rows"
    assert rows[0]["api_key_id"] == api_key_id
    return rows[0]["details"]


async def refused(call, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value.details()


async def new_site(stub, metadata, **fields) -> pb.Site:
    site = pb.Site(name=unique("site"), **fields)
    return (await stub.CreateSite(pb.CreateSiteRequest(site=site), metadata=metadata)).site


async def new_dvr(stub, metadata, site_id: str, **fields) -> pb.Dvr:
    dvr = pb.Dvr(site_id=site_id, name=fields.pop("name", "nvr"), ip_address=fields.pop("ip_address", "10.0.0.5"),
                 **fields)
    return (await stub.CreateDvr(pb.CreateDvrRequest(dvr=dvr), metadata=metadata)).dvr


async def new_camera(stub, metadata, dvr_id: str, channel: int = 1, **fields) -> pb.Camera:
    camera = pb.Camera(dvr_id=dvr_id, channel_number=channel, name=fields.pop("name", f"cam {channel}"), **fields)
    return (await stub.CreateCamera(pb.CreateCameraRequest(camera=camera), metadata=metadata)).camera


async def new_zone(stub, metadata, camera_id: str, **fields) -> pb.Zone:
    zone = pb.Zone(camera_id=camera_id, name=fields.pop("name", "gate"),
                   zone_type=fields.pop("zone_type", pb.ZONE_TYPE_RESTRICTED), polygon=fields.pop("polygon", TRIANGLE),
                   **fields)
    return (await stub.CreateZone(pb.CreateZoneRequest(zone=zone), metadata=metadata)).zone


@pytest.fixture
async def chain(stub, admin):
    """A site with one DVR, one camera and one zone."""
    site = await new_site(stub, admin)
    dvr = await new_dvr(stub, admin, site.id)
    camera = await new_camera(stub, admin, dvr.id)
    zone = await new_zone(stub, admin, camera.id)
    return site, dvr, camera, zone


# --------------------------------------------------------------------------- round trips


async def test_site_round_trip_keeps_the_vpn_client_config_write_only(stub, admin, root, app, api_keys):
    admin_key = await key_id(app, api_keys["admin"])
    vpn = pb.VpnConfig(type=pb.VPN_TYPE_WIREGUARD, endpoint="vpn.example.com:51820", config=VPN_CLIENT_CONFIG)
    created = await new_site(stub, admin, address="1 Main St", timezone="Europe/London", vpn=vpn)
    assert (created.address, created.timezone, created.vpn.type) == ("1 Main St", "Europe/London",
                                                                     pb.VPN_TYPE_WIREGUARD)
    assert created.vpn.has_config and created.vpn.config == "" and created.HasField("create_time")
    assert uuid.UUID(created.id)
    await assert_audited(app, "site.create", created.id, admin_key)

    stored = (await fetch(app, "SELECT vpn_config FROM sites WHERE id = %s", (created.id,)))[0]["vpn_config"]
    assert "PrivateKey" not in str(stored) and "config_encrypted" in stored
    async with app.pool.connection() as conn:
        assert await SiteRepository(conn, app.secrets).vpn_client_config(created.id) == VPN_CLIENT_CONFIG

    got = (await stub.GetSite(pb.GetSiteRequest(id=created.id), metadata=admin)).site
    assert got == created
    assert b"PrivateKey" not in got.SerializeToString()

    renamed = created.name + " north"
    everything = pb.Site(id=created.id, name=renamed, timezone="Asia/Singapore",
                         vpn=pb.VpnConfig(type=pb.VPN_TYPE_OPENVPN, endpoint="10.1.1.1:1194"))
    updated = (await stub.UpdateSite(pb.UpdateSiteRequest(site=everything, update_mask=mask("*")),
                                     metadata=admin)).site
    assert (updated.name, updated.address, updated.timezone) == (renamed, "", "Asia/Singapore")
    assert updated.vpn.type == pb.VPN_TYPE_OPENVPN and updated.vpn.has_config  # "*" never touches the secret
    details = await assert_audited(app, "site.update", created.id, admin_key)
    assert details["changed_fields"]["name"] == renamed

    cleared = (await stub.UpdateSite(pb.UpdateSiteRequest(site=pb.Site(id=created.id, vpn=pb.VpnConfig()),
                                                          update_mask=mask("vpn.config")), metadata=admin)).site
    assert not cleared.vpn.has_config and cleared.vpn.endpoint == "10.1.1.1:1194"

    await stub.DeleteSite(pb.DeleteSiteRequest(id=created.id), metadata=root)
    await assert_audited(app, "site.delete", created.id, await key_id(app, api_keys["super_admin"]))
    await refused(stub.GetSite(pb.GetSiteRequest(id=created.id), metadata=admin), grpc.StatusCode.NOT_FOUND)


async def test_dvr_credentials_are_never_returned_and_ciphertext_at_rest(stub, admin, root, app, api_keys):
    admin_key = await key_id(app, api_keys["admin"])
    site = await new_site(stub, admin)
    credentials = pb.DvrCredentials(username="admin", password=PASSWORD)
    dvr = await new_dvr(stub, admin, site.id, brand="Hikvision", credentials=credentials,
                        ports=pb.DvrPorts(rtsp=554, sdk=8000), status=common_pb2.DEVICE_STATUS_ONLINE)
    assert dvr.has_credentials and not dvr.HasField("credentials")
    assert (dvr.brand, dvr.ip_address, dvr.ports.rtsp, dvr.ports.sdk) == ("Hikvision", "10.0.0.5", 554, 8000)
    assert not dvr.ports.HasField("http")
    assert dvr.status == common_pb2.DEVICE_STATUS_UNKNOWN  # observed, not set: ONLINE on create is ignored
    details = await assert_audited(app, "dvr.create", dvr.id, admin_key)
    assert PASSWORD not in str(details)

    raw = (await fetch(app, "SELECT username_encrypted, password_encrypted FROM dvrs WHERE id = %s", (dvr.id,)))[0]
    assert PASSWORD.encode() not in bytes(raw["password_encrypted"])
    assert b"admin" not in bytes(raw["username_encrypted"])
    async with app.pool.connection() as conn:
        stored = await DvrRepository(conn, app.secrets).credentials(dvr.id)
    assert (stored.username, stored.password) == ("admin", PASSWORD)

    got = (await stub.GetDvr(pb.GetDvrRequest(id=dvr.id), metadata=admin)).dvr
    listed = (await stub.ListDvrs(pb.ListDvrsRequest(site_ids=[site.id]), metadata=admin)).dvrs
    for returned in (got, *listed):
        assert returned.has_credentials and PASSWORD.encode() not in returned.SerializeToString()

    moved_to = await new_site(stub, admin)
    change = pb.Dvr(id=dvr.id, site_id=moved_to.id, ports=pb.DvrPorts(http=8080),
                    status=common_pb2.DEVICE_STATUS_MAINTENANCE)
    moving = pb.UpdateDvrRequest(dvr=change, update_mask=mask("site_id", "ports.http", "status"))
    updated = (await stub.UpdateDvr(moving, metadata=admin)).dvr
    assert (updated.site_id, updated.ports.rtsp, updated.ports.http) == (moved_to.id, 554, 8080)
    assert updated.status == common_pb2.DEVICE_STATUS_MAINTENANCE and updated.has_credentials
    await assert_audited(app, "dvr.update", dvr.id, admin_key)

    online = pb.Dvr(id=dvr.id, status=common_pb2.DEVICE_STATUS_ONLINE)
    details = await refused(stub.UpdateDvr(pb.UpdateDvrRequest(dvr=online, update_mask=mask("status")),
                                           metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("dvr.status:")

    without = (await stub.UpdateDvr(pb.UpdateDvrRequest(dvr=pb.Dvr(id=dvr.id), update_mask=mask("credentials")),
                                    metadata=admin)).dvr
    assert not without.has_credentials and without.name == "nvr"
    await stub.DeleteDvr(pb.DeleteDvrRequest(id=dvr.id), metadata=root)
    await refused(stub.GetDvr(pb.GetDvrRequest(id=dvr.id), metadata=admin), grpc.StatusCode.NOT_FOUND)


async def test_camera_round_trip(stub, admin, root, app, api_keys):
    admin_key = await key_id(app, api_keys["admin"])
    site = await new_site(stub, admin)
    dvr = await new_dvr(stub, admin, site.id)
    config = pb.CameraConfig(sensitivity=0.7, min_face_size=40, codec="h265")
    camera = await new_camera(stub, admin, dvr.id, channel=3, name="lobby", rtsp_url="rtsp://10.0.0.5:554/ch3",
                              resolution="1920x1080", config=config)
    assert (camera.site_id, camera.dvr_id, camera.channel_number, camera.fps) == (site.id, dvr.id, 3, 25)
    assert camera.is_active and camera.status == common_pb2.DEVICE_STATUS_UNKNOWN and camera.node_id == ""
    assert math.isclose(camera.config.sensitivity, 0.7, rel_tol=1e-6) and camera.config.codec == "h265"
    assert not camera.config.HasField("night_mode")  # unset: the server default
    assert (await fetch(app, "SELECT config FROM cameras WHERE id = %s", (camera.id,)))[0]["config"] == {
        "sensitivity": 0.7, "min_face_size": 40, "codec": "h265"}
    await assert_audited(app, "camera.create", camera.id, admin_key)
    assert (await stub.GetCamera(pb.GetCameraRequest(id=camera.id), metadata=admin)).camera == camera

    change = pb.Camera(id=camera.id, name="lobby west", config=pb.CameraConfig(night_mode=True), is_active=False)
    updated = (await stub.UpdateCamera(pb.UpdateCameraRequest(
        camera=change, update_mask=mask("name", "config.night_mode", "config.codec", "is_active")),
        metadata=admin)).camera
    assert (updated.name, updated.is_active, updated.config.night_mode) == ("lobby west", False, True)
    assert updated.config.min_face_size == 40 and updated.config.codec == ""  # named and empty: back to detection
    assert updated.rtsp_url == camera.rtsp_url
    await assert_audited(app, "camera.update", camera.id, admin_key)

    taken = pb.Camera(dvr_id=dvr.id, channel_number=3, name="duplicate")
    await refused(stub.CreateCamera(pb.CreateCameraRequest(camera=taken), metadata=admin),
                  grpc.StatusCode.ALREADY_EXISTS)
    inactive = (await stub.ListCameras(pb.ListCamerasRequest(site_ids=[site.id], is_active=False),
                                       metadata=admin)).cameras
    assert [c.id for c in inactive] == [camera.id]

    await stub.DeleteCamera(pb.DeleteCameraRequest(id=camera.id), metadata=root)
    await assert_audited(app, "camera.delete", camera.id, await key_id(app, api_keys["super_admin"]))
    await refused(stub.GetCamera(pb.GetCameraRequest(id=camera.id), metadata=admin), grpc.StatusCode.NOT_FOUND)


async def test_zone_round_trip(stub, admin, root, app, api_keys, chain):
    admin_key = await key_id(app, api_keys["admin"])
    _, _, camera, zone = chain
    assert (zone.camera_id, zone.zone_type, zone.color, zone.is_active) == (camera.id, pb.ZONE_TYPE_RESTRICTED,
                                                                             "#FF0000", True)
    assert [(p.x, p.y) for p in zone.polygon] == [(p.x, p.y) for p in TRIANGLE]
    stored = (await fetch(app, "SELECT polygon_points FROM camera_zones WHERE id = %s", (zone.id,)))[0]
    assert stored["polygon_points"][0] == {"x": 0.1, "y": 0.1}  # the float32 read back as the decimal sent
    await assert_audited(app, "zone.create", zone.id, admin_key)

    square = [common_pb2.Point(x=x, y=y) for x, y in ((0, 0), (1, 0), (1, 1), (0, 1))]
    change = pb.Zone(id=zone.id, polygon=square, zone_type=pb.ZONE_TYPE_INTEREST, color="#00FF00")
    updated = (await stub.UpdateZone(pb.UpdateZoneRequest(zone=change, update_mask=mask("polygon", "zone_type")),
                                     metadata=admin)).zone
    assert len(updated.polygon) == 4 and updated.zone_type == pb.ZONE_TYPE_INTEREST and updated.color == "#FF0000"
    await assert_audited(app, "zone.update", zone.id, admin_key)
    assert (await stub.GetZone(pb.GetZoneRequest(id=zone.id), metadata=admin)).zone == updated

    entry = await new_zone(stub, admin, camera.id, name="door", zone_type=pb.ZONE_TYPE_ENTRY, is_active=False)
    listed = (await stub.ListZones(pb.ListZonesRequest(camera_ids=[camera.id]), metadata=admin)).zones
    assert [z.name for z in listed] == ["door", "gate"]  # by camera, then name
    inactive = (await stub.ListZones(pb.ListZonesRequest(camera_ids=[camera.id], is_active=False),
                                     metadata=admin)).zones
    assert [z.id for z in inactive] == [entry.id]

    await stub.DeleteZone(pb.DeleteZoneRequest(id=zone.id), metadata=root)
    await assert_audited(app, "zone.delete", zone.id, await key_id(app, api_keys["super_admin"]))
    await refused(stub.GetZone(pb.GetZoneRequest(id=zone.id), metadata=admin), grpc.StatusCode.NOT_FOUND)


# --------------------------------------------------------------------------- pages and masks


async def test_lists_page_in_order_and_tokens_keep_their_filters(stub, admin):
    prefix = unique("paged")
    for name in ("e", "c", "a", "d", "b"):
        await stub.CreateSite(pb.CreateSiteRequest(site=pb.Site(name=f"{prefix} {name}")), metadata=admin)
    seen, token, pages = [], "", 0
    while True:
        page = await stub.ListSites(pb.ListSitesRequest(name_contains=prefix.upper(), page_size=2, page_token=token),
                                    metadata=admin)
        seen += [s.name for s in page.sites]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3 and seen == [f"{prefix} {n}" for n in "abcde"]

    first = await stub.ListSites(pb.ListSitesRequest(name_contains=prefix, page_size=2), metadata=admin)
    other_filter = pb.ListSitesRequest(name_contains=prefix + " a", page_token=first.next_page_token)
    details = await refused(stub.ListSites(other_filter, metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("page_token:")
    details = await refused(stub.ListSites(pb.ListSitesRequest(page_size=-1), metadata=admin),
                            grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("page_size:")

    site = await new_site(stub, admin)
    dvr = await new_dvr(stub, admin, site.id)
    for channel in (5, 1, 4, 2, 3):
        await new_camera(stub, admin, dvr.id, channel=channel)
    channels, token = [], ""
    while True:
        page = await stub.ListCameras(pb.ListCamerasRequest(dvr_ids=[dvr.id], page_size=2, page_token=token),
                                      metadata=admin)
        channels += [c.channel_number for c in page.cameras]
        token = page.next_page_token
        if not token:
            break
    assert channels == [1, 2, 3, 4, 5]


async def test_update_masks(stub, admin, chain):
    site, _, camera, _ = chain

    async def update_site(*paths, **fields):
        request = pb.UpdateSiteRequest(site=pb.Site(id=site.id, **fields), update_mask=mask(*paths))
        return (await stub.UpdateSite(request, metadata=admin)).site

    for paths in ((), ("nickname",), ("create_time",), ("id",), ("*", "name"), ("vpn.has_config",)):
        details = await refused(update_site(*paths, name="x"), grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith("update_mask:"), (paths, details)

    addressed = await update_site("address", address="2 Side St", name="ignored: not in the mask")
    assert (addressed.name, addressed.address) == (site.name, "2 Side St")
    with_vpn = await update_site("vpn.type", vpn=pb.VpnConfig(type=pb.VPN_TYPE_WIREGUARD))
    assert with_vpn.vpn.type == pb.VPN_TYPE_WIREGUARD
    everything = await update_site("*", name=site.name)  # "*": every field, unset ones cleared
    assert (everything.address, everything.timezone, everything.HasField("vpn")) == ("", "UTC", False)

    details = await refused(stub.UpdateCamera(pb.UpdateCameraRequest(
        camera=pb.Camera(id=camera.id, dvr_id=str(uuid.uuid4())), update_mask=mask("dvr_id")), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("update_mask:") and "dvr_id" in details


# --------------------------------------------------------------------------- pipeline nodes


async def _node_of(stub, admin, camera_id: str) -> str:
    return (await stub.GetCamera(pb.GetCameraRequest(id=camera_id), metadata=admin)).camera.node_id


async def _until_node(stub, admin, app, camera_id: str, expected: str, timeout_s: float = 15.0) -> None:
    """Wake the reconciler until GetCamera shows the camera on `expected` ("" = on none)."""
    async with asyncio.timeout(timeout_s):
        while (await _node_of(stub, admin, camera_id)) != expected:
            app.nodes.reconciler.wake()
            await asyncio.sleep(0.2)


async def test_cameras_show_their_node_and_list_by_node(stub, admin, app, as_role, channel, db):
    # the test's own fleet: nodes of earlier tests leave it (their records stay, OFFLINE)
    db.execute("UPDATE pipeline_nodes SET state = 'offline' WHERE state <> 'offline'")
    assignable = db.execute("SELECT count(*) FROM cameras WHERE is_active AND rtsp_url IS NOT NULL"
                            " AND btrim(rtsp_url) <> ''").fetchone()[0]
    site = await new_site(stub, admin)
    dvr = await new_dvr(stub, admin, site.id)
    streamed = [await new_camera(stub, admin, dvr.id, channel=n, rtsp_url=f"rtsp://10.0.0.5/ch{n}") for n in (2, 1)]
    idle = await new_camera(stub, admin, dvr.id, channel=3)  # no stream URL: never assigned
    node_id = str(uuid.uuid4())
    await register_node(channel, as_role("api_client"), node_id, capacity=assignable + 10)
    try:
        for camera in streamed:
            await _until_node(stub, admin, app, camera.id, node_id)
        assert await _node_of(stub, admin, idle.id) == ""

        listed = (await stub.ListCameras(pb.ListCamerasRequest(dvr_ids=[dvr.id]), metadata=admin)).cameras
        assert [(c.channel_number, c.node_id) for c in listed] == [(1, node_id), (2, node_id), (3, "")]

        # node_ids: only the cameras on those nodes, with the other filters and through pages
        seen, token = [], ""
        while True:
            page = await stub.ListCameras(pb.ListCamerasRequest(node_ids=[node_id], dvr_ids=[dvr.id], page_size=1,
                                                                page_token=token), metadata=admin)
            seen += [(c.channel_number, c.node_id) for c in page.cameras]
            token = page.next_page_token
            if not token:
                break
        assert seen == [(1, node_id), (2, node_id)]
        on_node = (await stub.ListCameras(pb.ListCamerasRequest(node_ids=[node_id], page_size=1000),
                                          metadata=admin)).cameras
        assert {c.id for c in streamed} <= {c.id for c in on_node} and idle.id not in {c.id for c in on_node}
        assert {c.node_id for c in on_node} == {node_id}
        nobody = pb.ListCamerasRequest(node_ids=[str(uuid.uuid4())], dvr_ids=[dvr.id])
        assert not (await stub.ListCameras(nobody, metadata=admin)).cameras
        details = await refused(stub.ListCameras(pb.ListCamerasRequest(node_ids=["node-1"]), metadata=admin),
                                grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith("node_ids"), details

        # the node leaves the fleet: its cameras are on no node again
        db.execute("UPDATE pipeline_nodes SET state = 'offline' WHERE id = %s", (node_id,))
        await _until_node(stub, admin, app, streamed[0].id, "")
        assert not (await stub.ListCameras(pb.ListCamerasRequest(node_ids=[node_id]), metadata=admin)).cameras
    finally:
        db.execute("UPDATE pipeline_nodes SET state = 'offline' WHERE id = %s", (node_id,))
        db.execute("DELETE FROM stream_assignments WHERE node_id = %s", (node_id,))


# --------------------------------------------------------------------------- deletes


async def _add_user(app) -> uuid.UUID:
    user_id = uuid.uuid4()
    await fetch(app, "INSERT INTO users (id, username, email, password_hash, role_id)"
                     " SELECT %s, %s, %s, 'not-a-real-hash', id FROM roles WHERE name = 'admin' RETURNING id",
                (user_id, f"cam-test-{user_id.hex[:12]}", f"{user_id.hex[:12]}@cam-test.invalid"))
    return user_id


async def test_deleting_a_parent_with_children_needs_force(stub, admin, root, app, chain):
    site, dvr, camera, zone = chain
    for call in (stub.DeleteSite(pb.DeleteSiteRequest(id=site.id), metadata=root),
                 stub.DeleteDvr(pb.DeleteDvrRequest(id=dvr.id), metadata=root)):
        await refused(call, grpc.StatusCode.FAILED_PRECONDITION)

    async with app.pool.connection() as conn:
        event = await EventRepository(conn).insert(camera.id, "human_detected", datetime.now(UTC), 0.9,
                                                   {"x": 0.1, "y": 0.1, "width": 0.2, "height": 0.3})
        rule = await AlertRuleRepository(conn).create("gate at night", await _add_user(app), camera_id=camera.id,
                                                      zone_id=zone.id)
    details = await refused(stub.DeleteCamera(pb.DeleteCameraRequest(id=camera.id), metadata=root),
                            grpc.StatusCode.FAILED_PRECONDITION)
    assert "force" in details
    details = await refused(stub.DeleteZone(pb.DeleteZoneRequest(id=zone.id), metadata=root),
                            grpc.StatusCode.FAILED_PRECONDITION)
    assert "alert rules" in details
    deletions = await fetch(app, "SELECT count(*) AS n FROM audit_logs WHERE resource_id = ANY(%s)"
                                 " AND action LIKE '%%.delete'", ([site.id, dvr.id, camera.id, zone.id],))
    assert deletions[0]["n"] == 0

    await stub.DeleteSite(pb.DeleteSiteRequest(id=site.id, force=True), metadata=root)
    for call in (stub.GetDvr(pb.GetDvrRequest(id=dvr.id), metadata=admin),
                 stub.GetCamera(pb.GetCameraRequest(id=camera.id), metadata=admin),
                 stub.GetZone(pb.GetZoneRequest(id=zone.id), metadata=admin)):
        await refused(call, grpc.StatusCode.NOT_FOUND)
    assert await fetch(app, "SELECT id FROM events WHERE id = %s", (event.id,)) == []
    assert await fetch(app, "SELECT id FROM alert_rules WHERE id = %s", (rule.id,)) == []


async def test_force_deletes_a_dvr_with_its_cameras(stub, admin, root, chain):
    _, dvr, camera, _ = chain
    await stub.DeleteDvr(pb.DeleteDvrRequest(id=dvr.id, force=True), metadata=root)
    await refused(stub.GetCamera(pb.GetCameraRequest(id=camera.id), metadata=admin), grpc.StatusCode.NOT_FOUND)


async def test_deletes_follow_the_role_grants(stub, admin, as_role, chain):
    site, _, camera, _ = chain
    await refused(stub.DeleteSite(pb.DeleteSiteRequest(id=site.id, force=True), metadata=admin),
                  grpc.StatusCode.PERMISSION_DENIED)  # admins may write sites, not delete them
    change = pb.UpdateCameraRequest(camera=pb.Camera(id=camera.id, name="x"), update_mask=mask("name"))
    await refused(stub.UpdateCamera(change, metadata=as_role("operator")), grpc.StatusCode.PERMISSION_DENIED)


# --------------------------------------------------------------------------- bad input


def _point(x: float, y: float) -> common_pb2.Point:
    return common_pb2.Point(x=x, y=y)


def _zone(camera_id: str, **fields) -> pb.CreateZoneRequest:
    values = {"camera_id": camera_id, "name": "z", "zone_type": pb.ZONE_TYPE_RESTRICTED, "polygon": TRIANGLE,
              **fields}
    return pb.CreateZoneRequest(zone=pb.Zone(**values))


def _camera(dvr_id: str, **fields) -> pb.CreateCameraRequest:
    return pb.CreateCameraRequest(camera=pb.Camera(**{"dvr_id": dvr_id, "channel_number": 9, "name": "c", **fields}))


def _dvr(site_id: str, **fields) -> pb.CreateDvrRequest:
    return pb.CreateDvrRequest(dvr=pb.Dvr(**{"site_id": site_id, "name": "d", "ip_address": "10.0.0.9", **fields}))


INVALID_CREATES = {
    "camera.dvr_id": ("CreateCamera", lambda c: _camera("not-a-uuid")),
    "zone.polygon (2 points)": ("CreateZone", lambda c: _zone(c["camera"], polygon=TRIANGLE[:2])),
    "zone.polygon (1.5)": ("CreateZone", lambda c: _zone(c["camera"], polygon=[*TRIANGLE[:2], _point(1.5, 0.5)])),
    "zone.polygon (NaN)": ("CreateZone", lambda c: _zone(c["camera"], polygon=[*TRIANGLE[:2], _point(math.nan, 0.5)])),
    "zone.polygon (crossing)": ("CreateZone", lambda c: _zone(c["camera"], polygon=[
        _point(0, 0), _point(1, 1), _point(1, 0), _point(0, 1)])),
    "zone.zone_type": ("CreateZone", lambda c: _zone(c["camera"], zone_type=pb.ZONE_TYPE_UNSPECIFIED)),
    "zone.color": ("CreateZone", lambda c: _zone(c["camera"], color="red")),
    "zone.camera_id": ("CreateZone", lambda c: _zone("camera-1")),
    "site.name": ("CreateSite", lambda c: pb.CreateSiteRequest(site=pb.Site(name="x" * 101))),
    "site.name (empty)": ("CreateSite", lambda c: pb.CreateSiteRequest(site=pb.Site())),
    "site.timezone": ("CreateSite", lambda c: pb.CreateSiteRequest(site=pb.Site(name=unique("s"),
                                                                                timezone="Mars/Olympus"))),
    "site.vpn.type": ("CreateSite", lambda c: pb.CreateSiteRequest(site=pb.Site(
        name=unique("s"), vpn=pb.VpnConfig(endpoint="vpn.example.com:51820")))),
    "site.vpn.endpoint": ("CreateSite", lambda c: pb.CreateSiteRequest(site=pb.Site(
        name=unique("s"), vpn=pb.VpnConfig(type=pb.VPN_TYPE_WIREGUARD, endpoint="vpn.example.com")))),
    "dvr.ip_address": ("CreateDvr", lambda c: _dvr(c["site"], ip_address="10.0.0.256")),
    "dvr.ports.rtsp": ("CreateDvr", lambda c: _dvr(c["site"], ports=pb.DvrPorts(rtsp=70000))),
    "dvr.credentials.username": ("CreateDvr", lambda c: _dvr(c["site"], credentials=pb.DvrCredentials(password="p"))),
    "dvr.name": ("CreateDvr", lambda c: _dvr(c["site"], name="\x00")),
    "camera.channel_number": ("CreateCamera", lambda c: _camera(c["dvr"], channel_number=2000)),
    "camera.fps": ("CreateCamera", lambda c: _camera(c["dvr"], fps=500)),
    "camera.rtsp_url": ("CreateCamera", lambda c: _camera(c["dvr"], rtsp_url="rtsp://admin:pw@10.0.0.5/ch9")),
    "camera.resolution": ("CreateCamera", lambda c: _camera(c["dvr"], resolution="full hd")),
    "camera.config.sensitivity": ("CreateCamera", lambda c: _camera(c["dvr"], config=pb.CameraConfig(sensitivity=1.5))),
    "camera.config.min_face_size": ("CreateCamera", lambda c: _camera(c["dvr"],
                                                                      config=pb.CameraConfig(min_face_size=8))),
}


async def _table_sizes(app) -> dict:
    return (await fetch(app, "SELECT (SELECT count(*) FROM sites) AS sites, (SELECT count(*) FROM dvrs) AS dvrs,"
                             " (SELECT count(*) FROM cameras) AS cameras, (SELECT count(*) FROM camera_zones) AS zones,"
                             " (SELECT count(*) FROM audit_logs) AS audit"))[0]


@pytest.mark.parametrize("case", INVALID_CREATES, ids=str)
async def test_invalid_create_names_the_field_and_writes_nothing(stub, admin, app, chain, case):
    site, dvr, camera, _ = chain
    method, build = INVALID_CREATES[case]
    request = build({"site": site.id, "dvr": dvr.id, "camera": camera.id})
    before = await _table_sizes(app)
    details = await refused(getattr(stub, method)(request, metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith(case.split(" ")[0] + ":"), details
    assert await _table_sizes(app) == before


async def test_invalid_update_changes_nothing(stub, admin, app, chain):
    _, dvr, camera, zone = chain
    before = await _table_sizes(app)
    updates = (
        ("zone.polygon", stub.UpdateZone(pb.UpdateZoneRequest(
            zone=pb.Zone(id=zone.id, name="moved", polygon=TRIANGLE[:2]), update_mask=mask("name", "polygon")),
            metadata=admin)),
        ("camera.config.sensitivity", stub.UpdateCamera(pb.UpdateCameraRequest(
            camera=pb.Camera(id=camera.id, name="renamed", config=pb.CameraConfig(sensitivity=math.inf)),
            update_mask=mask("name", "config.sensitivity")), metadata=admin)),
        ("dvr.site_id", stub.UpdateDvr(pb.UpdateDvrRequest(dvr=pb.Dvr(id=dvr.id, site_id="site-2"),
                                                           update_mask=mask("site_id")), metadata=admin)),
        ("camera.id", stub.UpdateCamera(pb.UpdateCameraRequest(camera=pb.Camera(id="7"), update_mask=mask("name")),
                                        metadata=admin)),
    )
    for field, call in updates:
        details = await refused(call, grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith(f"{field}:"), details
    assert await _table_sizes(app) == before
    assert (await stub.GetZone(pb.GetZoneRequest(id=zone.id), metadata=admin)).zone == zone
    assert (await stub.GetCamera(pb.GetCameraRequest(id=camera.id), metadata=admin)).camera == camera


async def test_bad_ids_and_filters_are_invalid_missing_ones_not_found(stub, admin, root, chain):
    _, dvr, camera, _ = chain
    details = await refused(stub.GetSite(pb.GetSiteRequest(id="site-1"), metadata=admin),
                            grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("id:")
    for request, field in ((pb.ListDvrsRequest(statuses=[common_pb2.DEVICE_STATUS_UNSPECIFIED]), "statuses"),
                           (pb.ListDvrsRequest(site_ids=["x"]), "site_ids")):
        details = await refused(stub.ListDvrs(request, metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith(f"{field}:")

    missing = str(uuid.uuid4())
    for call in (stub.GetSite(pb.GetSiteRequest(id=missing), metadata=admin),
                 stub.GetDvr(pb.GetDvrRequest(id=missing), metadata=admin),
                 stub.GetCamera(pb.GetCameraRequest(id=missing), metadata=admin),
                 stub.GetZone(pb.GetZoneRequest(id=missing), metadata=admin),
                 stub.UpdateZone(pb.UpdateZoneRequest(zone=pb.Zone(id=missing, name="z"), update_mask=mask("name")),
                                 metadata=admin),
                 stub.DeleteZone(pb.DeleteZoneRequest(id=missing), metadata=root),
                 stub.CreateCamera(_camera(missing), metadata=admin),
                 stub.CreateZone(_zone(missing), metadata=admin)):
        await refused(call, grpc.StatusCode.NOT_FOUND)


async def test_zone_thresholds_are_stored_returned_and_bounded_by_the_analytics_using_them(stub, admin, chain, app):
    _, _, camera, zone = chain
    thresholds = pb.ZoneThresholds(crowd_threshold=5, loiter_threshold=duration_pb2.Duration(seconds=90))
    created = (await stub.CreateZone(_zone(camera.id, zone_type=pb.ZONE_TYPE_INTEREST, thresholds=thresholds),
                                     metadata=admin)).zone
    assert created.thresholds == thresholds
    assert (await stub.GetZone(pb.GetZoneRequest(id=created.id), metadata=admin)).zone == created
    stored = await fetch(app, "SELECT dwell_threshold_seconds, loiter_threshold_seconds, crowd_threshold"
                              " FROM camera_zones WHERE id = %s", (created.id,))
    assert stored == [{"dwell_threshold_seconds": None, "loiter_threshold_seconds": 90.0, "crowd_threshold": 5}]

    # one part set, one unset (absent from the request), the third kept
    updated = (await stub.UpdateZone(pb.UpdateZoneRequest(
        zone=pb.Zone(id=created.id, thresholds=pb.ZoneThresholds(dwell_threshold=duration_pb2.Duration(seconds=30))),
        update_mask=mask("thresholds.dwell_threshold", "thresholds.crowd_threshold")), metadata=admin)).zone
    assert updated.thresholds == pb.ZoneThresholds(dwell_threshold=duration_pb2.Duration(seconds=30),
                                                   loiter_threshold=duration_pb2.Duration(seconds=90))
    cleared = (await stub.UpdateZone(pb.UpdateZoneRequest(zone=pb.Zone(id=created.id), update_mask=mask("thresholds")),
                                     metadata=admin)).zone
    assert not cleared.HasField("thresholds") or cleared.thresholds == pb.ZoneThresholds()

    # bounds: those of the parameters falling back to the threshold (crowding min_persons >= 2,
    # loitering min_duration <= 24 h)
    for bad, field in ((pb.ZoneThresholds(crowd_threshold=1), "zone.thresholds.crowd_threshold"),
                       (pb.ZoneThresholds(loiter_threshold=duration_pb2.Duration(seconds=86401)),
                        "zone.thresholds.loiter_threshold")):
        details = await refused(stub.CreateZone(_zone(camera.id, thresholds=bad), metadata=admin),
                                grpc.StatusCode.INVALID_ARGUMENT)
        assert details.startswith(f"{field}:") and "falls back" in details, details
    await refused(stub.UpdateZone(pb.UpdateZoneRequest(zone=pb.Zone(id=zone.id, thresholds=pb.ZoneThresholds(
        crowd_threshold=0)), update_mask=mask("thresholds.crowd_threshold")), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT)
