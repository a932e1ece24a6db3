"""Media registry and retention, API keys (hashed, expiring, revocable) and the audit log."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.storage.builders import count, make_camera
from vigil.errors import InvalidArgument, NotFound
from vigil.storage.db import acting_as
from vigil.storage.repositories.api_keys import ApiKeyRepository, AuthStatus
from vigil.storage.repositories.audit import REDACTED, AuditLogRepository, redact
from vigil.storage.repositories.media import MediaFileRepository

CHECKSUM = hashlib.sha256(b"jpeg bytes").hexdigest()


async def test_media_register_get_delete(conn, secret_box):
    camera = await make_camera(conn, secret_box)
    media = MediaFileRepository(conn)
    now = datetime.now(UTC)
    stored = await media.register(camera.id, f"{camera.id}/2026/11/22/snap.jpg", checksum=CHECKSUM, file_size=10,
                                  mime_type="image/jpeg", timestamp=now, retention_until=now + timedelta(days=30),
                                  event_id=uuid.uuid4())
    assert (stored.file_type, stored.file_size, stored.checksum) == ("image", 10, CHECKSUM)
    assert await media.get(stored.id) == stored
    clip = await media.register(camera.id, f"{camera.id}/clip.mp4", checksum=CHECKSUM, file_size=2048,
                                mime_type="video/mp4", timestamp=now, retention_until=now + timedelta(days=30))
    assert clip.file_type == "video"
    await media.delete(stored.id)
    with pytest.raises(NotFound):
        await media.get(stored.id)
    with pytest.raises(NotFound):
        await media.delete(stored.id)


async def test_media_bad_input_writes_nothing(conn, secret_box):
    camera = await make_camera(conn, secret_box)
    media = MediaFileRepository(conn)
    now = datetime.now(UTC)
    good = {"camera_id": camera.id, "storage_path": "k.jpg", "checksum": CHECKSUM, "file_size": 1,
            "mime_type": "image/png", "timestamp": now, "retention_until": now}
    for change, field in (({"checksum": "ABC"}, "checksum"), ({"checksum": CHECKSUM.upper()}, "checksum"),
                          ({"file_size": -1}, "file_size"), ({"mime_type": "application/pdf"}, "mime_type"),
                          ({"mime_type": "image/"}, "mime_type"), ({"storage_path": ""}, "storage_path"),
                          ({"retention_until": datetime(2030, 1, 1)}, "retention_until"),
                          ({"camera_id": uuid.uuid4()}, "camera_id")):
        with pytest.raises(InvalidArgument) as refused:
            await media.register(**{**good, **change})
        assert refused.value.field == field
    assert await count(conn, "SELECT count(*) FROM media_files WHERE camera_id = %s", (camera.id,)) == 0


async def test_media_expired_listing_in_batches_then_purge(conn, secret_box):
    camera = await make_camera(conn, secret_box)
    media = MediaFileRepository(conn)
    now = datetime.now(UTC)

    async def register(name: str, retention_until: datetime):
        return await media.register(camera.id, f"{camera.id}/{name}", checksum=CHECKSUM, file_size=1,
                                    mime_type="image/jpeg", timestamp=now - timedelta(days=60),
                                    retention_until=retention_until)

    expired = [await register(f"old-{n}.jpg", now - timedelta(days=8 + n)) for n in range(5)]
    in_grace = await register("grace.jpg", now - timedelta(days=1))  # expired, but inside the 7-day grace
    kept = await register("kept.jpg", now + timedelta(days=1))

    batches, token = [], None
    while True:
        page = await media.list_expired(page_size=2, page_token=token)
        batches.append([m.id for m in page.items if m.camera_id == camera.id])
        if (token := page.next_page_token) is None:
            break
    mine = [i for batch in batches for i in batch]
    assert mine == [m.id for m in sorted(expired, key=lambda m: m.retention_until)]  # oldest expiry first

    # the retention job deletes the objects first, then the rows
    assert await media.purge_expired() >= 5
    remaining = await count(conn, "SELECT count(*) FROM media_files WHERE camera_id = %s", (camera.id,))
    assert remaining == 2
    assert (await media.get(in_grace.id)).id == in_grace.id and (await media.get(kept.id)).id == kept.id


async def test_api_key_create_authenticate_revoke(conn, actor_id):
    keys = ApiKeyRepository(conn)
    created = await keys.create("dashboard", "viewer", scopes=["events:read", "alerts:read"],
                                rate_limit_per_minute=120, user_id=actor_id, created_by=actor_id,
                                expires_at=datetime.now(UTC) + timedelta(days=90))
    plaintext, key = created.plaintext, created.key
    scheme, prefix_id, secret = plaintext.split("_", 2)
    prefix = f"{scheme}_{prefix_id}"
    assert plaintext.startswith("vgl_") and key.key_prefix == prefix and len(secret) >= 43  # >= 32 bytes
    assert plaintext not in repr(created)
    assert (key.role, key.scopes, key.rate_limit_per_minute) == ("viewer", ("events:read", "alerts:read"), 120)

    cur = await conn.execute("SELECT key_hash FROM api_keys WHERE id = %s", (key.id,))
    stored = (await cur.fetchone())["key_hash"]
    assert stored == hashlib.sha256(plaintext.encode()).hexdigest() and secret not in stored

    result = await keys.authenticate(plaintext)
    assert result.ok and result.key == key
    for wrong in (plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"), "vgl_nothing", "", "Bearer x"):
        assert (await keys.authenticate(wrong)).status is AuthStatus.UNKNOWN

    await keys.touch_last_used(key.id)
    await keys.touch_last_used(key.id)
    touched = await keys.get(key.id)
    assert touched.request_count == 2 and touched.last_used_at is not None

    revoked = await keys.revoke(key.id)
    assert revoked.revoked_at is not None
    assert (await keys.revoke(key.id)).revoked_at == revoked.revoked_at  # idempotent
    result = await keys.authenticate(plaintext)
    assert result.status is AuthStatus.REVOKED and result.key.id == key.id
    assert key.id not in {k.id for k in (await keys.list(user_id=actor_id)).items}
    assert key.id in {k.id for k in (await keys.list(user_id=actor_id, include_revoked=True)).items}
    with pytest.raises(NotFound):
        await keys.revoke(uuid.uuid4())


async def test_api_key_expiry_suspension_and_bad_input(conn):
    keys = ApiKeyRepository(conn)
    expiring = await keys.create("short-lived", "api_client", expires_at=datetime.now(UTC) + timedelta(days=1))
    # age the key: created two days ago, expired yesterday
    await conn.execute(
        "UPDATE api_keys SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day'"
        " WHERE id = %s",
        (expiring.key.id,),
    )
    assert (await keys.authenticate(expiring.plaintext)).status is AuthStatus.EXPIRED

    suspended = await keys.create("paused", "operator")
    await conn.execute("UPDATE api_keys SET is_active = false WHERE id = %s", (suspended.key.id,))
    assert (await keys.authenticate(suspended.plaintext)).status is AuthStatus.SUSPENDED

    for kwargs, field in (({"role": "overlord"}, "role"), ({"scopes": ["everything"]}, "scopes"),
                          ({"rate_limit_per_minute": 0}, "rate_limit_per_minute"),
                          ({"expires_at": datetime.now(UTC) - timedelta(days=1)}, "expires_at"),
                          ({"user_id": uuid.uuid4()}, "user_id"), ({"site_id": "nope"}, "site_id")):
        with pytest.raises(InvalidArgument) as refused:
            await keys.create("bad", **{"role": "viewer", **kwargs})
        assert refused.value.field == field
    assert await count(conn, "SELECT count(*) FROM api_keys WHERE name = 'bad'") == 0

    page_one = await keys.list(page_size=1)
    page_two = await keys.list(page_size=1, page_token=page_one.next_page_token)
    assert page_one.items[0].id != page_two.items[0].id


def test_redaction_of_secret_looking_keys():
    details = {
        "password": "hunter2", "new": {"mfa_secret": "JBSWY3DP", "key_hash": "ab", "username": "ops",
                                       "vpn": [{"private_key": "k", "endpoint": "vpn.example"}]},
        "api_key": "vgl_x", "token": "t", "bot_token": "b", "key": "k", "client_secret": "s",
        "api_key_id": "kept", "key_prefix": "vgl_1234", "mfa_enabled": True, "empty_password": None,
        "rtsp_url": "rtsp://admin:pw@10.0.0.5/ch1",
    }
    redacted = redact(details)
    for key in ("password", "api_key", "token", "bot_token", "key", "client_secret"):
        assert redacted[key] == REDACTED, key
    assert redacted["new"]["mfa_secret"] == redacted["new"]["key_hash"] == REDACTED
    assert redacted["new"]["vpn"] == [{"private_key": REDACTED, "endpoint": "vpn.example"}]
    assert (redacted["api_key_id"], redacted["key_prefix"], redacted["mfa_enabled"]) == ("kept", "vgl_1234", True)
    assert redacted["empty_password"] is None and redacted["new"]["username"] == "ops"
    assert redacted["rtsp_url"] == f"rtsp://{REDACTED}@10.0.0.5/ch1"
    assert details["password"] == "hunter2"  # the input is left alone


async def test_audit_record_and_list(conn, actor_id):
    audit = AuditLogRepository(conn)
    resource = uuid.uuid4()
    key_id = uuid.uuid4()
    entry = await audit.record("dvr_credentials_update", "dvr", resource_id=resource, user_id=actor_id,
                               changed_fields={"password": "n3w-secret", "name": "nvr-1"},
                               details={"reason": "rotation", "token": "abc"}, client_ip="203.0.113.7",
                               user_agent="grpcurl/1.9")
    await audit.record("login", "user", resource_id=actor_id, user_id=actor_id, client_ip="2001:db8::1")
    await audit.record("event_export", "event", resource_id=resource, api_key_id=key_id)

    cur = await conn.execute("SELECT details::text AS raw FROM audit_logs WHERE id = %s", (entry.id,))
    raw = (await cur.fetchone())["raw"]
    assert "n3w-secret" not in raw and "abc" not in raw and "rotation" in raw
    assert entry.details == {"reason": "rotation", "token": REDACTED,
                             "changed_fields": {"password": REDACTED, "name": "nvr-1"}}

    about_resource = await audit.list(resource_id=resource)
    assert [e.action for e in about_resource.items] == ["event_export", "dvr_credentials_update"]  # newest first
    listed = next(e for e in about_resource.items if e.id == entry.id)
    assert listed == entry and str(listed.ip_address) == "203.0.113.7"
    by_key = await audit.list(api_key_id=key_id)
    assert [e.action for e in by_key.items] == ["event_export"] and by_key.items[0].details["api_key_id"] == str(key_id)
    mine = await audit.list(user_id=actor_id, action="login", since=datetime.now(UTC) - timedelta(hours=1))
    assert [e.resource_id for e in mine.items] == [actor_id]
    # the schema's triggers audit table changes too, in the same log
    triggered = await audit.list(user_id=actor_id, resource_type="user", action="user_create")
    assert [e.resource_id for e in triggered.items] == [actor_id]

    first = await audit.list(user_id=actor_id, page_size=2)
    second = await audit.list(user_id=actor_id, page_size=2, page_token=first.next_page_token)
    assert not {e.id for e in first.items} & {e.id for e in second.items}
    with pytest.raises(InvalidArgument) as bad_ip:
        await audit.record("login", "user", client_ip="localhost")
    assert bad_ip.value.field == "client_ip"


async def test_audit_entries_of_other_users_can_be_written_by_an_operator(pool):
    """RLS lets an operator append entries it may not read back (service actions, other users)."""
    operator = uuid.uuid4()
    async with acting_as(pool, user_id=operator, role="operator") as conn:
        entry = await AuditLogRepository(conn).record("stream_reassigned", "camera", resource_id=uuid.uuid4(),
                                                      details={"from_node": "gpu-1", "to_node": "gpu-2"})
        assert entry.user_id is None
        assert (await AuditLogRepository(conn).list(resource_id=entry.resource_id)).items == []  # not readable
        raise psycopg.Rollback()
