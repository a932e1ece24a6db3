"""The GPUs a node uses, read from NVML (nvidia-ml-py): their facts and load as plain `GpuReading`s,
which the agent puts into its registration, heartbeats and /metrics.

NVML is the hardware boundary: `GpuProbe` opens any reader with `GpuReader`'s shape (NVML by default),
so everything above it runs with real readings on machines without a GPU. Without NVML (no driver, no
GPU) the node has no GPUs: said once at info, never an error. A reading that fails mid-run (GPU lost,
driver reset) gives that heartbeat no GPU figures and a warning; the next heartbeat reads again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from vigil.logs import get_logger

log = get_logger("vigil.pipeline.gpu")


@dataclass(frozen=True)
class GpuReading:
    """One GPU at one instant. Fractions are in [0, 1]."""

    index: int  # CUDA device index as this process sees it
    uuid: str
    name: str
    compute_capability: str  # "major.minor"; "" where NVML cannot tell
    memory_total_bytes: int
    memory_used_bytes: int
    utilization: float  # share of the sample period in which a kernel ran
    decoder_utilization: float  # NVDEC
    encoder_utilization: float  # NVENC; 0 on GPUs without one (A100, H100)
    temperature_celsius: float


class GpuUnavailable(RuntimeError):
    """This machine has no GPU to read: no nvidia-ml-py, no NVML library or driver, or no device."""


class GpuReadFailed(RuntimeError):
    """NVML started but a call failed (GPU lost, driver reset, ...)."""


class GpuReader(Protocol):
    def read(self) -> list[GpuReading]:
        """Every GPU the node uses, in index order; GpuReadFailed when one cannot be read."""

    def close(self) -> None: ...


def visible_devices(spec: str | None, uuids: Sequence[str]) -> list[int]:
    """NVML indices of the GPUs CUDA shows this process, in CUDA index order, from CUDA_VISIBLE_DEVICES
    (None: every GPU). Entries are indices (NVML's order, i.e. CUDA_DEVICE_ORDER=PCI_BUS_ID) or UUID
    prefixes; like CUDA, the list ends at the first entry that names no GPU, and a GPU counts once."""
    if spec is None:
        return list(range(len(uuids)))
    chosen: list[int] = []
    for entry in (e.strip() for e in spec.split(",")):
        if entry.isdigit():
            found = int(entry) if int(entry) < len(uuids) else None
        elif entry.startswith("GPU-"):
            matches = [i for i, u in enumerate(uuids) if u.startswith(entry)]
            found = matches[0] if len(matches) == 1 else None
        else:  # "", "-1", MIG instances: nothing (more) for this process
            found = None
        if found is None or found in chosen:
            break
        chosen.append(found)
    return chosen


class NvmlReader:
    """The node's GPUs through NVML. Opening raises GpuUnavailable where there is nothing to read."""

    def __init__(self, visible: str | None = None):
        try:
            import pynvml
        except ImportError as exc:
            raise GpuUnavailable("nvidia-ml-py is not installed") from exc
        self._nvml: Any = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise GpuUnavailable(f"NVML did not start: {exc}") from exc
        try:
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            uuids = [_text(pynvml.nvmlDeviceGetUUID(h)) for h in handles]
        except pynvml.NVMLError as exc:
            self.close()
            raise GpuUnavailable(f"NVML could not list the GPUs: {exc}") from exc
        self._handles = [handles[i] for i in visible_devices(visible, uuids)]
        if not self._handles:
            self.close()
            raise GpuUnavailable("NVML sees no GPU for this process (or CUDA_VISIBLE_DEVICES hides them)")

    def read(self) -> list[GpuReading]:
        try:
            return [self._read(index, handle) for index, handle in enumerate(self._handles)]
        except self._nvml.NVMLError as exc:
            raise GpuReadFailed(str(exc)) from exc

    def _read(self, index: int, handle) -> GpuReading:
        nvml = self._nvml

        def unless_unsupported(call: Callable[[], Any], default: Any) -> Any:
            try:
                return call()
            except (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound):
                return default  # e.g. no NVENC, no readable sensor, an older driver: a fact, not a failure

        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        capability = unless_unsupported(lambda: "{}.{}".format(*nvml.nvmlDeviceGetCudaComputeCapability(handle)), "")
        return GpuReading(
            index=index, uuid=_text(nvml.nvmlDeviceGetUUID(handle)), name=_text(nvml.nvmlDeviceGetName(handle)),
            compute_capability=capability, memory_total_bytes=int(memory.total),
            memory_used_bytes=int(memory.used),
            utilization=unless_unsupported(lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu, 0) / 100,
            decoder_utilization=unless_unsupported(lambda: nvml.nvmlDeviceGetDecoderUtilization(handle)[0], 0) / 100,
            encoder_utilization=unless_unsupported(lambda: nvml.nvmlDeviceGetEncoderUtilization(handle)[0], 0) / 100,
            temperature_celsius=float(unless_unsupported(
                lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU), 0)))

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass  # shutting down a broken NVML leaves nothing to release


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def nvml_reader() -> NvmlReader:
    return NvmlReader(os.environ.get("CUDA_VISIBLE_DEVICES"))


class GpuProbe:
    """The node's GPUs for the agent: `read()` never raises. The reader opens on first use; a machine
    without GPUs reads [] from then on."""

    def __init__(self, open_reader: Callable[[], GpuReader] = nvml_reader):
        self._open = open_reader
        self._reader: GpuReader | None = None
        self._absent = False
        self._failing = False  # the previous reading failed: warn once per run of failures

    def read(self) -> list[GpuReading]:
        if self._absent:
            return []
        if self._reader is None:
            try:
                self._reader = self._open()
            except GpuUnavailable as exc:
                self._absent = True
                log.info("no GPU: this node reports none", reason=str(exc))
                return []
        try:
            readings = self._reader.read()
        except GpuReadFailed as exc:
            if not self._failing:
                log.warning("GPU reading failed: this heartbeat carries no GPU figures; check the GPU and "
                            "its driver (nvidia-smi, dmesg for Xid errors)", error=str(exc))
            self._failing = True
            return []
        if self._failing:
            log.info("GPU readings are back")
            self._failing = False
        return readings

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
