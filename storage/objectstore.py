"""Object storage through the MinIO SDK (S3 API): snapshots, face crops, clips.

Every object carries its SHA-256 (metadata `sha256`) so media_files.checksum can be verified
against what is stored, and its retention date (metadata and tag `retention-until`) so
lifecycle rules and the retention job agree with the database.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from minio import Minio
from minio.commonconfig import Tags
from minio.error import S3Error

from vigil.endpoints import Endpoints


class ObjectNotFound(KeyError):
    pass


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str
    content_type: str
    retention_until: datetime | None
    etag: str | None = None


def _parse_when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class ObjectStore:
    def __init__(self, client: Minio, bucket: str):
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_endpoints(cls, ep: Endpoints) -> ObjectStore:
        client = Minio(ep.s3_endpoint, access_key=ep.s3_access_key, secret_key=ep.s3_secret_key,
                       secure=ep.s3_secure, region=ep.s3_region)
        return cls(client, ep.s3_bucket)

    def ensure_bucket(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
            retention_until: datetime | None = None) -> StoredObject:
        digest = hashlib.sha256(data).hexdigest()
        metadata = {"sha256": digest}
        tags = None
        if retention_until is not None:
            retention_until = retention_until.astimezone(UTC)
            metadata["retention-until"] = retention_until.isoformat()
            tags = Tags.new_object_tags()
            tags["retention-until"] = retention_until.strftime("%Y-%m-%d")
        result = self.client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type,
                                        metadata=metadata, tags=tags)
        return StoredObject(key, len(data), digest, content_type, retention_until, result.etag)

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise ObjectNotFound(key) from exc
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str) -> StoredObject:
        try:
            st = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                raise ObjectNotFound(key) from exc
            raise
        meta = {k.lower(): v for k, v in (st.metadata or {}).items()}
        return StoredObject(
            key=key,
            size=st.size,
            sha256=meta.get("x-amz-meta-sha256", ""),
            content_type=st.content_type,
            retention_until=_parse_when(meta.get("x-amz-meta-retention-until")),
            etag=st.etag,
        )

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
            return True
        except ObjectNotFound:
            return False

    def presigned_get(self, key: str, expires: timedelta = timedelta(minutes=15)) -> str:
        return self.client.presigned_get_object(self.bucket, key, expires=expires)

    def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key is not an error (a retried cleanup must not fail)."""
        self.client.remove_object(self.bucket, key)
