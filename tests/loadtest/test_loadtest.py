"""`vigil loadtest` end to end on a tiny configuration: the command as a user runs it (a child
process of its own, on the test stack's state dir and ports), its JSON results non-zero. The
figures themselves are the benches' business (bench/, BENCHMARKS.md), never asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from vigil.loadtest.common import settings_env


def run_loadtest(settings, tmp_path, *args: str, timeout: float = 600) -> dict:
    out = tmp_path / "result.json"
    env = {**os.environ, **settings_env(settings), "VIGIL_LOG_LEVEL": "warning"}
    done = subprocess.run([sys.executable, "-m", "vigil.cli", "loadtest", *args, "--json", str(out)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_control_loadtest_reports_rates(stack, settings, tmp_path):
    result = run_loadtest(settings, tmp_path, "control", "--cameras", "2", "--duration", "6", "--warmup", "2",
                          "--track-seconds", "1", "--gallery", "50")
    assert result["kind"] == "control"
    assert result["track_updates_per_s"] > 0
    assert result["events_per_s"] > 0, result  # tracks start every second: events reach the feed
    assert result["ack_latency_ms"]["p99"] is not None
    assert result["rejected_batches"] == 0, result["errors"]
    assert result["control_plane"]["rss_mb_max"] > 0


def test_pipeline_loadtest_reports_streams(stack, settings, served_models, tmp_path):
    result = run_loadtest(settings, tmp_path, "pipeline", "--streams", "1", "--duration", "4", "--warmup", "3",
                          "--rate", "max")
    assert result["kind"] == "pipeline"
    assert len(result["streams"]) == 1
    assert result["streams"][0]["processed_fps"] > 0, result
    assert result["node"]["rss_mb_max"] > 0
    assert result["control_plane"]["rss_mb_max"] > 0
