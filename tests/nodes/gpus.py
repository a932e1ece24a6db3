"""GPU readings for the node suites: a reader with `GpuReader`'s shape that gives real `GpuReading`s (or
NVML's failure) in the order given. It stands at the hardware boundary only; everything above it (the
probe, heartbeats, /metrics, the control plane) runs as it does on a GPU node."""

from __future__ import annotations

from dataclasses import replace

import pynvml
from prometheus_client.parser import text_string_to_metric_families

from vigil.pipeline.gpu import GpuReading

H100 = GpuReading(index=0, uuid="GPU-5c3e9a41-7d2b-4f1e-9a8c-1b2d3e4f5a6b", name="NVIDIA H100 80GB HBM3",
                  compute_capability="9.0", memory_total_bytes=85_520_809_984, memory_used_bytes=12 << 30,
                  utilization=0.42, decoder_utilization=0.31, encoder_utilization=0.0, temperature_celsius=54.0)
L4 = replace(H100, index=1, uuid="GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", name="NVIDIA L4",
             compute_capability="8.9", memory_total_bytes=24_152_899_584, memory_used_bytes=3 << 30,
             utilization=0.9, decoder_utilization=0.75, encoder_utilization=0.12, temperature_celsius=71.0)


class Gpus:
    """Each read() gives the next outcome (a list of readings, or an exception to raise); the last
    one repeats."""

    def __init__(self, *outcomes: list[GpuReading] | Exception):
        self.outcomes = list(outcomes)
        self.reads = 0
        self.closed = False

    def read(self) -> list[GpuReading]:
        outcome = self.outcomes[min(self.reads, len(self.outcomes) - 1)]
        self.reads += 1
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self) -> None:
        self.closed = True


def nvml_status() -> str | None:
    """None when NVML starts on this machine, else NVML's own reason (checked with pynvml directly)."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return str(exc)
    pynvml.nvmlShutdown()
    return None


def gpu_samples(exposition: str) -> dict[tuple[str, tuple], float]:
    """(name, sorted labels) → value of every GPU series in a /metrics text."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(exposition)
            for s in family.samples if s.name.startswith("vigil_node_gpu")}
