"""Figures for system_health_logs: each pipeline node's (from its heartbeats, at most one row per
node per jobs.health_log_interval_s) and each control-plane replica's own (requests/s, p99
latency, error rate over the last 5 minutes, database pool use), written every interval."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from vigil.api.v1 import node_pb2 as pb
from vigil.storage.repositories.events import FeedOutboxRepository
from vigil.storage.repositories.health import HealthLogRepository

_DEGRADED_STREAMS = {pb.STREAM_STATE_RECONNECTING, pb.STREAM_STATE_FAILED}


def node_health(node_id, request: pb.HeartbeatRequest) -> tuple[str, dict[str, Any], str]:
    """(status, metrics, message) of one heartbeat."""
    stats, streams = request.stats, request.streams
    troubled = [s.camera_id for s in streams if s.state in _DEGRADED_STREAMS]
    metrics = {
        "node_id": str(node_id),
        "streams": len(streams),
        "fps_processed": round(sum(s.processed_fps for s in streams), 2),
        "fps_decoded": round(sum(s.decode_fps for s in streams), 2),
        "inference_time_ms": round(stats.inference_duration.ToTimedelta().total_seconds() * 1000, 2),
        "dropped_frames": sum(s.dropped_frames for s in streams),
        "queue_depths": dict(stats.queue_depths),
        "cpu_utilization": round(stats.cpu_utilization, 3),
        "memory_used_bytes": stats.memory_used_bytes,
        "unacked_batches": stats.unacked_batches,
        "spooled_batches": stats.spooled_batches,
        "gpus": {str(g.index): {"utilization": round(g.utilization, 3), "memory_used_bytes": g.memory_used_bytes,
                                "decoder_utilization": round(g.decoder_utilization, 3),
                                "encoder_utilization": round(g.encoder_utilization, 3),
                                "temperature_celsius": round(g.temperature_celsius, 1)} for g in stats.gpus},
        "per_stream": {s.camera_id: {"state": pb.StreamState.Name(s.state), "fps": round(s.processed_fps, 2),
                                     "dropped_frames": s.dropped_frames, "queue_depth": s.queue_depth}
                       for s in streams},
    }
    status = "degraded" if troubled else "online"
    message = f"{len(troubled)} of {len(streams)} streams reconnecting or failed" if troubled else \
        f"{len(streams)} streams running"
    return status, metrics, message


async def record_node_health(conn, node_id, request: pb.HeartbeatRequest, interval: timedelta) -> bool:
    """One row per node per interval: a heartbeat every 2 s would otherwise write 43,200 rows a day."""
    status, metrics, message = node_health(node_id, request)
    return await HealthLogRepository(conn).record_node(node_id, status, metrics, message, interval)


async def log_control_health(app) -> dict[str, Any]:
    figures = app.metrics.window.figures()
    pool = app.metrics.observe_pool(app.pool)
    metrics = {"replica": app.replica, "requests_per_second": round(figures.requests_per_second, 3),
               "p99_latency_ms": round(figures.p99_latency_ms, 2), "error_rate": round(figures.error_rate, 4),
               "requests": figures.requests, "db_pool": pool,
               "db_pool_use": round((pool["size"] - pool["available"]) / max(pool["max"], 1), 3)}
    status = "degraded" if figures.error_rate > 0.05 or pool["waiting"] else "online"
    async with app.pool.connection() as conn:
        metrics["feed_outbox_depth"] = await FeedOutboxRepository(conn).depth()
        app.metrics.feed_outbox_depth.set(metrics["feed_outbox_depth"])
        await HealthLogRepository(conn).record_control_plane(status, metrics, f"replica {app.replica}")
    return metrics
