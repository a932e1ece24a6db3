"""The fleet summary of GetDashboardStats and `vigil status`: nodes with their streams and load,
cameras no node runs, cameras marked offline, open alerts."""

from __future__ import annotations

from vigil.api.v1 import event_pb2 as pb
from vigil.api.v1 import node_pb2
from vigil.control.convert import timestamp

MAX_OFFLINE_LISTED = 100

_NODES = """
SELECT n.id, n.name, n.state, n.capacity_streams, n.last_heartbeat_at,
       (SELECT count(*) FROM stream_assignments a WHERE a.node_id = n.id) AS streams,
       (SELECT COALESCE(sum((s->>'processed_fps')::float8), 0) FROM jsonb_array_elements(n.streams) s) AS fps,
       (SELECT COALESCE(sum((s->>'dropped_frames')::bigint), 0)::bigint FROM jsonb_array_elements(n.streams) s)
           AS dropped,
       (SELECT count(*) FROM jsonb_array_elements(n.streams) s WHERE s->>'state' = 'STREAM_STATE_RUNNING') AS running
FROM pipeline_nodes n ORDER BY n.name, n.id
"""

_STREAMING = "c.is_active AND c.rtsp_url IS NOT NULL AND btrim(c.rtsp_url) <> ''"


async def fleet_stats(conn) -> pb.FleetStats:
    nodes = await (await conn.execute(_NODES)).fetchall()
    counts = await (await conn.execute(
        f"SELECT count(*) FILTER (WHERE {_STREAMING}) AS streaming,"
        f" count(*) FILTER (WHERE {_STREAMING} AND NOT EXISTS"
        "   (SELECT 1 FROM stream_assignments a WHERE a.camera_id = c.id)) AS unassigned FROM cameras c")).fetchone()
    offline = await (await conn.execute(
        "SELECT id FROM cameras WHERE is_active AND status = 'offline' ORDER BY name, id LIMIT %s",
        (MAX_OFFLINE_LISTED,))).fetchall()
    alerts = await (await conn.execute(
        "SELECT count(*) FILTER (WHERE status IN ('pending', 'sent', 'acknowledged')) AS open,"
        " count(*) FILTER (WHERE created_at >= date_trunc('day', now())) AS today FROM alerts")).fetchone()
    return pb.FleetStats(
        nodes=[pb.FleetNode(id=str(n["id"]), name=n["name"],
                            state=node_pb2.NodeState.Value(f"NODE_STATE_{n['state'].upper()}"),
                            streams=n["streams"], capacity_streams=n["capacity_streams"], processed_fps=n["fps"],
                            dropped_frames=n["dropped"], running_streams=n["running"],
                            last_heartbeat_time=timestamp(n["last_heartbeat_at"])) for n in nodes],
        unassigned_streams=counts["unassigned"], streaming_cameras=counts["streaming"],
        offline_camera_ids=[str(r["id"]) for r in offline], open_alerts=alerts["open"], alerts_today=alerts["today"])
