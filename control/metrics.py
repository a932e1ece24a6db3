"""Prometheus metrics of one control-plane replica, and the request figures it logs to
system_health_logs.

Each ControlApp owns a registry of its own (two replicas in one test process must not collide in
the client library's global registry); `serve_metrics()` exposes it on control.metrics_port.

    app.metrics.ingest_batches.labels(outcome="accepted").inc()
    with app.metrics.recognition_seconds.time(): ...
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import grpc
from grpc import aio
from prometheus_client import Counter, Gauge, Histogram

from vigil.metrics import MetricsEndpoint

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WINDOW_S = 300.0  # the request window behind the logged requests/s, p99 and error rate


@dataclass(frozen=True)
class RequestFigures:
    requests_per_second: float
    p99_latency_ms: float
    error_rate: float
    requests: int


class RequestWindow:
    """Unary calls of the last WINDOW_S seconds: (finish time, seconds, failed)."""

    def __init__(self, window_s: float = WINDOW_S):
        self.window_s = window_s
        self._calls: deque[tuple[float, float, bool]] = deque()
        self._lock = threading.Lock()

    def record(self, seconds: float, failed: bool) -> None:
        now = time.monotonic()
        with self._lock:
            self._calls.append((now, seconds, failed))
            self._trim(now)

    def figures(self) -> RequestFigures:
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            calls = list(self._calls)
        if not calls:
            return RequestFigures(0.0, 0.0, 0.0, 0)
        span = max(min(self.window_s, now - calls[0][0]), 1.0)
        latencies = sorted(c[1] for c in calls)
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        return RequestFigures(len(calls) / span, p99 * 1000, sum(c[2] for c in calls) / len(calls), len(calls))

    def _trim(self, now: float) -> None:
        while self._calls and now - self._calls[0][0] > self.window_s:
            self._calls.popleft()


class ControlMetrics(MetricsEndpoint):
    def __init__(self):
        super().__init__()
        r = self.registry
        self.requests = Counter("vigil_control_requests", "gRPC calls handled, by method and status code",
                                ["method", "code"], registry=r)
        self.request_seconds = Histogram("vigil_control_request_seconds", "Duration of unary gRPC calls",
                                         ["method"], buckets=LATENCY_BUCKETS, registry=r)
        self.ingest_batches = Counter("vigil_ingest_batches", "Track batches received, by outcome "
                                      "(accepted, duplicate, rejected, retry)", ["outcome"], registry=r)
        self.ingest_updates = Counter("vigil_ingest_updates", "Track updates in accepted batches", registry=r)
        self.recognition_seconds = Histogram("vigil_recognition_seconds", "Face recognition time per track batch",
                                             buckets=LATENCY_BUCKETS, registry=r)
        self.feed_subscribers = Gauge("vigil_feed_subscribers", "Open EventService.Subscribe streams", registry=r)
        self.feed_lag_messages = Histogram("vigil_feed_lag_messages", "Feed messages queued for a subscriber when "
                                           "one is delivered", buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500),
                                           registry=r)
        self.feed_outbox_depth = Gauge("vigil_feed_outbox_depth", "Feed messages awaiting the Redis relay", registry=r)
        self.job_runs = Counter("vigil_job_runs", "Scheduled job runs on this replica, by job and outcome "
                                "(succeeded, failed, skipped)", ["job", "outcome"], registry=r)
        self.job_seconds = Histogram("vigil_job_seconds", "Duration of scheduled job runs", ["job"],
                                     buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900), registry=r)
        self.job_last_success = Gauge("vigil_job_last_success_timestamp_seconds",
                                      "When the job last succeeded on this replica", ["job"], registry=r)
        self.db_pool = Gauge("vigil_db_pool_connections", "Connections of the main pool, by state (size, "
                             "available, waiting)", ["state"], registry=r)
        self.nodes = Gauge("vigil_fleet_nodes", "Pipeline nodes by state (as of the last device-health run)",
                           ["state"], registry=r)
        self.offline_cameras = Gauge("vigil_fleet_offline_cameras", "Cameras marked offline", registry=r)
        self.window = RequestWindow()

    def observe_pool(self, pool) -> dict[str, int]:
        stats = pool.get_stats()
        figures = {"size": stats.get("pool_size", 0), "available": stats.get("pool_available", 0),
                   "waiting": stats.get("requests_waiting", 0), "max": pool.max_size}
        for state in ("size", "available", "waiting"):
            self.db_pool.labels(state=state).set(figures[state])
        return figures


class MetricsInterceptor(aio.ServerInterceptor):
    """Counts every call by method and status and times unary ones (streams live for minutes)."""

    def __init__(self, metrics: ControlMetrics):
        self.metrics = metrics

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):  # noqa: C901
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        metrics = self.metrics
        kwargs = dict(request_deserializer=handler.request_deserializer,
                      response_serializer=handler.response_serializer)

        def finish(context, started: float | None, failed: bool) -> None:
            code = _code(context, failed)
            metrics.requests.labels(method=method, code=code).inc()
            if started is not None:
                seconds = time.perf_counter() - started
                metrics.request_seconds.labels(method=method).observe(seconds)
                metrics.window.record(seconds, code != "OK")

        if handler.unary_unary:
            async def unary_unary(request, context):
                started, failed = time.perf_counter(), True
                try:
                    response = await handler.unary_unary(request, context)
                    failed = False
                    return response
                finally:
                    finish(context, started, failed)
            return grpc.unary_unary_rpc_method_handler(unary_unary, **kwargs)

        def streaming(behaviour, stream_out: bool):
            if stream_out:
                async def wrapped(request, context):
                    failed = True
                    try:
                        async for item in behaviour(request, context):
                            yield item
                        failed = False
                    finally:
                        finish(context, None, failed)
            else:
                async def wrapped(request, context):
                    failed = True
                    try:
                        response = await behaviour(request, context)
                        failed = False
                        return response
                    finally:
                        finish(context, None, failed)
            return wrapped

        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream, True), **kwargs)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(streaming(handler.stream_unary, False), **kwargs)
        return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream, True), **kwargs)


def _code(context, failed: bool) -> str:
    try:
        code = context.code()
    except Exception:  # noqa: BLE001 - older grpc: no code() on the aio context
        code = None
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):  # some versions hand back the numeric value
        named = {c.value[0]: c.name for c in grpc.StatusCode}
        return named.get(code, str(code))
    return "UNKNOWN" if failed else "OK"
