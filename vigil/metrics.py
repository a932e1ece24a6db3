"""A process's Prometheus metrics: its own registry, served as /metrics over HTTP on a daemon
thread. The control plane (control/metrics.py) and pipeline nodes (pipeline/metrics.py) define
their metrics on top of it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server


class MetricsEndpoint:
    def __init__(self):
        self.registry = CollectorRegistry()
        self._server = None

    def serve(self, host: str, port: int) -> int:
        """Start the /metrics HTTP endpoint (port 0: any free port); the port it listens on."""
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return self._server.server_port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
