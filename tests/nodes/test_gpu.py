"""A node's GPUs without a service: the real NVML path on this machine (no GPU here: NVML does not
start, and the node has no GPUs, logged once at info), CUDA_VISIBLE_DEVICES, a reading that fails
mid-run, and the GPU series of the node's /metrics."""

from __future__ import annotations

import re

import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from tests.nodes.gpus import H100, L4, Gpus, gpu_samples, nvml_status
from vigil.api.v1 import node_pb2 as pb
from vigil.pipeline.agent import gpu_info, gpu_stats
from vigil.pipeline.gpu import GpuProbe, GpuReadFailed, GpuUnavailable, NvmlReader, nvml_reader, visible_devices
from vigil.pipeline.metrics import NodeMetrics

# --------------------------------------------------------------------------- NVML itself


def test_nvml_on_this_machine_reads_every_gpu_or_says_there_is_none():
    reason = nvml_status()
    if reason is not None:  # this machine: "NVML Shared Library Not Found"
        with pytest.raises(GpuUnavailable, match=re.escape(reason)):
            NvmlReader()
        return
    reader = NvmlReader()  # a GPU machine: every GPU NVML sees, read for real
    try:
        readings = reader.read()
    except GpuUnavailable:
        pytest.fail("NVML started but the reader found no GPU")
    finally:
        reader.close()
    assert readings and [r.index for r in readings] == list(range(len(readings)))
    for r in readings:
        assert r.uuid.startswith(("GPU-", "MIG-")) and r.name and re.fullmatch(r"\d+\.\d+", r.compute_capability)
        assert 0 < r.memory_used_bytes <= r.memory_total_bytes
        assert all(0.0 <= f <= 1.0 for f in (r.utilization, r.decoder_utilization, r.encoder_utilization))


def test_a_node_without_nvml_has_no_gpus_says_so_once_at_info_and_never_fails():
    if nvml_status() is None:
        pytest.skip("NVML starts on this machine: the path without a GPU cannot be taken here")
    probe = GpuProbe()  # the node's default: the real NVML reader
    with capture_logs() as logs:
        assert probe.read() == [] and probe.read() == [] and probe.read() == []
        probe.close()
    assert [(e["log_level"], e["event"]) for e in logs] == [("info", "no GPU: this node reports none")]
    assert "NVML did not start" in logs[0]["reason"]


def test_cuda_visible_devices_picks_and_orders_the_gpus_as_cuda_does():
    uuids = ["GPU-aaaa1111", "GPU-bbbb2222", "GPU-bbbb3333"]
    assert visible_devices(None, uuids) == [0, 1, 2]
    assert visible_devices("2,0", uuids) == [2, 0]  # CUDA index 0 is NVML's 2
    assert visible_devices("GPU-aaaa,1", uuids) == [0, 1]  # a unique UUID prefix
    assert visible_devices("GPU-bbbb", uuids) == []  # ambiguous: names no GPU
    assert visible_devices("1,7,0", uuids) == [1]  # the list ends at the first entry naming no GPU
    assert visible_devices("1,1", uuids) == [1]
    assert visible_devices("", uuids) == [] and visible_devices("-1", uuids) == []
    assert visible_devices("MIG-0c2d4e6f", uuids) == []


def test_nvml_reader_honours_cuda_visible_devices_from_the_environment(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # hides every GPU, on any machine
    with pytest.raises(GpuUnavailable):
        nvml_reader()


# --------------------------------------------------------------------------- the probe


def test_a_reading_that_fails_mid_run_gives_no_figures_and_one_warning_until_it_recovers():
    gpus = Gpus([H100], GpuReadFailed("GPU is lost"), GpuReadFailed("GPU is lost"), [H100])
    probe = GpuProbe(lambda: gpus)
    with capture_logs() as logs:
        assert probe.read() == [H100]
        assert probe.read() == [] and probe.read() == []
        assert probe.read() == [H100]
    assert [(e["log_level"], e["event"].split(":")[0]) for e in logs] == [
        ("warning", "GPU reading failed"), ("info", "GPU readings are back")]
    assert logs[0]["error"] == "GPU is lost"
    probe.close()
    assert gpus.closed


def test_the_reader_is_opened_once():
    opened = []

    def open_reader():
        opened.append(Gpus([H100, L4]))
        return opened[-1]

    probe = GpuProbe(open_reader)
    assert probe.read() == [H100, L4] and probe.read() == [H100, L4]
    assert len(opened) == 1 and opened[0].reads == 2


# --------------------------------------------------------------------------- messages and /metrics


def test_readings_become_registration_and_heartbeat_messages():
    assert gpu_info(L4) == pb.GpuInfo(index=1, name="NVIDIA L4", uuid=L4.uuid, memory_total_bytes=24_152_899_584,
                                      compute_capability="8.9")
    stats = gpu_stats(L4)
    assert (stats.index, stats.memory_used_bytes) == (1, 3 << 30)
    assert (stats.utilization, stats.decoder_utilization, stats.encoder_utilization, stats.temperature_celsius) \
        == pytest.approx((0.9, 0.75, 0.12, 71.0))


def samples(metrics: NodeMetrics) -> dict[tuple[str, tuple], float]:
    return gpu_samples(generate_latest(metrics.registry).decode())


def test_metrics_label_each_gpu_by_index_and_uuid_and_a_failed_reading_leaves_no_load():
    metrics = NodeMetrics()
    metrics.registered(pb.Node(gpus=[gpu_info(H100), gpu_info(L4)]))
    metrics.observe(pb.HeartbeatRequest(stats=pb.NodeStats(gpus=[gpu_stats(H100), gpu_stats(L4)])))
    seen = samples(metrics)
    l4 = (("gpu", "1"), ("uuid", L4.uuid))
    info = (("compute_capability", "8.9"), ("gpu", "1"), ("name", "NVIDIA L4"), ("uuid", L4.uuid))
    assert seen[("vigil_node_gpu_info", info)] == 1
    assert seen[("vigil_node_gpu_memory_total_bytes", l4)] == 24_152_899_584
    assert seen[("vigil_node_gpu_memory_used_bytes", l4)] == 3 << 30
    assert seen[("vigil_node_gpu_utilization", l4)] == pytest.approx(0.9)
    assert seen[("vigil_node_gpu_decoder_utilization", l4)] == pytest.approx(0.75)
    assert seen[("vigil_node_gpu_encoder_utilization", l4)] == pytest.approx(0.12)
    assert seen[("vigil_node_gpu_temperature_celsius", l4)] == 71.0
    assert seen[("vigil_node_gpu_utilization", (("gpu", "0"), ("uuid", H100.uuid)))] == pytest.approx(0.42)

    metrics.observe(pb.HeartbeatRequest(stats=pb.NodeStats()))  # the reading failed: no GPU figures
    assert {name for name, _ in samples(metrics)} == {"vigil_node_gpu_info", "vigil_node_gpu_memory_total_bytes"}


def test_a_node_without_gpus_serves_no_gpu_series():
    metrics = NodeMetrics()
    metrics.registered(pb.Node())
    metrics.observe(pb.HeartbeatRequest(stats=pb.NodeStats()))
    assert samples(metrics) == {}
