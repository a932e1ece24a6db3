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
    for secret in (
        endpoints.s3_secret_key,
        endpoints.encryption_key,
        endpoints.database_dsn.split(":")[2].split("@")[0],
    ):
        assert secret not in shown.stdout


@pytest.mark.parametrize("command", [("config", "show"), ("db", "status"), ("models", "list"), ("stack", "status"),
                                     ("loadtest", "control"), ("samples", "build"), ("control", "serve")])
def test_every_group_refuses_an_invalid_configuration_naming_the_setting(command, monkeypatch):
    monkeypatch.setenv("VIGIL_CONTROL__PORT", "not-a-port")
    result = CliRunner().invoke(app, list(command))
    assert result.exit_code == 2, result.output
    assert "invalid configuration" in result.output and "port" in result.output


def test_control_serve_refuses_stale_generated_code(tmp_path, monkeypatch):
    import shutil

    from vigil import api_build

    shutil.copytree(api_build.PROTO_ROOT / "vigil", tmp_path / "vigil")
    changed = tmp_path / "vigil" / "v1" / "camera.proto"
    changed.write_text(changed.read_text() + "\n// not yet generated\n")
    monkeypatch.setattr(api_build, "PROTO_ROOT", tmp_path)
    result = CliRunner().invoke(app, ["control", "serve"])
    assert result.exit_code == 2, result.output
    assert "python -m vigil.api_build" in " ".join(result.output.split())  # rich wraps at 80
