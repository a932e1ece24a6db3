"""What both load tests share: percentiles, process sampling, the control plane as a child
process, and the fixtures they create through the database (keys, a site with cameras, a model
version with a gallery)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import psutil
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vigil.logs import get_logger
from vigil.settings import VigilSettings
from vigil.stack.process import Child, ChildError, child_env, free_port, vigil_argv

log = get_logger("vigil.loadtest")

KEY_NAME = "vigil-loadtest"
SITE_PREFIX = "vigil-loadtest"
GALLERY_IMAGE = "loadtest/synthetic.jpg"  # source_image_path of the synthetic gallery's rows


def percentiles(values, points=(50, 95, 99)) -> dict[str, float | None]:
    """Milliseconds, rounded; None where there is nothing to measure."""
    if not len(values):
        return {f"p{p}": None for p in points}
    arr = np.asarray(values, dtype=float)
    return {f"p{p}": round(float(np.percentile(arr, p)) * 1000.0, 2) for p in points}


class ProcessSampler:
    """CPU (% of one core, children included) and RSS of a process tree, sampled on demand."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self._cpu0 = self._cpu_seconds()
        self._t0 = time.monotonic()
        self.rss_samples: list[int] = []
        self.cpu_samples: list[float] = []
        self._last = (self._t0, self._cpu0)

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _cpu_seconds(self) -> float:
        total = 0.0
        for p in self._tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss(self) -> int:
        total = 0
        for p in self._tree():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def sample(self) -> tuple[float, int]:
        """(CPU % since the previous sample, RSS bytes now)."""
        now, cpu = time.monotonic(), self._cpu_seconds()
        t_prev, cpu_prev = self._last
        self._last = (now, cpu)
        percent = 100.0 * (cpu - cpu_prev) / max(now - t_prev, 1e-6)
        rss = self.rss()
        self.cpu_samples.append(percent)
        self.rss_samples.append(rss)
        return percent, rss

    def restart(self) -> None:
        """Forget the warm-up: averages cover what follows."""
        self._cpu0, self._t0 = self._cpu_seconds(), time.monotonic()
        self._last = (self._t0, self._cpu0)
        self.rss_samples.clear()
        self.cpu_samples.clear()

    def summary(self) -> dict:
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        rss = self.rss_samples or [self.rss()]
        return {"cpu_percent_avg": round(100.0 * (self._cpu_seconds() - self._cpu0) / elapsed, 1),
                "cpu_percent_max": round(max(self.cpu_samples, default=0.0), 1),
                "rss_mb_avg": round(sum(rss) / len(rss) / 2**20, 1), "rss_mb_max": round(max(rss) / 2**20, 1)}


def settings_env(settings: VigilSettings) -> dict[str, str]:
    """The environment that gives a child process these settings (state dir and every port), so a
    harness built on settings objects (tests) starts its children on the same stack."""
    env = {"VIGIL_STATE_DIR": str(settings.resolved_state_dir())}
    for section, fields in {"database": ("port",), "redis": ("port",), "s3": ("port", "internal_port_base"),
                            "triton": ("grpc_port", "http_port", "metrics_port")}.items():
        for name in fields:
            env[f"VIGIL_{section.upper()}__{name.upper()}"] = str(getattr(getattr(settings, section), name))
    return env


async def wait_for_database(dsn: str, deadline: float) -> None:
    """Until the database accepts a connection and answers, or RuntimeError at `deadline`
    (time.monotonic())."""
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=10, autocommit=True)
            try:
                await conn.execute("SELECT 1")
                return
            finally:
                await conn.close()
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the database does not accept connections: {exc}") from exc
            log.warning("database not accepting connections yet; waiting", error=str(exc).strip())
            await asyncio.sleep(1.0)


class ControlPlane:
    """`vigil control serve` as a child process on a free port, stopped with a graceful drain."""

    def __init__(self, settings: VigilSettings, log_file: Path, extra_env: dict[str, str] | None = None):
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.target = f"{self.host}:{self.port}"
        self.child = Child("control plane", vigil_argv("control", "serve"),
                           child_env(**settings_env(settings), VIGIL_CONTROL__HOST=self.host,
                                     VIGIL_CONTROL__PORT=str(self.port), VIGIL_LOG_LEVEL="warning",
                                     **(extra_env or {})), log_file)
        from vigil.endpoints import resolve

        self.dsn = resolve(settings).database_dsn

    async def start(self, timeout_s: float = 180.0, attempts: int = 3) -> None:
        """Started and SERVING within `timeout_s`, or ChildError with the child's last log lines.

        Readiness is explicit: first the database must accept a connection (the child's pools
        give up after 30 s each, control/app.py, and a loaded machine or a stack still coming
        up can take longer than that), then the child must answer SERVING on its health
        service. A child that exits while starting (e.g. its pool timed out) is started again,
        up to `attempts` times within the same deadline."""
        deadline = time.monotonic() + timeout_s
        await wait_for_database(self.dsn, deadline)
        failures: list[str] = []
        for attempt in range(1, attempts + 1):
            self.child.start()
            code = await self._wait_serving(deadline)
            if code is None:
                return
            failures.append(f"attempt {attempt}: exited with code {code}:\n{self.child.log_tail()}")
            if time.monotonic() > deadline or attempt == attempts:
                break
            log.warning("control plane exited while starting; starting it again", code=code, attempt=attempt)
            await wait_for_database(self.dsn, deadline)
        raise ChildError("the control plane did not start (log " + str(self.child.log_file) + "):\n"
                         + "\n".join(failures))

    async def _wait_serving(self, deadline: float) -> int | None:
        """None once SERVING, the exit code if the child ended first; stops it at the deadline."""
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                code = self.child.exited()
                if code is not None:
                    return code
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return None
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    self.child.stop(timeout_s=5.0)
                    raise self.child.failure("the control plane is not SERVING in time")
                await asyncio.sleep(0.3)

    @property
    def pid(self) -> int:
        assert self.child.pid is not None
        return self.child.pid

    def stop(self) -> str:
        return self.child.stop(timeout_s=15.0)


