"""A pipeline node as the tests drive it: registration, heartbeats and a WatchAssignments reader
that applies the changes it receives, as the node agent does."""

from __future__ import annotations

import asyncio
import uuid

from vigil.api.v1 import node_pb2 as pb
from vigil.api.v1 import node_pb2_grpc

MODEL_VERSION = "sface-2021dec-int8"
# the lease and heartbeat interval of the node suite's short-lease replica
SHORT_LEASE_S = 2.0
SHORT_HEARTBEAT_S = 0.5


def node_message(node_id: str | None = None, *, name: str | None = None, capacity: int = 8,
                 backend: int = pb.NODE_BACKEND_PORTABLE, **fields) -> pb.Node:
    node_id = node_id or str(uuid.uuid4())
    return pb.Node(id=node_id, name=name or f"node-{node_id[:8]}", hostname="test-host", backend=backend,
                   capacity_streams=capacity, embedding_model_version=MODEL_VERSION,
                   cpu=pb.CpuInfo(model="test cpu", logical_cores=2, memory_total_bytes=8 << 30),
                   versions={"vigil": "0.1.0", "python": "3.11"}, **fields)


async def register_node(channel, metadata, node_id: str | None = None, *, name: str | None = None,
                        capacity: int = 8, **fields) -> pb.RegisterNodeResponse:
    """Register (or re-register) a node the way a node agent does at start-up."""
    stub = node_pb2_grpc.NodeServiceStub(channel)
    return await stub.RegisterNode(pb.RegisterNodeRequest(node=node_message(
        node_id, name=name, capacity=capacity, **fields)), metadata=metadata)


class Watch:
    """One WatchAssignments call and the node's resulting streams (camera id → StreamAssignment)."""

    def __init__(self, stub, metadata, node_id: str):
        self.call = stub.WatchAssignments(pb.WatchAssignmentsRequest(node_id=node_id), metadata=metadata)
        self.streams: dict[str, pb.StreamAssignment] = {}
        self.received: list[pb.WatchAssignmentsResponse] = []

    async def next(self, timeout_s: float = 10.0) -> pb.WatchAssignmentsResponse:
        async with asyncio.timeout(timeout_s):
            response = await self.call.read()
        self.received.append(response)
        if response.snapshot:
            self.streams = {}
        for change in response.changes:
            if change.kind == pb.ASSIGNMENT_CHANGE_KIND_REMOVE:
                self.streams.pop(change.camera_id, None)
            else:
                self.streams[change.camera_id] = change.assignment
        return response

    async def until(self, predicate, timeout_s: float = 15.0) -> dict[str, pb.StreamAssignment]:
        """Read changes until predicate(streams) holds."""
        async with asyncio.timeout(timeout_s):
            while not predicate(self.streams):
                await self.next(timeout_s)
        return self.streams

    def changes(self, camera_id: str) -> list[int]:
        """Kinds of the changes received for a camera, in order."""
        return [c.kind for r in self.received for c in r.changes if c.camera_id == camera_id]

    def cancel(self) -> None:
        self.call.cancel()


async def heartbeats(stub, metadata, node_id: str, interval_s: float) -> None:
    """Heartbeat forever (a background task the test cancels)."""
    while True:
        await stub.Heartbeat(pb.HeartbeatRequest(node_id=node_id), metadata=metadata)
        await asyncio.sleep(interval_s)


def assignable_count(db) -> int:
    """Cameras any node should run now (other suites' included)."""
    return db.execute("SELECT count(*) FROM cameras WHERE is_active AND rtsp_url IS NOT NULL"
                      " AND btrim(rtsp_url) <> ''").fetchone()[0]
