"""One typed settings model for every Vigil process.

Precedence (highest first): constructor arguments, environment variables (``VIGIL_`` prefix,
``__`` between nested names, e.g. ``VIGIL_DATABASE__URL``), the TOML config file
(``$VIGIL_CONFIG``, default ``./vigil.toml``), then the defaults below. Each service has an
embedded default; setting its URL points Vigil at a production service and nothing embedded
starts for it. ``vigil config show`` prints the effective values (secrets hidden).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Port = int


class DatabaseSettings(BaseModel):
    """PostgreSQL with pgvector: relational data, face embeddings, RLS."""

    url: SecretStr | None = Field(
        None,
        description="DSN of a production PostgreSQL 15+ with pgvector "
        "(postgresql://user:pass@host:5432/db?sslmode=require). Unset: the embedded server runs.",
    )
    port: Port = Field(55432, description="Port of the embedded PostgreSQL on the stack host.")
    pool_min: int = Field(1, ge=0, description="Connections the pool keeps open.")
    pool_max: int = Field(10, ge=1, description="Most connections the pool opens.")
    statement_timeout_ms: int = Field(30_000, ge=0, description="Per-statement timeout (0 = none).")
    shared_buffers_mb: int = Field(
        256, ge=16, description="Embedded PostgreSQL's buffer cache. Size it to hold the face galleries' "
        "HNSW indexes (about 1.3 GB per 1M x 512-d halfvec faces, 0.3 GB as bits): a graph walk that "
        "misses the cache reads a page from the kernel per neighbour visited.")
    maintenance_work_mem_mb: int = Field(
        512, ge=64, description="Embedded PostgreSQL's memory per index build: an HNSW build whose graph "
        "outgrows it slows by an order of magnitude (pgvector notices 'no longer fits').")


class RedisSettings(BaseModel):
    """Redis/Valkey: the event bus (Redis Streams) and shared locks."""

    url: SecretStr | None = Field(
        None, description="redis:// or rediss:// URL of a production Redis/Valkey. Unset: embedded Valkey runs."
    )
    port: Port = Field(56379, description="Port of the embedded Valkey.")


class S3Settings(BaseModel):
    """Object storage through the S3 (MinIO) API: snapshots, clips, face crops."""

    endpoint: str | None = Field(
        None, description="host:port of a production S3/MinIO endpoint. Unset: embedded SeaweedFS runs."
    )
    access_key: SecretStr | None = Field(None, description="Access key (required with endpoint).")
    secret_key: SecretStr | None = Field(None, description="Secret key (required with endpoint).")
    secure: bool = Field(False, description="Use TLS to reach the endpoint.")
    region: str | None = Field(None, description="Region name, where the server wants one.")
    bucket: str = Field("vigil-media", description="Bucket for all media; created when missing.")
    port: Port = Field(58333, description="S3 port of the embedded SeaweedFS.")
    internal_port_base: Port = Field(
        48400,
        ge=10_010,
        le=55_000,
        description="First of 8 consecutive ports SeaweedFS uses internally (master, volume, filer, admin).",
    )


class TritonSettings(BaseModel):
    """Triton Inference Server (production) or PyTriton (embedded)."""

    url: str | None = Field(None, description="host:port of a production Triton's gRPC endpoint. Unset: PyTriton runs.")
    access_token: SecretStr | None = Field(
        None, description="Token for a Triton started with restricted protocols (sent as its access-token header)."
    )
    grpc_port: Port = Field(58001, description="gRPC port of the embedded Triton.")
    http_port: Port = Field(58000, description="HTTP port of the embedded Triton.")
    metrics_port: Port = Field(58002, description="Metrics port of the embedded Triton.")
    model_repository: Path = Field(
        Path("triton_models"), description="Triton model repository served by the embedded Triton."
    )


class ControlSettings(BaseModel):
    """The gRPC control plane."""

    host: str = Field("127.0.0.1", description="Address `vigil control serve` listens on (0.0.0.0 in a container).")
    port: Port = Field(50051, description="gRPC port of the control plane.")
    max_image_bytes: int = Field(8 * 1024 * 1024, gt=0, description="Largest image accepted by enrolment/search.")
    max_message_bytes: int = Field(64 * 1024 * 1024, gt=0, description="Largest gRPC message accepted.")
    presigned_url_ttl_s: int = Field(900, gt=0, le=7 * 24 * 3600, description="Lifetime of media URLs handed out.")
    node_heartbeat_interval_s: float = Field(
        2.0, gt=0, le=3600, description="How often pipeline nodes are told to call NodeService.Heartbeat.")
    node_lease_s: float = Field(
        10.0, gt=0, le=86400, description="A node without a heartbeat (or registration) for this long is marked "
        "OFFLINE and its streams go to other nodes; several heartbeat intervals, so one lost heartbeat is harmless.")

    metrics_port: Port | None = Field(
        59100, ge=0, description="Port of the replica's Prometheus endpoint (/metrics) on control.host; 0 = any "
        "free port, unset (null) = no endpoint.")
    ingest_group_batches: int = Field(
        16, ge=1, le=256, description="Most batches of one Publish stream stored in one transaction (group "
        "commit): the batches a node has in flight while the previous group commits are stored and acked together.")
    clip_before_s: float = Field(
        10.0, ge=0, le=300, description="An alert's clip starts this long before the alert's capture time.")
    clip_after_s: float = Field(
        5.0, ge=0, le=300, description="An alert's clip ends this long after the alert's capture time.")

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> ControlSettings:
        if self.node_lease_s <= self.node_heartbeat_interval_s:
            raise ValueError("control.node_lease_s must be longer than control.node_heartbeat_interval_s")
        return self


class DeepStreamSettings(BaseModel):
    """The DeepStream backend of a GPU node (`node.backend = "deepstream"`)."""

    gpu_id: int = Field(0, ge=0, description="GPU that decodes, batches, infers and tracks.")
    engine_dir: Path = Field(
        Path("/var/lib/vigil/engines"), description="Where the GPU image's entrypoint builds the detectors' "
        "TensorRT plans; the object detector runs when its plan (or its ONNX model) is there.")
    new_muxer: bool = Field(
        False, description="The new nvstreammux (batching policy in configs/streammux.txt) instead of the "
        "legacy one; the node sets USE_NEW_NVSTREAMMUX from it before DeepStream starts.")
    config_dir: Path | None = Field(
        None, description="Directory of the DeepStream configs (nvinfer, tracker, muxer). "
        "Unset: configs/ of the source tree or image (/opt/vigil/configs).")


class NodeSettings(BaseModel):
    """A pipeline node (`vigil node run`): one per GPU, or a CPU node with the portable backend."""

    control_url: str | None = Field(
        None, description="host:port of the control plane's gRPC API. Unset: control.host:control.port.")
    api_key: SecretStr | None = Field(
        None, description="API key of the node (role api_client: `vigil keys create --role api_client`).")
    name: str | None = Field(None, description="Display name of the node. Unset: the host name.")
    backend: Literal["auto", "portable", "deepstream"] = Field(
        "auto", description="Processing backend; auto picks deepstream where pyds and a GPU are present.")
    capacity_streams: int = Field(4, ge=1, le=10_000, description="Most camera streams the node accepts.")
    batch_size: int = Field(8, ge=1, le=64, description="Most frames (across streams) inferred together.")
    object_detect_every: int = Field(
        1, ge=1, le=100, description="Run the person and vehicle detector on every n-th frame of a stream (the "
        "tracker carries the boxes in between); on DeepStream it sets the detector's nvinfer interval (n - 1).")
    embedding_model_version: str = Field(
        "sface-2021dec-int8folded", min_length=1, max_length=100,
        description="Face embedding model version the node runs (model_versions.version_string).")
    face_detector_canvas: tuple[int, int] = Field(
        (640, 384), description="Width and height (multiples of 32) every frame is letterboxed onto for the "
        "face detector; 640x384 holds a 16:9 frame with no padding, 640x480 suits 4:3 cameras.")
    publish_interval_s: float = Field(
        0.25, gt=0, le=10, description="How often a stream's track updates are sent as one batch.")
    spool_dir: Path | None = Field(
        None, description="On-disk spool for batches while the control plane is unreachable. "
        "Unset: <state_dir>/node/<name>/spool.")
    metrics_port: Port | None = Field(
        59101, ge=0, description="Port of the node's Prometheus endpoint (/metrics); 0 = any free port, "
        "unset (null) = no endpoint.")
    metrics_host: str = Field("127.0.0.1", description="Address the node's Prometheus endpoint listens on.")
    clip_buffer_s: float = Field(
        30.0, ge=2, le=600, description="Seconds of encoded video kept per stream for clips (no re-encode).")
    deepstream: DeepStreamSettings = Field(
        default_factory=DeepStreamSettings, description="The DeepStream backend's knobs (GPU nodes only).")


class JobSchedule(BaseModel):
    """When a scheduled job runs: a crontab expression (UTC) or a fixed interval; cron wins when both are set."""

    cron: str | None = Field(None, description="Five-field crontab expression in UTC, e.g. \"15 3 * * *\".")
    interval_s: float | None = Field(None, gt=0, description="Run every this many seconds.")
    enabled: bool = Field(True, description="False: the job is not scheduled on this replica.")

    @model_validator(mode="after")
    def _has_schedule(self) -> JobSchedule:
        if self.cron is None and self.interval_s is None:
            raise ValueError("a job schedule needs cron or interval_s")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron, timezone="UTC")
            except ValueError as exc:
                raise ValueError(f"cron {self.cron!r} is not a crontab expression: {exc}") from None
        return self


class JobsSettings(BaseModel):
    """Scheduled jobs of the control plane; each runs on one replica at a time (a PostgreSQL advisory lock)."""

    enabled: bool = Field(True, description="False: this replica schedules no jobs (others still may).")
    partitions: JobSchedule = Field(
        default_factory=lambda: JobSchedule(cron="15 3 * * *"),
        description="Create upcoming monthly partitions, drop those past retention (partition_retention).")
    media_retention: JobSchedule = Field(
        default_factory=lambda: JobSchedule(cron="40 * * * *"),
        description="Delete media past retention: objects first, then rows, in batches.")
    cluster_consolidation: JobSchedule = Field(
        default_factory=lambda: JobSchedule(interval_s=900),
        description="Merge unknown-face clusters whose representatives match within the model's threshold.")
    device_health: JobSchedule = Field(
        default_factory=lambda: JobSchedule(interval_s=15),
        description="Mark cameras and DVRs offline/online from the frames nodes report.")
    ingest_state: JobSchedule = Field(
        default_factory=lambda: JobSchedule(cron="30 3 * * *"),
        description="Purge idempotency keys and track mappings older than 8 days (fn_purge_ingest_state).")
    gallery_calibration: JobSchedule = Field(
        default_factory=lambda: JobSchedule(cron="50 3 * * *"),
        description="Measure again the 1:N identification threshold of each face gallery that has grown or "
        "shrunk by 10 % since its last calibration (as `vigil models calibrate` does).")
    identification_fpir: float = Field(
        0.001, gt=0, lt=0.5, description="False-positive identification rate the nightly calibration holds: "
        "the share of strangers' faces that may be named as an enrolled person. Galleries of fewer than "
        "10 / identification_fpir enrolled faces are not calibrated.")
    health_log_interval_s: float = Field(
        60.0, gt=0, description="How often each replica writes its own figures, and at most how often a "
        "node's heartbeat is written, to system_health_logs.")
    device_offline_after_s: float = Field(
        60.0, gt=0, description="A camera with no frame (and a DVR with no camera delivering) for this long is "
        "marked offline, logged and alerted.")
    media_batch_size: int = Field(200, ge=1, le=10_000, description="Media deleted per batch by media_retention.")


class SecuritySettings(BaseModel):
    """Keys for secrets at rest."""

    encryption_key: SecretStr | None = Field(
        None,
        description="Base64 of 32 random bytes: the AES-256-GCM key for DVR passwords, bot tokens and API "
        "secrets. Unset: a key is generated into the state directory (fine for a laptop, not for production).",
    )


class VigilSettings(BaseSettings):
    """Every setting of a Vigil process."""

    model_config = SettingsConfigDict(env_prefix="VIGIL_", env_nested_delimiter="__", extra="forbid")

    state_dir: Path = Field(Path(".vigil"), description="All embedded services' data, logs and pid files.")
    host: str = Field("127.0.0.1", description="Address the embedded services bind to.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    log_format: Literal["console", "json"] = Field("console", description="Human-readable or JSON logs.")
    start_timeout_s: float = Field(60.0, gt=0, description="How long `stack up` waits for a service to be healthy.")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    triton: TritonSettings = Field(default_factory=TritonSettings)
    control: ControlSettings = Field(default_factory=ControlSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    node: NodeSettings = Field(default_factory=NodeSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("VIGIL_CONFIG", "vigil.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    def resolved_state_dir(self) -> Path:
        return self.state_dir.expanduser().resolve()


def load_settings(**overrides) -> VigilSettings:
    """Settings from the environment and config file, with explicit overrides on top."""
    return VigilSettings(**overrides)
