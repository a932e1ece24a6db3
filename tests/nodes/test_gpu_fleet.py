"""GPU facts through the fleet, on the embedded stack: a real node (agent, portable backend, publisher)
whose GPU reader gives real readings registers its GPUs and heartbeats their load; the control plane
serves them in GetNode, ListNodes and the dashboard's FleetStats, keeps them in the node's health
rows, and the node's /metrics serves them. A GPU that fails mid-run leaves a heartbeat without GPU
figures and the node running; a node without NVML (this machine) reports no GPUs and runs as well.
`vigil status` shows the GPUs beside their node."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from contextlib import asynccontextmanager

import grpc
import pytest
from rich.console import Console

from tests.nodes.builders import MODEL_VERSION, register_node
from tests.nodes.gpus import H100, L4, Gpus, gpu_samples, nvml_status
from vigil.api.v1 import event_pb2 as epb
from vigil.api.v1 import node_pb2 as pb
from vigil.pipeline.agent import gpu_info, gpu_stats
from vigil.pipeline.gpu import GpuProbe, GpuReadFailed
from vigil.pipeline.node import build_node
from vigil.status import fetch_status, render

pytestmark = pytest.mark.usefixtures("own_fleet")

TIMEOUT_S = 30.0


@asynccontextmanager
async def running(control, settings, endpoints, api_keys, tmp_path, gpus: GpuProbe | None):
    """A node of this machine's make, with the given GPU probe (None: NVML, as `vigil node run`)."""
    address, _ = control
    node_settings = settings.node.model_copy(update={
        "control_url": address, "embedding_model_version": MODEL_VERSION, "capacity_streams": 1,
        "backend": "portable", "spool_dir": tmp_path / "spool"})
    node = build_node(settings.model_copy(update={"node": node_settings}), endpoints,
                      api_key=api_keys["api_client"], name=f"gpu-node-{uuid.uuid4().hex[:6]}", gpus=gpus)
    stop = asyncio.Event()
    task = asyncio.create_task(node.run(stop))
    try:
        yield node, task
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)  # raises what the node raised


async def until(check, what: str):
    async with asyncio.timeout(TIMEOUT_S):
        while not (value := await check()):
            await asyncio.sleep(0.2)
    assert value, what
    return value


async def heartbeat_after(nodes, metadata, node_id: str, after=None) -> pb.Node:
    """The node's record once a heartbeat later than `after` (a Timestamp) has arrived."""
    async def check():
        try:
            node = (await nodes.GetNode(pb.GetNodeRequest(id=node_id), metadata=metadata)).node
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:  # not registered yet
                raise
            return None
        return node if node.HasField("last_heartbeat_time") and (
            after is None or node.last_heartbeat_time.ToNanoseconds() > after.ToNanoseconds()) else None
    return await until(check, "no heartbeat arrived")


async def fleet_node(events, metadata, node_id: str) -> epb.FleetNode:
    fleet = (await events.GetDashboardStats(epb.GetDashboardStatsRequest(), metadata=metadata)).stats.fleet
    return next(n for n in fleet.nodes if n.id == node_id)


def same_stats(reported, reading) -> bool:
    return reported == gpu_stats(reading)  # float32 both ways: the values the node sent, unchanged


