"""A pipeline node assembled from settings: identity, gRPC channel, publisher, backend, agent.

`vigil node run` calls run_node(); tests build the same pieces with build_node() and drive them.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from vigil.endpoints import Endpoints, resolve
from vigil.logs import get_logger
from vigil.models.faces import FaceAnalyzer
from vigil.pipeline.agent import NodeAgent, NodeIdentity
from vigil.pipeline.backend import Backend, choose_backend
from vigil.pipeline.gpu import GpuProbe
from vigil.pipeline.publisher import Publisher
from vigil.pipeline.snapshots import SnapshotWriter
from vigil.settings import VigilSettings
from vigil.storage.objectstore import ObjectStore

if TYPE_CHECKING:
    from vigil.pipeline.portable.objects import PreferredObjectDetector

log = get_logger("vigil.pipeline.node")

# the portable detector treats faces from this score on; ByteTrack uses the low band for matching
FACE_DETECTOR_FLOOR = 0.3


class NodeConfigError(ValueError):
    """A setting the node cannot run without; the message says which and how to set it."""


@dataclass
class Node:
    agent: NodeAgent
    channel: grpc.aio.Channel
    analyzer: FaceAnalyzer | None
    objects: PreferredObjectDetector | None = None

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.agent.run(stop)
        finally:
            self.agent.metrics.close()
            await self.channel.close()
            if self.analyzer is not None:
                self.analyzer.close()
            if self.objects is not None:
                self.objects.close()


def control_target(settings: VigilSettings) -> str:
    return settings.node.control_url or f"{settings.control.host}:{settings.control.port}"


def build_node(settings: VigilSettings, endpoints: Endpoints | None = None, *, api_key: str | None = None,
               name: str | None = None, gpus: GpuProbe | None = None) -> Node:
    """gpus: how the node reads its GPUs (default: NVML)."""
    node = settings.node
    key = api_key or (node.api_key.get_secret_value() if node.api_key else None)
    if not key:
        raise NodeConfigError("the node needs an API key: pass --key or set VIGIL_NODE__API_KEY "
                              "(create one with `vigil keys create --role api_client --name my-node`)")
    name = name or node.name or socket.gethostname()
    backend_name = choose_backend(node.backend)
    endpoints = endpoints or resolve(settings)
    home = settings.resolved_state_dir() / "node" / name
    identity = NodeIdentity.load(home / "node_id", name[:100], node.capacity_streams, node.embedding_model_version)
    target = control_target(settings)
    channel = grpc.aio.insecure_channel(target)
    agent_ref: list[NodeAgent] = []

    async def reregister() -> None:  # the publisher found the node unknown (its record was deleted)
        await agent_ref[0].register()

    publisher = Publisher(target=target, api_key=key, node_id=identity.id,
                          spool_dir=Path(node.spool_dir) if node.spool_dir else home / "spool",
                          on_unregistered=reregister)
    analyzer = objects = None
    if backend_name == "portable":
        from vigil.pipeline.portable.backend import PortableBackend
        from vigil.pipeline.portable.objects import PreferredObjectDetector

        analyzer = FaceAnalyzer(endpoints, score_threshold=FACE_DETECTOR_FLOOR, canvas_size=node.face_detector_canvas)
        objects = PreferredObjectDetector(endpoints)
        backend: Backend = PortableBackend(
            node_id=identity.id, analyzer=analyzer, objects=objects, publish=publisher.publish,
            model_version=node.embedding_model_version,
            snapshots=SnapshotWriter(ObjectStore.from_endpoints(endpoints)), batch_size=node.batch_size,
            publish_interval_s=node.publish_interval_s, object_every=node.object_detect_every,
            clip_buffer_s=node.clip_buffer_s)
    else:  # pragma: no cover - needs pyds and a GPU
        from vigil.pipeline.deepstream.backend import DeepStreamBackend

        backend = DeepStreamBackend.from_settings(settings, endpoints, node_id=identity.id,
                                                  publish=publisher.publish)
    agent = NodeAgent(identity, channel, key, backend, publisher, gpus)
    agent.uploads = ObjectStore.from_endpoints(endpoints)  # clips go to the media bucket, like snapshots
    agent_ref.append(agent)
    return Node(agent, channel, analyzer, objects)


async def run_node(settings: VigilSettings, *, api_key: str | None = None, name: str | None = None) -> None:
    """Run until SIGINT/SIGTERM; the second signal is not needed: shutdown is bounded."""
    node = build_node(settings, api_key=api_key, name=name)
    if node.analyzer is not None:
        await asyncio.to_thread(node.analyzer.wait_until_ready, 120.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if settings.node.metrics_port is not None:
        try:
            port = node.agent.metrics.serve(settings.node.metrics_host, settings.node.metrics_port)
            log.info("metrics endpoint serving", address=f"http://{settings.node.metrics_host}:{port}/metrics")
        except OSError as exc:  # e.g. a second node on this host: processing matters more than being scraped
            log.error("metrics endpoint not started: set VIGIL_NODE__METRICS_PORT to a free port (0 = any)",
                      port=settings.node.metrics_port, error=str(exc))
    log.info("node starting", node=node.agent.identity.name, node_id=str(node.agent.identity.id),
             backend=node.agent.backend.name, control=control_target(settings))
    await node.run(stop)
