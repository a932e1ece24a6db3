"""The benches' own embedded stack: state in /tmp/vigil-bench (VIGIL_BENCH_STATE_DIR to move it)
and every port moved by +900 from the defaults, so a bench never touches a developer's stack on
the default ports nor a test run (tests/conftest.py, VIGIL_TEST_PORT_OFFSET). A second bench stack
beside a running one: another VIGIL_BENCH_STATE_DIR and VIGIL_BENCH_PORT_OFFSET (added to its ports)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

_OFFSET = int(os.environ.get("VIGIL_BENCH_PORT_OFFSET", "0"))
BENCH_ENV = {
    "VIGIL_STATE_DIR": os.environ.get("VIGIL_BENCH_STATE_DIR", "/tmp/vigil-bench"),
    "VIGIL_DATABASE__PORT": str(56332 + _OFFSET),
    "VIGIL_REDIS__PORT": str(57279 + _OFFSET),
    "VIGIL_S3__PORT": str(59233 + _OFFSET),
    "VIGIL_S3__INTERNAL_PORT_BASE": str(49300 + _OFFSET),
    "VIGIL_TRITON__GRPC_PORT": str(58901 + _OFFSET),
    "VIGIL_TRITON__HTTP_PORT": str(58900 + _OFFSET),
    "VIGIL_TRITON__METRICS_PORT": str(58902 + _OFFSET),
    "VIGIL_LOG_LEVEL": os.environ.get("VIGIL_LOG_LEVEL", "warning"),
    # a 1M x 512-d gallery (heap ~2.6 GB, index 0.3-1.3 GB) searched from the buffer cache, as a
    # production server sized for its gallery would (database.shared_buffers_mb)
    "VIGIL_DATABASE__SHARED_BUFFERS_MB": os.environ.get("VIGIL_DATABASE__SHARED_BUFFERS_MB", "6144"),
}


def bench_settings():
    """Settings of the bench stack (the environment of this process is set too, so that child
    processes inherit it)."""
    os.environ.update(BENCH_ENV)
    Path(BENCH_ENV["VIGIL_STATE_DIR"]).mkdir(parents=True, exist_ok=True)
    os.chmod(BENCH_ENV["VIGIL_STATE_DIR"], 0o755)
    from vigil.logs import configure_logging
    from vigil.settings import load_settings

    settings = load_settings()
    configure_logging("warning", "console")
    return settings


def bench_stack(settings, *, models: bool = False):
    """The bench stack, started when needed (idempotent) and migrated; with models=True the face
    models are prepared, registered and served (as `vigil models prepare` + a Triton restart)."""
    from vigil.stack import Stack

    stack = Stack(settings)
    stack.up()
    if models:
        from vigil.demo.setup import serve_models
        from vigil.samples import load_sample_videos

        videos = load_sample_videos()
        serve_models(stack, settings, videos["people_walk"].enrol["obama"])
    return stack