# --- fixtures in the database ------------------------------------------------------------------


@dataclass
class Fixtures:
    admin_key: str
    node_key: str
    camera_ids: list[str]
    site_id: str
    model_version: str | None = None
    embedding_dim: int = 0
    gallery: np.ndarray | None = field(default=None, repr=False)  # enrolled vectors (unit), row per face


async def _pool(dsn: str):
    from vigil.storage.db import create_pool

    await wait_for_database(dsn, time.monotonic() + 120)
    pool = create_pool(dsn, min_size=1, max_size=2)
    await pool.open(wait=True, timeout=60)
    return pool


async def create_fixtures(settings: VigilSettings, cameras: int, *, urls: list[str] | None = None,
                          model_version: str | None = None, embedding_dim: int = 128,
                          match_threshold: float = 0.5, gallery_size: int = 0, seed: int = 7) -> Fixtures:
    """Keys (throwaway, a day), a fresh site with `cameras` cameras, and optionally a synthetic model
    version with `gallery_size` enrolled faces (random unit vectors). Earlier load tests' cameras
    are deactivated, so nothing assigns them to a node again."""
    from vigil.endpoints import resolve
    from vigil.storage.crypto import SecretBox
    from vigil.storage.db import acting_as
    from vigil.storage.repositories.api_keys import ApiKeyRepository
    from vigil.storage.repositories.sites import CameraRepository, DvrRepository, SiteRepository

    endpoints = resolve(settings)
    pool = await _pool(endpoints.database_dsn)
    try:
        expires = datetime.now(UTC) + timedelta(days=1)
        async with pool.connection() as conn:
            keys = ApiKeyRepository(conn)
            admin = await keys.create(f"{KEY_NAME} admin", "admin", expires_at=expires,
                                      rate_limit_per_minute=1_000_000)
            node = await keys.create(f"{KEY_NAME} node", "api_client", expires_at=expires,
                                     rate_limit_per_minute=1_000_000)
        async with acting_as(pool, user_id=None, role="super_admin") as conn:
            await conn.execute(
                "UPDATE cameras SET is_active = false WHERE is_active AND dvr_id IN (SELECT d.id FROM dvrs d"
                " JOIN sites s ON s.id = d.site_id WHERE s.name LIKE %s)", (f"{SITE_PREFIX}%",))
            site = await SiteRepository(conn).create(f"{SITE_PREFIX} {uuid.uuid4().hex[:8]}")
            camera_ids = []
            for start in range(0, cameras, 64):  # a DVR has at most a few hundred channels
                dvr = await DvrRepository(conn, SecretBox(endpoints.encryption_key)).create(
                    site.id, f"loadtest dvr {start // 64}", "127.0.0.1")
                for i in range(start, min(cameras, start + 64)):
                    camera = await CameraRepository(conn).create(
                        dvr.id, i - start + 1, f"loadtest cam {i + 1}", rtsp_url=urls[i] if urls else None, fps=15)
                    camera_ids.append(str(camera.id))
        fixtures = Fixtures(admin.plaintext, node.plaintext, camera_ids, str(site.id))
        if model_version:
            fixtures.model_version, fixtures.embedding_dim = model_version, embedding_dim
            fixtures.gallery = await _gallery(pool, model_version, embedding_dim, match_threshold, gallery_size, seed)
        return fixtures
    finally:
        await pool.close()


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


async def _gallery(pool, version: str, dim: int, threshold: float, size: int, seed: int) -> np.ndarray:
    """A synthetic embedder and its enrolled gallery: created once per (version, size), reused after."""
    from pgvector.psycopg import register_vector_async

    rng = np.random.default_rng(seed)
    vectors = unit_vectors(rng, size, dim)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO model_versions (version_string, embedding_dim, match_threshold, created_at)"
            " VALUES (%s, %s, %s, now() - interval '20 years') ON CONFLICT DO NOTHING", (version, dim, threshold))
        # only the enrolled rows: recognition adds unknown-face clusters to the same version, which
        # must not force the (slow: audited deletes) re-creation of an unchanged gallery
        cur = await conn.execute("SELECT count(*) AS n FROM face_embeddings WHERE model_version = %s"
                                 " AND source_image_path = %s", (version, GALLERY_IMAGE))
        have = (await cur.fetchone())["n"]
        if have != size:
            await register_vector_async(conn)
            async with conn.transaction():
                # the HNSW index grows with the COPY: minutes on a loaded machine, past the pool's timeout
                await conn.execute("SET LOCAL statement_timeout = 0")
                await conn.execute("DELETE FROM persons WHERE id IN (SELECT person_id FROM face_embeddings"
                                   " WHERE model_version = %s)", (version,))
                person_ids = [uuid.uuid4() for _ in range(size)]
                async with conn.cursor().copy("COPY persons (id, name, status) FROM STDIN") as copy:
                    for i, pid in enumerate(person_ids):
                        await copy.write_row((pid, f"loadtest person {i}", "known"))
                async with conn.cursor().copy(
                        "COPY face_embeddings (person_id, embedding, embedding_dim, source_image_path, face_quality,"
                        " confidence, model_version, is_primary) FROM STDIN") as copy:
                    for pid, vec in zip(person_ids, vectors):
                        await copy.write_row((pid, vec, dim, GALLERY_IMAGE, 0.9, 0.99, version, True))
            await conn.execute("ANALYZE face_embeddings")
    return vectors


def write_json(path: Path | None, result: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=str))


def finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
