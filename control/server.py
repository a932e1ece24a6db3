"""`vigil control serve`: the asyncio gRPC server of one control-plane replica."""

from __future__ import annotations

import asyncio
import gc
import signal

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from vigil.api_build import ensure_current as ensure_api_current
from vigil.control.app import ControlApp
from vigil.control.auth import AuthInterceptor
from vigil.control.metrics import MetricsInterceptor
from vigil.logs import get_logger
from vigil.settings import VigilSettings

log = get_logger("vigil.control")


def _load_api_modules() -> None:
    """Reflection resolves symbols from the default descriptor pool: load every API file into it."""
    import importlib

    from vigil.api.v1 import PROTO_MODULES

    for name in PROTO_MODULES:
        importlib.import_module(f"vigil.api.v1.{name}_pb2")


async def build_server(app: ControlApp, address: str) -> tuple[aio.Server, int, health.aio.HealthServicer]:
    options = [
        ("grpc.max_receive_message_length", app.settings.control.max_message_bytes),
        ("grpc.max_send_message_length", app.settings.control.max_message_bytes),
    ]
    _load_api_modules()
    auth = AuthInterceptor(app.authenticate, app.rate_limiter, app.permissions)
    # metrics outermost: refused calls (unauthenticated, rate-limited) are counted too
    server = aio.server(interceptors=[MetricsInterceptor(app.metrics), auth], options=options)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    from vigil.control.services import servicers

    names = []
    for servicer, add, name in servicers(app):
        add(servicer, server)
        names.append(name)
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}: is the port in use? set VIGIL_CONTROL__PORT")
    return server, port, health_servicer


async def serve(settings: VigilSettings) -> None:
    ensure_api_current()  # generated at build time (make install, python -m vigil.api_build), never here
    app = ControlApp(settings)
    await app.start()
    address = f"{settings.control.host}:{settings.control.port}"
    server, port, health_servicer = await build_server(app, address)
    await server.start()
    # what starting built (modules, descriptors, pools) lives as long as the process: frozen, the full
    # collections no longer scan it (each paused the event loop ~200 ms: the feed's p99, BENCHMARKS.md)
    gc.collect()
    gc.freeze()
    if settings.control.metrics_port is not None:
        try:
            metrics_port = app.metrics.serve(settings.control.host, settings.control.metrics_port)
            log.info("metrics endpoint serving", address=f"http://{settings.control.host}:{metrics_port}/metrics")
        except OSError as exc:  # serving the API matters more than being scraped
            log.error("metrics endpoint not started: set VIGIL_CONTROL__METRICS_PORT to a free port (0 = any)",
                      port=settings.control.metrics_port, error=str(exc))
    log.info("control plane serving", address=f"{settings.control.host}:{port}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining")
    await health_servicer.enter_graceful_shutdown()  # load balancers stop sending new calls
    await app.nodes.stop()  # WatchAssignments streams end (OK); their nodes reconnect to another replica
    await server.stop(grace=10)
    await app.stop()
