"""Where each service is: the production URL from settings, or the embedded default.

Neutral ground: storage, the pipeline and the control plane connect through Endpoints without
importing the embedded stack (vigil.stack), which reads them from here too."""

from __future__ import annotations

from dataclasses import dataclass

from vigil.settings import VigilSettings

DATABASE_NAME = "vigil"
DATABASE_USER = "vigil"
TRITON_TOKEN_HEADER = "triton-grpc-protocol-triton-access-token"


@dataclass(frozen=True)
class Endpoints:
    database_dsn: str
    redis_url: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_secure: bool
    s3_region: str | None
    s3_bucket: str
    triton_url: str
    triton_headers: dict[str, str]
    encryption_key: str

    def redacted(self) -> dict[str, str]:
        """For display: hosts and ports, no secrets."""
        from urllib.parse import urlsplit

        def strip(url: str) -> str:
            parts = urlsplit(url)
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            return f"{parts.scheme}://{host}{port}{parts.path}"

        return {
            "database": strip(self.database_dsn),
            "redis": strip(self.redis_url),
            "s3": f"{'https' if self.s3_secure else 'http'}://{self.s3_endpoint}/{self.s3_bucket}",
            "triton": f"grpc://{self.triton_url}",
        }


def _triton_headers(settings: VigilSettings, creds) -> dict[str, str]:
    if settings.triton.url:
        token = settings.triton.access_token
        return {TRITON_TOKEN_HEADER: token.get_secret_value()} if token else {}
    return {TRITON_TOKEN_HEADER: creds.triton_access_token}


def resolve(settings: VigilSettings) -> Endpoints:
    needs_embedded = not (
        settings.database.url and settings.redis.url and settings.s3.endpoint and settings.triton.url
        and settings.security.encryption_key
    )
    creds = None
    if needs_embedded:
        # only the embedded defaults need the stack's generated secrets: imported here, not at the top
        from vigil.stack.credentials import load_or_create

        creds = load_or_create(settings.resolved_state_dir())
    host = settings.host

    if settings.database.url:
        dsn = settings.database.url.get_secret_value()
    else:
        dsn = (
            f"postgresql://{DATABASE_USER}:{creds.postgres_password}@{host}:{settings.database.port}/{DATABASE_NAME}"
        )
    if settings.redis.url:
        redis_url = settings.redis.url.get_secret_value()
    else:
        redis_url = f"redis://:{creds.redis_password}@{host}:{settings.redis.port}/0"
    if settings.s3.endpoint:
        if not (settings.s3.access_key and settings.s3.secret_key):
            raise ValueError("s3.endpoint is set: set s3.access_key and s3.secret_key too (VIGIL_S3__ACCESS_KEY, ...)")
        s3 = (settings.s3.endpoint, settings.s3.access_key.get_secret_value(),
              settings.s3.secret_key.get_secret_value(), settings.s3.secure)
    else:
        s3 = (f"{host}:{settings.s3.port}", creds.s3_access_key, creds.s3_secret_key, False)
    key = (settings.security.encryption_key.get_secret_value() if settings.security.encryption_key
           else creds.encryption_key)
    return Endpoints(
        database_dsn=dsn,
        redis_url=redis_url,
        s3_endpoint=s3[0],
        s3_access_key=s3[1],
        s3_secret_key=s3[2],
        s3_secure=s3[3],
        s3_region=settings.s3.region,
        s3_bucket=settings.s3.bucket,
        triton_url=settings.triton.url or f"{host}:{settings.triton.grpc_port}",
        triton_headers=_triton_headers(settings, creds),
        encryption_key=key,
    )
