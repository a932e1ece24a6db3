"""The control plane's Prometheus endpoint scraped and parsed as Prometheus would, its own
health row in system_health_logs, and the fleet in GetDashboardStats."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.control import database, stream_camera
from tests.storage.builders import make_camera
from vigil.api.v1 import event_pb2 as epb
from vigil.api.v1 import job_pb2 as jpb
from vigil.control.jobs.health import log_control_health


def scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


async def test_control_metrics_endpoint_parses(app, jobs, events, as_role):
    port = app.metrics.serve("127.0.0.1", 0)
    await jobs.RunJob(jpb.RunJobRequest(name="ingest_state"), metadata=as_role("super_admin"))
    await jobs.ListJobs(jpb.ListJobsRequest(), metadata=as_role("admin"))
    await events.GetDashboardStats(epb.GetDashboardStatsRequest(), metadata=as_role("viewer"))
    app.metrics.observe_pool(app.pool)

    families = await asyncio.to_thread(scrape, port)

    requests = {(s.labels["method"], s.labels["code"]): s.value for s in families["vigil_control_requests"]
                if s.name == "vigil_control_requests_total"}
    assert requests[("/vigil.v1.JobService/ListJobs", "OK")] >= 1
    latency = [s for s in families["vigil_control_request_seconds"]
               if s.name == "vigil_control_request_seconds_count" and s.labels["method"].endswith("ListJobs")]
    assert latency and latency[0].value >= 1
    runs = {(s.labels["job"], s.labels["outcome"]): s.value for s in families["vigil_job_runs"]
            if s.name == "vigil_job_runs_total"}
    assert runs[("ingest_state", "succeeded")] >= 1
    for name in ("vigil_ingest_batches", "vigil_recognition_seconds", "vigil_feed_subscribers",
                 "vigil_feed_lag_messages", "vigil_db_pool_connections", "vigil_job_seconds"):
        assert name in families, name
    assert {s.labels["state"] for s in families["vigil_db_pool_connections"]} == {"size", "available", "waiting"}


async def test_control_plane_logs_its_health(app, db):
    metrics = await log_control_health(app.jobs.context)
    row = db.execute("SELECT status::text, metrics FROM system_health_logs WHERE component = 'control_plane'"
                     " ORDER BY timestamp DESC LIMIT 1").fetchone()
    assert row[1]["replica"] == app.jobs.replica == metrics["replica"]
    for key in ("requests_per_second", "p99_latency_ms", "error_rate", "db_pool_use", "feed_outbox_depth"):
        assert key in row[1], key
    assert row[1]["requests"] >= 1  # the calls of the other tests of this module


async def test_dashboard_stats_show_the_fleet(app, events, as_role, db):
    async def fleet(role: str = "admin"):
        return (await events.GetDashboardStats(epb.GetDashboardStatsRequest(), metadata=as_role(role))).stats

    before = (await fleet()).fleet
    streaming = await stream_camera(app)  # active with a URL: should stream
    async with database(app) as conn:
        no_url = await make_camera(conn, app.secrets)
        blank_url, inactive = await make_camera(conn, app.secrets), await make_camera(conn, app.secrets)
        offline = await make_camera(conn, app.secrets, name="0 offline")  # sorts first: listed below the cap
    db.execute("UPDATE cameras SET rtsp_url = '  ' WHERE id = %s", (blank_url.id,))
    db.execute("UPDATE cameras SET rtsp_url = 'rtsp://10.0.0.5/off', is_active = false WHERE id = %s", (inactive.id,))
    db.execute("UPDATE cameras SET status = 'offline' WHERE id = %s", (offline.id,))
    after = (await fleet()).fleet

    assert after.streaming_cameras == before.streaming_cameras + 1  # of the five, only `streaming`
    assert str(offline.id) in after.offline_camera_ids and str(offline.id) not in before.offline_camera_ids
    assert not {str(c.id) for c in (no_url, blank_url, inactive)} & set(after.offline_camera_ids)
    assert streaming not in after.offline_camera_ids
    assert len(after.offline_camera_ids) <= 100
    # every registered node, by name
    assert [n.id for n in after.nodes] == [str(r[0]) for r in db.execute(
        "SELECT id FROM pipeline_nodes ORDER BY name, id").fetchall()]
    # a viewer reads the fleet too (nodes:read, migration 0024)
    assert (await fleet("viewer")).HasField("fleet")


async def test_vigil_status_reports_the_fleet(control, api_keys, db):
    from rich.console import Console

    from vigil.status import fetch_status, render

    address, _ = control
    found = await fetch_status(address, api_keys["admin"])
    assert len(found["nodes"]) == db.execute("SELECT count(*) FROM pipeline_nodes").fetchone()[0]
    assert set(found["alerts"]) == {"open", "today", "pending_today", "critical_today"}
    console = Console(record=True, width=120)
    render(found, console)
    text = console.export_text()
    assert "pipeline nodes" in text and "without a node" in text and "alerts:" in text
