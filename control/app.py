"""Everything a control-plane replica holds for its handlers: pools, clients, caches, runtimes.

    app = ControlApp(settings, endpoints)   # builds its parts; opens nothing, starts no task
    await app.start()                       # pools open, then every background task starts
    ...
    await app.stop()                        # the tasks stop (in reverse order), then the pools close

Each part takes only what it uses; the servicers are built from them in control/services/__init__.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from vigil.control.alerting import AlertingHook
from vigil.control.auth import PermissionTable
from vigil.control.gallery import FaceGallery
from vigil.control.ingest.runtime import IngestRuntime
from vigil.control.jobs import JobContext, build_jobs
from vigil.control.jobs.scheduler import replica_name
from vigil.control.metrics import ControlMetrics
from vigil.control.nodes.runtime import NodeRuntime
from vigil.control.notifications.dispatcher import NotificationDispatcher
from vigil.control.ratelimit import RateLimiter
from vigil.control.transactions import CallerDatabase, Transaction
from vigil.endpoints import Endpoints, resolve
from vigil.models.faces import FaceAnalyzer
from vigil.settings import VigilSettings
from vigil.storage.crypto import SecretBox
from vigil.storage.db import create_pool
from vigil.storage.objectstore import ObjectStore
from vigil.storage.repositories.api_keys import ApiKeyRepository, AuthResult
from vigil.storage.repositories.permissions import PermissionRepository

__all__ = ["ControlApp", "Transaction"]


class ControlApp:
    def __init__(self, settings: VigilSettings, endpoints: Endpoints | None = None):
        self.settings = settings
        self.endpoints = endpoints or resolve(settings)
        self.metrics = ControlMetrics()  # a registry per replica (tests run several in one process)
        database = settings.database
        self.pool: AsyncConnectionPool = create_pool(
            self.endpoints.database_dsn, min_size=database.pool_min, max_size=database.pool_max,
            statement_timeout_ms=database.statement_timeout_ms, name="control")
        self.redis = aioredis.Redis.from_url(
            self.endpoints.redis_url, decode_responses=True,
            # a pooled connection that Redis closed (it restarted since) is retried on a fresh one;
            # Redis still down gives up quickly: callers answer UNAVAILABLE
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            retry_on_error=[aioredis.ConnectionError, aioredis.TimeoutError])
        self.rate_limiter = RateLimiter(self.redis)
        self.objects = ObjectStore.from_endpoints(self.endpoints)
        self.secrets = SecretBox(self.endpoints.encryption_key)
        self.permissions = PermissionTable(self._load_grants)
        self.db = CallerDatabase(self.pool)  # transactions as the RPC's caller
        # the notifier has its own small pool: its retries never compete with ingest for connections
        self.notifier_pool = create_pool(self.endpoints.database_dsn, min_size=1, max_size=2, name="notifier")
        self.notifier = NotificationDispatcher(self.notifier_pool, self.secrets)
        self.ingest = IngestRuntime(self.pool, self.redis, self.metrics.recognition_seconds)
        control = settings.control
        self.ingest.pipeline.on_events.append(AlertingHook(clip_window=(
            timedelta(seconds=control.clip_before_s), timedelta(seconds=control.clip_after_s))))
        self.nodes = NodeRuntime(self.pool, self.redis)  # stream assignments: reconciler and watch signal
        self.faces = FaceAnalyzer(self.endpoints)
        self.gallery = FaceGallery(self.faces, self.objects, max_image_bytes=settings.control.max_image_bytes)
        # scheduled jobs, one replica at a time each; two apps in one process are two replicas
        self.jobs = build_jobs(JobContext(self.pool, self.objects, settings, self.metrics,
                                          replica=f"{replica_name()}:{id(self):x}"))

    async def start(self) -> None:
        """Open the pools, then start every background task of the replica (nothing else starts any)."""
        await self.pool.open(wait=True, timeout=30)
        await asyncio.to_thread(self.objects.ensure_bucket)  # an external S3 may start empty
        await self.notifier_pool.open(wait=True, timeout=30)
        await self.notifier.start()
        self.ingest.start()
        self.nodes.start()
        self.jobs.start()

    async def stop(self) -> None:
        """Stop the background tasks in the reverse order of start(), then close the pools and clients."""
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