async def test_a_gpu_node_reports_its_gpus_to_every_view_of_the_fleet(
        control, settings, endpoints, api_keys, nodes, events, admin, db, tmp_path):
    reader = Gpus([H100, L4])
    async with running(control, settings, endpoints, api_keys, tmp_path, GpuProbe(lambda: reader)) as (node, task):
        node_id = str(node.agent.identity.id)
        record = await heartbeat_after(nodes, admin, node_id)
        record = await heartbeat_after(nodes, admin, node_id, record.last_heartbeat_time)

        # NodeService: GetNode and ListNodes
        assert list(record.gpus) == [gpu_info(H100), gpu_info(L4)]
        assert len(record.stats.gpus) == 2
        assert all(same_stats(s, r) for s, r in zip(record.stats.gpus, (H100, L4), strict=True))
        listed = (await nodes.ListNodes(pb.ListNodesRequest(page_size=1000), metadata=admin)).nodes
        assert next(n for n in listed if n.id == node_id).gpus == record.gpus

        # the dashboard's fleet
        fleet = await fleet_node(events, admin, node_id)
        assert list(fleet.gpus) == [gpu_info(H100), gpu_info(L4)]
        assert [s.index for s in fleet.gpu_stats] == [0, 1] and fleet.gpu_stats[1].encoder_utilization > 0.1
        assert all(same_stats(s, r) for s, r in zip(fleet.gpu_stats, (H100, L4), strict=True))

        # `vigil status`, as an operator reads it
        status = await fetch_status(control[0], api_keys["admin"])
        shown = next(n for n in status["nodes"] if n["id"] == node_id)["gpus"]
        assert [(g["name"], g["encoder_utilization"]) for g in shown] == [(H100.name, 0.0), (L4.name, 0.12)]
        console = Console(record=True, width=200)
        render(status, console)
        assert "1: NVIDIA L4: 90% busy, dec 75%, enc 12%, 3.0/22.5 GiB, 71°C" in console.export_text()

        # the node's health row (one per node per interval: the first heartbeat's)
        health = db.execute("SELECT metrics->'gpus' FROM system_health_logs WHERE component = 'pipeline_node'"
                            " AND metrics->>'node_id' = %s ORDER BY timestamp DESC LIMIT 1", (node_id,)).fetchone()
        assert health[0]["1"]["encoder_utilization"] == 0.12 and health[0]["0"]["temperature_celsius"] == 54.0

        # the node's own /metrics, over HTTP
        port = node.agent.metrics.serve("127.0.0.1", 0)
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                                                      timeout=10).read().decode())
        served = gpu_samples(body)
        assert served[("vigil_node_gpu_decoder_utilization", (("gpu", "1"), ("uuid", L4.uuid)))] == 0.75
        assert served[("vigil_node_gpu_memory_total_bytes", (("gpu", "0"), ("uuid", H100.uuid)))] == 85_520_809_984

        # the GPU fails: the next heartbeats carry no GPU figures, the node keeps running
        reader.outcomes = [GpuReadFailed("GPU is lost")]
        failed = await heartbeat_after(nodes, admin, node_id, record.last_heartbeat_time)
        failed = await heartbeat_after(nodes, admin, node_id, failed.last_heartbeat_time)  # read after the change
        assert failed.HasField("stats") and not failed.stats.gpus
        assert list(failed.gpus) == [gpu_info(H100), gpu_info(L4)]  # as registered
        assert not (await fleet_node(events, admin, node_id)).gpu_stats
        assert not task.done()
    assert reader.closed


async def test_a_node_without_nvml_reports_no_gpus_and_runs(control, settings, endpoints, api_keys, nodes, events,
                                                            admin, tmp_path):
    if nvml_status() is None:
        pytest.skip("NVML starts on this machine: the path without a GPU cannot be taken here")
    async with running(control, settings, endpoints, api_keys, tmp_path, None) as (node, task):
        node_id = str(node.agent.identity.id)
        record = await heartbeat_after(nodes, admin, node_id)
        record = await heartbeat_after(nodes, admin, node_id, record.last_heartbeat_time)
        assert not record.gpus and record.HasField("stats") and not record.stats.gpus
        fleet = await fleet_node(events, admin, node_id)
        assert not fleet.gpus and not fleet.gpu_stats
        assert not task.done()


async def test_gpu_figures_outside_their_range_are_refused(channel, nodes, node_key):
    node_id = (await register_node(channel, node_key, gpus=[gpu_info(L4)])).node.id
    for field, value in (("encoder_utilization", 1.5), ("decoder_utilization", -0.1), ("utilization", 2.0)):
        bad = gpu_stats(L4)
        setattr(bad, field, value)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await nodes.Heartbeat(pb.HeartbeatRequest(node_id=node_id, stats=pb.NodeStats(gpus=[bad])),
                                  metadata=node_key)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"stats.gpus[0].{field}" in err.value.details()
