"""Sites, DVRs (encrypted credentials), cameras (filters, pages) and zones (polygon validation)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tests.storage.builders import count, make_camera, unique
from vigil.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from vigil.storage.crypto import SecretError
from vigil.storage.repositories.alerts import AlertRuleRepository
from vigil.storage.repositories.events import EventRepository
from vigil.storage.repositories.sites import CameraRepository, DvrRepository, SiteRepository, ZoneRepository


async def test_site_crud_round_trip(conn):
    sites = SiteRepository(conn)
    site = await sites.create(unique("HQ"), address="1 Main St", timezone="Europe/London",
                              vpn_config={"type": "wireguard", "endpoint": "vpn.example:51820"})
    assert await sites.get(site.id) == site
    renamed = await sites.update(site.id, {"name": site.name + " north", "timezone": "Asia/Singapore"})
    assert (renamed.name, renamed.timezone, renamed.address) == (site.name + " north", "Asia/Singapore", "1 Main St")
    await sites.delete(site.id)
    with pytest.raises(NotFound):
        await sites.get(site.id)
    with pytest.raises(NotFound):
        await sites.delete(site.id)


async def test_site_bad_input_names_the_field(conn):
    sites = SiteRepository(conn)
    site = await sites.create(unique("dup"))
    with pytest.raises(AlreadyExists) as dup:
        await sites.create(site.name)
    assert (dup.value.resource, dup.value.field) == ("site", "name")
    with pytest.raises(InvalidArgument) as bad_zone:
        await sites.create(unique("tz"), timezone="Mars/Olympus")
    assert bad_zone.value.field == "timezone"
    with pytest.raises(InvalidArgument) as too_long:
        await sites.create("x" * 101)
    assert too_long.value.field == "name"
    with pytest.raises(InvalidArgument) as unknown:
        await sites.update(site.id, {"created_at": None})
    assert unknown.value.field == "created_at"
    with pytest.raises(InvalidArgument) as bad_id:
        await sites.get("not-a-uuid")
    assert bad_id.value.field == "site_id"
    assert (await sites.get(site.id)).name == site.name  # the transaction survived every refusal


async def test_dvr_credentials_are_ciphertext_at_rest_and_decrypt(conn, secret_box):
    site = await SiteRepository(conn).create(unique("site"))
    dvrs = DvrRepository(conn, secret_box)
    dvr = await dvrs.create(site.id, "nvr-1", "10.1.2.3", username="admin", password="S3cret-Passw0rd!",
                            brand="Hikvision", ports={"rtsp": 554})
    assert dvr.has_credentials and str(dvr.ip_address) == "10.1.2.3"
    assert "S3cret" not in repr(dvr)

    cur = await conn.execute("SELECT username_encrypted, password_encrypted FROM dvrs WHERE id = %s", (dvr.id,))
    raw = await cur.fetchone()
    assert b"S3cret-Passw0rd!" not in bytes(raw["password_encrypted"])
    assert b"admin" not in bytes(raw["username_encrypted"])

    creds = await dvrs.credentials(dvr.id)
    assert (creds.username, creds.password) == ("admin", "S3cret-Passw0rd!")
    assert "S3cret" not in repr(creds)

    await dvrs.set_credentials(dvr.id, "operator", "n3w")
    assert (await dvrs.credentials(dvr.id)).password == "n3w"
    # a ciphertext copied to another DVR's row does not decrypt there (bound to its row)
    other = await dvrs.create(site.id, "nvr-2", "10.1.2.4")
    assert not other.has_credentials
    await conn.execute("UPDATE dvrs SET password_encrypted = %s WHERE id = %s", (raw["password_encrypted"], other.id))
    with pytest.raises(SecretError):
        await dvrs.credentials(other.id)

    with pytest.raises(InvalidArgument) as update_secret:
        await dvrs.update(dvr.id, {"password_encrypted": b"x"})
    assert update_secret.value.field == "password_encrypted"
    updated = await dvrs.update(dvr.id, {"status": "online", "firmware_version": "5.7"})
    assert (updated.status, updated.firmware_version) == ("online", "5.7")
    assert [d.id for d in (await dvrs.list(site_ids=[site.id], statuses=["online"])).items] == [dvr.id]
    with pytest.raises(InvalidArgument) as bad_ip:
        await dvrs.create(site.id, "nvr-3", "999.1.1.1")
    assert bad_ip.value.field == "ip_address"
    with pytest.raises(InvalidArgument) as missing_site:
        await dvrs.create(uuid.uuid4(), "orphan", "10.9.9.9")
    assert missing_site.value.field == "site_id"
    await dvrs.delete(dvr.id)
    with pytest.raises(NotFound):
        await dvrs.credentials(dvr.id)


async def test_camera_crud_and_errors(conn, secret_box):
    camera = await make_camera(conn, secret_box, channel=1, name="lobby")
    cameras = CameraRepository(conn)
    assert await cameras.get(camera.id) == camera
    assert (camera.status, camera.fps, camera.config) == ("unknown", 25, {})

    updated = await cameras.update(camera.id, {"status": "online", "config": {"detection_enabled": True},
                                               "rtsp_url": "rtsp://10.0.0.5:554/ch1"})
    assert (updated.status, updated.config, updated.rtsp_url) == ("online", {"detection_enabled": True},
                                                                  "rtsp://10.0.0.5:554/ch1")
    with pytest.raises(AlreadyExists) as dup:
        await cameras.create(camera.dvr_id, 1, "same channel")
    assert dup.value.field == "channel_number"
    with pytest.raises(InvalidArgument) as creds_in_url:
        await cameras.create(camera.dvr_id, 2, "leaky", rtsp_url="rtsp://admin:pw@10.0.0.5/ch2")
    assert creds_in_url.value.field == "rtsp_url"
    with pytest.raises(InvalidArgument) as bad_status:
        await cameras.update(camera.id, {"status": "exploded"})
    assert bad_status.value.field == "status"
    with pytest.raises(InvalidArgument) as unknown_field:
        await cameras.update(camera.id, {"dvr_id": uuid.uuid4()})
    assert unknown_field.value.field == "dvr_id"
    with pytest.raises(InvalidArgument) as missing_dvr:
        await cameras.create(uuid.uuid4(), 1, "orphan")
    assert missing_dvr.value.field == "dvr_id"
    assert (await cameras.get(camera.id)).status == "online"  # refused updates changed nothing
    assert await count(conn, "SELECT count(*) FROM cameras WHERE dvr_id = %s", (camera.dvr_id,)) == 1

    await cameras.delete(camera.id)
    with pytest.raises(NotFound):
        await cameras.get(camera.id)


async def test_camera_pages_and_filters(conn, secret_box):
    first = await make_camera(conn, secret_box, name="cam-00")
    cameras = CameraRepository(conn)
    created = [first] + [await cameras.create(first.dvr_id, n, f"cam-{n:02d}", status="online" if n % 2 else "offline")
                         for n in range(2, 13)]
    other_site = await make_camera(conn, secret_box, name="cam-elsewhere")

    seen, token, pages = [], None, 0
    site_id = (await DvrRepository(conn, secret_box).get(first.dvr_id)).site_id
    while True:
        page = await cameras.list(site_ids=[site_id], page_size=5, page_token=token)
        seen.extend(page.items)
        pages += 1
        token = page.next_page_token
        if token is None:
            break
    assert pages == 3
    assert [c.id for c in seen] == [c.id for c in sorted(created, key=lambda c: c.channel_number)]
    assert other_site.id not in {c.id for c in seen}

    online = await cameras.list(dvr_ids=[first.dvr_id], statuses=["online"], page_size=100)
    assert {c.name for c in online.items} == {f"cam-{n:02d}" for n in range(3, 13, 2)}
    assert online.next_page_token is None

    with pytest.raises(InvalidArgument) as bad_token:
        await cameras.list(site_ids=[site_id], page_token="definitely-not-a-token")
    assert bad_token.value.field == "page_token"
    with pytest.raises(InvalidArgument) as bad_filter:
        await cameras.list(statuses=["sideways"])
    assert bad_filter.value.field == "statuses"
    with pytest.raises(InvalidArgument) as bad_size:
        await cameras.list(page_size=-1)
    assert bad_size.value.field == "page_size"


async def test_zone_crud(conn, secret_box):
    camera = await make_camera(conn, secret_box)
    zones = ZoneRepository(conn)
    zone = await zones.create(camera.id, "loading dock", "restricted", [(0.1, 0.1), (0.9, 0.1), (0.5, 0.8)])
    assert zone.polygon == ((0.1, 0.1), (0.9, 0.1), (0.5, 0.8))
    cur = await conn.execute("SELECT polygon_points FROM camera_zones WHERE id = %s", (zone.id,))
    assert (await cur.fetchone())["polygon_points"] == [{"x": 0.1, "y": 0.1}, {"x": 0.9, "y": 0.1},
                                                         {"x": 0.5, "y": 0.8}]
    assert await zones.get(zone.id) == zone

    moved = await zones.update(zone.id, {"polygon": [{"x": 0, "y": 0}, {"x": 1, "y": 0}, {"x": 1, "y": 1},
                                                     {"x": 0, "y": 1}], "is_active": False})
    assert moved.polygon == ((0, 0), (1, 0), (1, 1), (0, 1)) and not moved.is_active
    assert await zones.list_for_camera(camera.id) == [moved]
    assert await zones.list_for_camera(camera.id, active_only=True) == []
    await zones.delete(zone.id)
    with pytest.raises(NotFound):
        await zones.get(zone.id)


@pytest.mark.parametrize("polygon", [
    [(0.1, 0.1), (0.9, 0.9)],  # two points
    [(0.1, 0.1), (1.5, 0.2), (0.5, 0.8)],  # a coordinate outside [0, 1]
    [(0.1, 0.1), (float("nan"), 0.2), (0.5, 0.8)],
    [(0.1, 0.1), ("a", 0.2), (0.5, 0.8)],
    None,
    [(0, 0), (1, 1), (1, 0), (0, 1)],  # a bow tie: crosses itself
    [(0, 0), (0.5, 0), (1, 0)],  # collinear: encloses nothing
    [(0, 0), (1, 0), (1, 0), (0, 1)],  # a repeated point
    [(0, 0), (1, 0), (0.5, 0.5), (1, 1), (0, 1), (0.5, 0.5)],  # touches itself at (0.5, 0.5)
    [(i / 100, (i % 2) / 2) for i in range(101)],  # more than 100 points
])
async def test_zone_polygon_is_validated_before_writing(conn, secret_box, polygon):
    camera = await make_camera(conn, secret_box)
    zones = ZoneRepository(conn)
    with pytest.raises(InvalidArgument) as refused:
        await zones.create(camera.id, "bad", "restricted", polygon)
    assert refused.value.field == "polygon"
    zone = await zones.create(camera.id, "good", "interest", [(0, 0), (1, 0), (0, 1)])
    with pytest.raises(InvalidArgument) as refused_update:
        await zones.update(zone.id, {"polygon": polygon})
    assert refused_update.value.field == "polygon"
    assert await zones.list_for_camera(camera.id) == [zone]


async def test_zone_on_a_missing_camera_writes_nothing(conn):
    zones = ZoneRepository(conn)
    missing = uuid.uuid4()
    with pytest.raises(InvalidArgument) as refused:
        await zones.create(missing, "nowhere", "entry", [(0, 0), (1, 0), (0, 1)])
    assert refused.value.field == "camera_id"
    with pytest.raises(InvalidArgument) as bad_colour:
        await zones.create(missing, "nowhere", "entry", [(0, 0), (1, 0), (0, 1)], color="red")
    assert bad_colour.value.field == "color"
    assert await count(conn, "SELECT count(*) FROM camera_zones WHERE camera_id = %s", (missing,)) == 0


async def test_site_names_filter_case_insensitively_with_wildcards_taken_literally(conn):
    sites = SiteRepository(conn)
    tag = uuid.uuid4().hex[:8]
    discount = await sites.create(f"Shop 50% {tag}")
    await sites.create(f"Shop 500 {tag}")
    assert [s.id for s in (await sites.list(name_contains=f"shop 50% {tag}".upper())).items] == [discount.id]
    assert len((await sites.list(name_contains=tag)).items) == 2


async def test_vpn_client_config_is_ciphertext_bound_to_its_site(conn, secret_box):
    sites = SiteRepository(conn, secret_box)
    vpn = {"type": "wireguard", "endpoint": "vpn.example:51820", "config": "PrivateKey = abc"}
    site = await sites.create(unique("vpn"), vpn_config=vpn)
    assert "config" not in site.vpn_config and "PrivateKey" not in str(site.vpn_config)
    assert await sites.vpn_client_config(site.id) == "PrivateKey = abc"

    kept = await sites.update(site.id, {"vpn_config": {**site.vpn_config, "endpoint": "10.0.0.1:51820"}})
    assert await sites.vpn_client_config(kept.id) == "PrivateKey = abc"
    other = await sites.create(unique("other"), vpn_config={"type": "openvpn", **{
        k: v for k, v in site.vpn_config.items() if k == "config_encrypted"}})
    with pytest.raises(SecretError):  # a ciphertext copied to another site does not decrypt there
        await sites.vpn_client_config(other.id)
    cleared = await sites.update(site.id, {"vpn_config": {"type": "wireguard"}})
    assert await sites.vpn_client_config(cleared.id) is None
    with pytest.raises(ValueError):
        await SiteRepository(conn).create(unique("no box"), vpn_config=vpn)


async def test_dvrs_list_by_site_then_name_and_move_between_sites(conn, secret_box):
    sites, dvrs = SiteRepository(conn), DvrRepository(conn, secret_box)
    first, second = await sites.create(unique("a")), await sites.create(unique("b"))
    made = [await dvrs.create(site.id, name, "10.0.0.1", status=status)
            for site, name, status in ((first, "z", "online"), (first, "a", "offline"), (second, "m", "online"))]
    listed = (await dvrs.list(site_ids=[first.id, second.id])).items
    assert [d.id for d in listed] == [d.id for d in sorted(made, key=lambda d: (str(d.site_id), d.name))]
    online = (await dvrs.list(site_ids=[first.id, second.id], statuses=["online", "degraded"])).items
    assert {d.name for d in online} == {"z", "m"}

    moved = await dvrs.update(made[0].id, {"site_id": str(second.id)})
    assert moved.site_id == second.id
    with pytest.raises(InvalidArgument) as missing_site:
        await dvrs.update(made[0].id, {"site_id": uuid.uuid4()})
    assert missing_site.value.field == "site_id"


async def test_cameras_carry_the_site_of_their_dvr(conn, secret_box):
    camera = await make_camera(conn, secret_box)
    dvr = await DvrRepository(conn, secret_box).get(camera.dvr_id)
    assert camera.site_id == dvr.site_id
    assert (await CameraRepository(conn).list(site_ids=[dvr.site_id])).items == [camera]


async def test_deletes_refuse_while_children_exist_unless_forced(conn, secret_box, actor_id):
    camera = await make_camera(conn, secret_box)
    sites, dvrs, cameras = SiteRepository(conn), DvrRepository(conn, secret_box), CameraRepository(conn)
    dvr = await dvrs.get(camera.dvr_id)
    with pytest.raises(FailedPrecondition):
        await sites.delete(dvr.site_id)
    with pytest.raises(FailedPrecondition):
        await dvrs.delete(dvr.id)

    zone = await ZoneRepository(conn).create(camera.id, "gate", "restricted", [(0, 0), (1, 0), (0, 1)])
    rule = await AlertRuleRepository(conn).create("gate rule", actor_id, zone_id=zone.id)
    with pytest.raises(FailedPrecondition):  # deleting would widen the rule to every zone
        await ZoneRepository(conn).delete(zone.id)
    await AlertRuleRepository(conn).delete(rule.id)

    await EventRepository(conn).insert(camera.id, "human_detected", datetime.now(UTC), 0.8,
                                       {"x": 0.1, "y": 0.1, "width": 0.1, "height": 0.1})
    with pytest.raises(FailedPrecondition):
        await cameras.delete(camera.id)
    assert await cameras.get(camera.id) == camera  # the refusals changed nothing

    await sites.delete(dvr.site_id, force=True)
    for lookup in (dvrs.get(dvr.id), cameras.get(camera.id), ZoneRepository(conn).get(zone.id)):
        with pytest.raises(NotFound):
            await lookup
    assert await count(conn, "SELECT count(*) FROM events WHERE camera_id = %s", (camera.id,)) == 0
    with pytest.raises(NotFound):
        await sites.delete(dvr.site_id)


async def test_zones_list_by_camera_then_name_with_filters_and_pages(conn, secret_box):
    first, second = await make_camera(conn, secret_box), await make_camera(conn, secret_box)
    zones = ZoneRepository(conn)
    triangle = [(0, 0), (1, 0), (0, 1)]
    made = [await zones.create(camera.id, name, kind, triangle, is_active=name != "b")
            for camera, name, kind in ((first, "b", "entry"), (first, "a", "exit"), (second, "c", "entry"))]
    pages, token, seen = 0, None, []
    while True:
        page = await zones.list(camera_ids=[first.id, second.id], page_size=2, page_token=token)
        seen += page.items
        pages, token = pages + 1, page.next_page_token
        if token is None:
            break
    assert pages == 2
    assert [z.id for z in seen] == [z.id for z in sorted(made, key=lambda z: (str(z.camera_id), z.name))]
    entries = (await zones.list(camera_ids=[first.id, second.id], zone_types=["entry"], is_active=True)).items
    assert [z.name for z in entries] == ["c"]
    with pytest.raises(InvalidArgument) as bad_type:
        await zones.list(zone_types=["moat"])
    assert bad_type.value.field == "zone_types"
