"""Secrets of the embedded services, generated once per state directory (mode 0600)."""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmbeddedCredentials:
    postgres_password: str
    redis_password: str
    s3_access_key: str
    s3_secret_key: str
    encryption_key: str  # base64 of 32 bytes, AES-256-GCM
    triton_access_token: str  # PyTriton guards its model-control endpoints with a token

    @classmethod
    def generate(cls) -> EmbeddedCredentials:
        return cls(
            postgres_password=secrets.token_urlsafe(24),
            redis_password=secrets.token_urlsafe(24),
            s3_access_key="vigil" + secrets.token_hex(6),
            s3_secret_key=secrets.token_urlsafe(30),
            encryption_key=base64.b64encode(secrets.token_bytes(32)).decode(),
            triton_access_token=secrets.token_urlsafe(24),
        )


def load_or_create(state_dir: Path) -> EmbeddedCredentials:
    path = state_dir / "credentials.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    fresh = asdict(EmbeddedCredentials.generate())
    if stored.keys() >= fresh.keys():
        return EmbeddedCredentials(**{k: stored[k] for k in fresh})
    # new secrets added by a newer Vigil are generated; the existing ones are kept
    creds = EmbeddedCredentials(**{**fresh, **{k: v for k, v in stored.items() if k in fresh}})
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(creds), fh, indent=2)
    os.replace(tmp, path)
    return creds
