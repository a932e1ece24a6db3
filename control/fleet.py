"""The fleet summary of GetDashboardStats and `vigil status`: nodes with their streams and load,
cameras no node runs, cameras marked offline, open alerts."""

from __future__ import annotations

from vigil.api.v1 import event_pb2 as pb
from vigil.api.v1 import node_pb2
from vigil.control.convert import from_json, timestamp
from vigil.storage.repositories.fleet import FleetRepository, NodeSummary

MAX_OFFLINE_LISTED = 100


def fleet_node(n: NodeSummary) -> pb.FleetNode:
    node = pb.FleetNode(id=str(n.id), name=n.name, state=node_pb2.NodeState.Value(f"NODE_STATE_{n.state.upper()}"),
                        streams=n.streams, capacity_streams=n.capacity_streams, processed_fps=n.fps,
                        dropped_frames=n.dropped, running_streams=n.running,
                        last_heartbeat_time=timestamp(n.last_heartbeat_at))
    for gpu in n.gpus:
        from_json(gpu, node.gpus.add())
    for gpu in n.gpu_stats:
        from_json(gpu, node.gpu_stats.add())
    return node


async def fleet_stats(conn) -> pb.FleetStats:
    fleet = await FleetRepository(conn).summary(max_offline_listed=MAX_OFFLINE_LISTED)
    return pb.FleetStats(
        nodes=[fleet_node(n) for n in fleet.nodes],
        unassigned_streams=fleet.unassigned_streams, streaming_cameras=fleet.streaming_cameras,
        offline_camera_ids=[str(i) for i in fleet.offline_camera_ids], open_alerts=fleet.open_alerts,
        alerts_today=fleet.alerts_today)
