"""Everything a control-plane replica holds for its handlers: pools, clients, caches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from vigil.control.auth import Caller, PermissionTable, current_caller
from vigil.control.alerting import AlertingHook
from vigil.control.gallery import FaceGallery
from vigil.control.ingest.runtime import IngestRuntime
from vigil.control.jobs import build_jobs
from vigil.control.metrics import ControlMetrics
from vigil.control.nodes.runtime import NodeRuntime
from vigil.control.notifications.dispatcher import NotificationDispatcher
from vigil.control.ratelimit import RateLimiter
from vigil.models.faces import FaceAnalyzer
from vigil.settings import VigilSettings
from vigil.endpoints import Endpoints, resolve
from vigil.storage.crypto import SecretBox
from vigil.storage.db import acting_as, create_pool
from vigil.storage.objectstore import ObjectStore
from vigil.storage.repositories.api_keys import ApiKeyRepository, AuthResult
from vigil.storage.repositories.audit import AuditLogRepository
from vigil.storage.repositories.permissions import PermissionRepository


@dataclass
class Transaction:
    """One database transaction acting as the caller (RLS and audit triggers see them)."""

    conn: Any
    caller: Caller

    async def audit(self, action: str, resource_type: str, resource_id: UUID | str | None = None,
                    changed_fields: dict[str, Any] | None = None) -> None:
        await AuditLogRepository(self.conn).record(
            action, resource_type, resource_id=resource_id, user_id=self.caller.user_id,
            api_key_id=self.caller.key.id, changed_fields=changed_fields, client_ip=self.caller.client_ip,
            details={"role": self.caller.role})


class ControlApp:
    def __init__(self, settings: VigilSettings, endpoints: Endpoints | None = None):
        self.settings = settings
        self.endpoints = endpoints or resolve(settings)
        self.metrics = ControlMetrics()  # a registry per replica (tests run several in one process)
        db = settings.database
        self.pool: AsyncConnectionPool = create_pool(
            self.endpoints.database_dsn, min_size=db.pool_min, max_size=db.pool_max,
            statement_timeout_ms=db.statement_timeout_ms, name="control")
        self.redis = aioredis.Redis.from_url(self.endpoints.redis_url, decode_responses=True)
        self.rate_limiter = RateLimiter(self.redis)
        self.objects = ObjectStore.from_endpoints(self.endpoints)
        self.secrets = SecretBox(self.endpoints.encryption_key)
        self.permissions = PermissionTable(self._load_grants)
        # the notifier has its own small pool: its retries never compete with ingest for connections
        self.notifier_pool = create_pool(self.endpoints.database_dsn, min_size=1, max_size=2, name="notifier")
        self.notifier = NotificationDispatcher(self.notifier_pool, self.secrets)
        self.ingest = IngestRuntime(self)
        control = settings.control
        self.ingest.pipeline.on_events.append(AlertingHook(clip_window=(
            timedelta(seconds=control.clip_before_s), timedelta(seconds=control.clip_after_s))))
        self.nodes = NodeRuntime(self)  # stream assignments: reconciler and watch signal
        self.faces = FaceAnalyzer(self.endpoints)
        self.gallery = FaceGallery(self.faces, self.objects, max_image_bytes=settings.control.max_image_bytes)
        self.jobs = build_jobs(self)  # scheduled jobs, one replica at a time each

    async def start(self) -> None:
        await self.pool.open(wait=True, timeout=30)
        await asyncio.to_thread(self.objects.ensure_bucket)  # an external S3 may start empty
        await self.notifier_pool.open(wait=True, timeout=30)
        await self.notifier.start()
        self.ingest.start()
        self.nodes.start()
        self.jobs.start()

    async def close(self) -> None:
        await self.jobs.stop()
        await self.nodes.stop()
        await self.ingest.stop()
        await self.notifier.close()
        self.faces.close()
        await self.notifier_pool.close()
        await self.pool.close()
        await self.redis.aclose()
        self.metrics.close()

    async def _load_grants(self) -> dict[str, set[tuple[str, str]]]:
        async with self.pool.connection() as conn:
            return await PermissionRepository(conn).grants()

    async def authenticate(self, plaintext: str) -> AuthResult:
        async with self.pool.connection() as conn:
            keys = ApiKeyRepository(conn)
            result = await keys.authenticate(plaintext)
            if result.ok:
                await keys.touch_last_used(result.key.id)
            return result

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        caller = current_caller()
        async with acting_as(self.pool, user_id=caller.user_id, role=caller.rls_role,
                             client_ip=caller.client_ip) as conn:
            yield Transaction(conn, caller)
