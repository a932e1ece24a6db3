"""The `vigil` command against the running test stack (settings come from the environment)."""

import json

import pytest
from typer.testing import CliRunner

from tests.fixtures.stack import TEST_PORTS
from vigil.cli import app


@pytest.fixture
def run(stack, stack_state_dir, monkeypatch):
    for name, value in {**TEST_PORTS, "VIGIL_STATE_DIR": str(stack_state_dir)}.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_stack_status_json(run):
    result = run("stack", "status", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["service"] for r in rows} == {"postgres", "valkey", "seaweedfs", "triton"}
    assert all(r["healthy"] and r["mode"] == "embedded" for r in rows)


def test_db_status_and_partitions(run):
    status = run("db", "status")
    assert status.exit_code == 0 and "pending" not in status.stdout and "0018" in status.stdout
    migrate = run("db", "migrate")
    assert migrate.exit_code == 0 and "schema is current" in migrate.stdout
    parts = run("db", "partitions", "--list")
    assert parts.exit_code == 0 and "events_default" in parts.stdout


def test_logs_and_config_hide_secrets(run, endpoints):
    logs = run("stack", "logs", "postgres", "-n", "5")
    assert logs.exit_code == 0 and "postgres.log" in logs.stdout
    assert run("stack", "logs", "nope").exit_code == 2
    shown = run("config", "show")
    assert shown.exit_code == 0
    for secret in (endpoints.s3_secret_key, endpoints.encryption_key, endpoints.database_dsn.split(":")[2].split("@")[0]):
        assert secret not in shown.stdout
