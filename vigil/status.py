"""`vigil status`: the fleet as the control plane sees it (EventService.GetDashboardStats' fleet and
alert figures, NodeService.ListNodes for each node's streams)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import json_format

from vigil.api.v1 import camera_pb2, camera_pb2_grpc, event_pb2, event_pb2_grpc, node_pb2, node_pb2_grpc


async def camera_names(channel, metadata) -> dict[str, str]:
    """Camera id → name, for a person reading the table; ids alone when the key may not read cameras."""
    names, token = {}, ""
    stub = camera_pb2_grpc.CameraServiceStub(channel)
    try:
        while True:
            page = await stub.ListCameras(camera_pb2.ListCamerasRequest(page_size=1000, page_token=token),
                                          metadata=metadata, timeout=10)
            names.update((c.id, c.name) for c in page.cameras)
            if not (token := page.next_page_token):
                return names
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.PERMISSION_DENIED:
            raise
        return names


def gpu_view(info: node_pb2.GpuInfo, stats: node_pb2.GpuStats | None) -> dict[str, Any]:
    """One GPU of a node: what it registered, and its load at the last heartbeat where that was read."""
    view = {"index": info.index, "name": info.name, "uuid": info.uuid, "memory_total_bytes": info.memory_total_bytes}
    if stats is not None:
        view.update(utilization=round(stats.utilization, 3), decoder_utilization=round(stats.decoder_utilization, 3),
                    encoder_utilization=round(stats.encoder_utilization, 3), memory_used_bytes=stats.memory_used_bytes,
                    temperature_celsius=round(stats.temperature_celsius, 1))
    return view


def gpu_text(gpu: dict[str, Any]) -> str:
    load = (f"{gpu['utilization']:.0%} busy, dec {gpu['decoder_utilization']:.0%}, enc {gpu['encoder_utilization']:.0%}"
            f", {gpu['memory_used_bytes'] / 2**30:.1f}/{gpu['memory_total_bytes'] / 2**30:.1f} GiB, "
            f"{gpu['temperature_celsius']:.0f}°C" if "utilization" in gpu else "no reading")
    return f"{gpu['index']}: {gpu['name']}: {load}"


async def fetch_status(target: str, key: str) -> dict[str, Any]:
    metadata = (("authorization", f"Bearer {key}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stats = (await event_pb2_grpc.EventServiceStub(channel).GetDashboardStats(
            event_pb2.GetDashboardStatsRequest(), metadata=metadata, timeout=10)).stats
        nodes = (await node_pb2_grpc.NodeServiceStub(channel).ListNodes(
            node_pb2.ListNodesRequest(page_size=1000), metadata=metadata, timeout=10)).nodes
        names = await camera_names(channel, metadata)
    fleet = stats.fleet
    now = datetime.now(UTC)
    streams = {n.id: [json_format.MessageToDict(s, preserving_proto_field_name=True) for s in n.streams]
               for n in nodes}
    return {
        "nodes": [{
            "id": n.id, "name": n.name, "state": node_pb2.NodeState.Name(n.state).removeprefix("NODE_STATE_").lower(),
            "streams": n.streams, "capacity": n.capacity_streams, "running": n.running_streams,
            "processed_fps": round(n.processed_fps, 1), "dropped_frames": n.dropped_frames,
            "gpus": [gpu_view(g, next((s for s in n.gpu_stats if s.index == g.index), None)) for g in n.gpus],
            "heartbeat_age_s": round((now - n.last_heartbeat_time.ToDatetime(UTC)).total_seconds(), 1)
            if n.HasField("last_heartbeat_time") else None,
            "stream_stats": [{"camera_id": s.get("camera_id"), "camera": names.get(s.get("camera_id"), ""),
                              "state": s.get("state", "").removeprefix("STREAM_STATE_").lower(),
                              "processed_fps": round(s.get("processed_fps", 0.0), 1),
                              "dropped_frames": int(s.get("dropped_frames", 0))} for s in streams.get(n.id, [])],
        } for n in fleet.nodes],
        "streaming_cameras": fleet.streaming_cameras,
        "unassigned_streams": fleet.unassigned_streams,
        "offline_cameras": list(fleet.offline_camera_ids),
        "alerts": {"open": fleet.open_alerts, "today": fleet.alerts_today, "pending_today": stats.pending_alerts,
                   "critical_today": stats.critical_alerts},
        "cameras": {"total": stats.total_cameras, "online": stats.online_cameras, "offline": stats.offline_cameras},
    }


def render(status: dict[str, Any], console) -> None:
    from rich.table import Table

    table = Table(title="pipeline nodes", show_lines=False)
    for column in ("node", "state", "streams", "running", "fps", "dropped", "heartbeat", "gpus"):
        table.add_column(column)
    for n in status["nodes"]:
        age = "never" if n["heartbeat_age_s"] is None else f"{n['heartbeat_age_s']}s ago"
        table.add_row(n["name"], n["state"], f"{n['streams']}/{n['capacity']}", str(n["running"]),
                      f"{n['processed_fps']}", str(n["dropped_frames"]), age,
                      "\n".join(gpu_text(g) for g in n["gpus"]))
        for s in n["stream_stats"]:
            table.add_row(f"  └ {s['camera'] or s['camera_id']}", s["state"], "", "", f"{s['processed_fps']}",
                          str(s["dropped_frames"]), "", "")
    console.print(table)
    cams, alerts = status["cameras"], status["alerts"]
    console.print(
        f"streams: {status['streaming_cameras']} cameras to run, {status['unassigned_streams']} without a node"
    )
    console.print(f"cameras: {cams['total']} active, {cams['online']} online, {cams['offline']} offline"
                  + (f" ({', '.join(status['offline_cameras'][:10])})" if status["offline_cameras"] else ""))
    console.print(f"alerts: {alerts['open']} open, {alerts['today']} today "
                  f"({alerts['pending_today']} pending, {alerts['critical_today']} critical)")
