"""The embedded stack: health, idempotent `up`, stale pid files, held ports, external URLs,
and no data lost across a restart."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import uuid

import psutil
import psycopg
import pytest
import redis

from tests.fixtures.stack import PORT_OFFSET, make_state_dir, settings_for
from vigil.stack import Stack, StackError
from vigil.storage.objectstore import ObjectStore

pytestmark = pytest.mark.stack  # embedded stacks of its own, besides the session's


def test_every_service_is_healthy(stack):
    rows = stack.status()
    assert [r.name for r in rows] == ["postgres", "valkey", "seaweedfs", "triton"]
    for row in rows:
        assert row.health.ok, f"{row.name}: {row.health.detail}"
        assert row.mode == "embedded" and row.pid
    details = {r.name: r.health.detail for r in rows}
    assert "pgvector" in details["postgres"]
    assert "Triton" in details["triton"]


def test_up_is_idempotent(stack):
    before = {r.name: r.pid for r in stack.status()}
    stack.up()
    assert {r.name: r.pid for r in stack.status()} == before


def test_stale_pid_file_is_recovered(stack):
    valkey = next(s for s in stack.services if s.name == "valkey")
    old_pid = valkey.process.read_pid()
    os.kill(old_pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(old_pid)], timeout=10)
    # a stale pid file that now names an unrelated live process (ours) must not be trusted
    valkey.process.pid_file.write_text(f"{os.getpid()}\n")
    assert not next(r for r in stack.status() if r.name == "valkey").health.ok
    stack.up()
    row = next(r for r in stack.status() if r.name == "valkey")
    assert row.health.ok and row.pid not in (old_pid, os.getpid())


def test_held_port_is_refused_and_nothing_starts():
    state = make_state_dir("vigil-portheld-")
    o = PORT_OFFSET + 50
    ports = dict(database={"port": 45432 + o}, redis={"port": 46379 + o},
                 s3={"port": 48333 + o, "internal_port_base": 47400 + o},
                 triton={"grpc_port": 48001 + o, "http_port": 48000 + o, "metrics_port": 48002 + o})
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 46379 + o))
    blocker.listen()
    try:
        s = Stack(settings_for(state, **ports))
        with pytest.raises(StackError, match=rf"valkey: port {46379 + o} .* held by"):
            s.up()
        assert not list((state / "run").glob("*.pid")) if (state / "run").exists() else True
    finally:
        blocker.close()
        shutil.rmtree(state, ignore_errors=True)


def test_external_urls_start_nothing(stack, endpoints):
    """With every URL configured the stack only checks health, and starts no process."""
    state = make_state_dir("vigil-external-")
    try:
        s = Stack(settings_for(
            state,
            database={"url": endpoints.database_dsn},
            redis={"url": endpoints.redis_url},
            s3={"endpoint": endpoints.s3_endpoint, "access_key": endpoints.s3_access_key,
                "secret_key": endpoints.s3_secret_key},
            triton={"url": endpoints.triton_url,
                    "access_token": next(iter(endpoints.triton_headers.values()))},
            security={"encryption_key": endpoints.encryption_key},
        ))
        rows = s.up(migrate=False)
        assert all(r.mode == "external" and r.pid is None and r.health.ok for r in rows), rows
        assert not (state / "run").exists() and not (state / "credentials.json").exists()
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_external_service_down_is_reported(stack):
    state = make_state_dir("vigil-external-down-")
    try:
        s = Stack(settings_for(state, redis={"url": "redis://127.0.0.1:1/0"}))
        row = next(r for r in s.status() if r.name == "valkey")
        assert row.mode == "external" and not row.health.ok
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_restart_loses_no_data(stack, endpoints):
    marker = uuid.uuid4().hex
    with psycopg.connect(endpoints.database_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS restart_probe (marker text)")
        conn.execute("INSERT INTO restart_probe VALUES (%s)", (marker,))
    r = redis.Redis.from_url(endpoints.redis_url)
    entry_id = r.xadd("vigil:restart-probe", {"marker": marker})
    r.close()
    store = ObjectStore.from_endpoints(endpoints)
    store.put(f"probe/{marker}.txt", marker.encode())

    stopped = stack.down()
    assert stopped == ["triton", "seaweedfs", "valkey", "postgres"]
    assert not any(r.health.ok for r in stack.status())
    stack.up()

    with psycopg.connect(endpoints.database_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM restart_probe WHERE marker = %s", (marker,)).fetchone()[0] == 1
        conn.execute("DROP TABLE restart_probe")
    r = redis.Redis.from_url(endpoints.redis_url, decode_responses=True)
    assert r.xrange("vigil:restart-probe", entry_id, entry_id)[0][1] == {"marker": marker}
    r.delete("vigil:restart-probe")
    r.close()
    assert store.get(f"probe/{marker}.txt") == marker.encode()
    store.delete(f"probe/{marker}.txt")
