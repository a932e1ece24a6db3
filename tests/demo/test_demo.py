"""`vigil demo` end to end, as `make run` runs it: its own embedded stack (fresh state directory,
ports apart from the session stack's), a fresh model repository (prepared, then bound by a
Triton restart), a control plane and a portable pipeline node as child processes, the sample
videos replayed as two cameras. A second run on the same state directory reuses everything."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.stack import PORT_OFFSET, REPO_ROOT, TEST_PORTS, make_state_dir

DEMO_PORT_SHIFT = 700  # apart from the session stack of this run (TEST_PORTS) and from the defaults
MEDIA_CACHE = REPO_ROOT / ".vigil" / "media"  # the sample videos other suites use, built once


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    state_dir = make_state_dir("vigil-demo-test-")
    models = tmp_path_factory.mktemp("demo_triton_models")
    for config in (REPO_ROOT / "triton_models").glob("*/config.pbtxt"):
        (models / config.parent.name).mkdir()
        shutil.copy(config, models / config.parent.name / config.name)
    env = {
        **os.environ,
        **{name: str(int(port) + DEMO_PORT_SHIFT) for name, port in TEST_PORTS.items()},
        "VIGIL_CONTROL__PORT": str(50051 + PORT_OFFSET + DEMO_PORT_SHIFT),
        "VIGIL_STATE_DIR": str(state_dir),
        "VIGIL_TRITON__MODEL_REPOSITORY": str(models),
    }
    try:
        yield env
    finally:
        subprocess.run([sys.executable, "-m", "vigil.cli", "stack", "down"], env=env, capture_output=True,
                       timeout=120)
        shutil.rmtree(state_dir, ignore_errors=True)


def run_demo(env: dict, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = subprocess.run([sys.executable, "-m", "vigil.cli", "demo", "--media-dir", str(MEDIA_CACHE), *args],
                            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"vigil demo exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    summary_file = Path(env["VIGIL_STATE_DIR"]) / "logs" / "demo-summary.json"
    return result, json.loads(summary_file.read_text())


@pytest.mark.timeout(1500)
def test_demo_recognises_alerts_and_reruns(demo_env):
    first, summary = run_demo(demo_env)
    out = first.stdout
    assert "✓ stack ready" in out and "✓ pipeline node demo-node registered" in out
    assert "Triton restarted to bind them" in out  # a fresh model repository: prepared, then bound
    assert summary["ended"] == "both videos ended"

    # the enrolled person (from a photo no frame shows) is recognised, live and in the summary
    assert "recognised Barack Obama" in out
    assert [i["name"] for i in summary["identities"]] == ["Barack Obama"]
    assert summary["identities"][0]["best_similarity"] > 0.5
    # Biden and the astronaut are not enrolled: unknown faces, clustered
    assert summary["events"].get("face detected", 0) >= 1
    # the street camera's walkers and its two parked vehicles, from the object detector (NanoDet)
    assert summary["events"].get("human detected", 0) >= 10 and summary["events"].get("object detected", 0) >= 1
    assert " detected (confidence" in out and ("car detected" in out or "truck detected" in out)
    assert summary["unknown_clusters"], out
    # the watchlist rule and the restricted zone raise alerts
    rules = {a["rule"] for a in summary["alerts"]}
    assert "Watchlist: Demo VIPs" in rules
    assert any(r.startswith("Restricted zone:") for r in rules), rules
    assert "Vehicle stopped: Street east side" in rules  # the parked van: loitering@2 over vehicles
    assert summary["activities"].get("intrusion", 0) >= 1
    # both files were played to the end and processed
    assert [s["state"] for s in summary["streams"]] == ["stopped", "stopped"]
    assert all(s["frames_processed"] > 0 and s["fps"] > 0 for s in summary["streams"])
    assert "make stack-down" in out

    # `make run` again: the stack is up, the models are bound, the configuration is reused
    second, again = run_demo(demo_env, "--speed", "max")
    assert "reused from an earlier run" in second.stdout
    assert "Triton restarted" not in second.stdout
    assert again["ended"] == "both videos ended"
    assert [i["name"] for i in again["identities"]] == ["Barack Obama"]
    assert [s["state"] for s in again["streams"]] == ["stopped", "stopped"]
