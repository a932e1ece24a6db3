"""Object store against the embedded SeaweedFS S3 gateway."""

import hashlib
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from vigil.storage.objectstore import ObjectNotFound, ObjectStore


@pytest.fixture
def store(endpoints):
    s = ObjectStore.from_endpoints(endpoints)
    s.ensure_bucket()
    return s


def test_put_stat_get_presign_delete(store):
    key = f"cam-1/2026/11/21/{uuid.uuid4()}.jpg"
    data = b"\xff\xd8jpeg-bytes" * 100
    until = datetime.now(UTC) + timedelta(days=30)
    put = store.put(key, data, content_type="image/jpeg", retention_until=until)
    assert put.sha256 == hashlib.sha256(data).hexdigest() and put.size == len(data)

    st = store.stat(key)
    assert st.sha256 == put.sha256 and st.size == len(data) and st.content_type == "image/jpeg"
    assert abs((st.retention_until - until).total_seconds()) < 1
    assert store.get(key) == data

    with urllib.request.urlopen(store.presigned_get(key, timedelta(minutes=1))) as resp:
        assert hashlib.sha256(resp.read()).hexdigest() == put.sha256

    store.delete(key)
    store.delete(key)  # idempotent
    assert not store.exists(key)
    with pytest.raises(ObjectNotFound):
        store.get(key)
    with pytest.raises(ObjectNotFound):
        store.stat(key)


def test_wrong_credentials_are_refused(endpoints):
    from dataclasses import replace

    bad = ObjectStore.from_endpoints(replace(endpoints, s3_secret_key="wrong-secret"))
    with pytest.raises(Exception, match="(?i)signature|denied|invalid"):
        bad.put("x/y", b"z")
