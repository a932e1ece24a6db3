"""onnxruntime sessions as Vigil runs them: CPU, a bounded thread pool, quiet logs."""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort


def available_cores() -> int:
    """CPUs this process may run on (the affinity mask, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0))


def cpu_session(model: Path | bytes, threads: int) -> ort.InferenceSession:
    """A session on a model file, or on a serialised model (bytes)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # these graphs are chains; parallel branches gain nothing
    # Idle workers must sleep, not spin: in the embedded Triton they share the cores with
    # tritonserver, its Python stubs and the other model. Measured on 2 cores through Triton:
    # spinning made SFace 34 ms per face instead of 13.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the folded graphs trigger no warnings worth a log line
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                providers=["CPUExecutionProvider"])
