"""What the node agent asks of a processing backend, and how the backend is chosen.

A backend runs the assigned camera streams and hands every TrackBatch to the publisher; the
agent adds, updates and removes streams at runtime and reads their figures for heartbeats.
"portable" (PyAV + Triton on CPU) runs anywhere; "deepstream" needs pyds and an NVIDIA GPU.
"""

from __future__ import annotations

import importlib.util
import shutil
from datetime import datetime
from typing import Protocol
from uuid import UUID

from vigil.api.v1 import node_pb2
from vigil.pipeline.recording import Clip
from vigil.pipeline.streams import StreamSpec

BACKENDS = ("portable", "deepstream")


class Backend(Protocol):
    name: str
    node_backend: int  # node_pb2.NodeBackend

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Stop every stream, flushing their open tracks (END) to the publisher."""

    async def add_stream(self, spec: StreamSpec) -> None: ...

    async def update_stream(self, spec: StreamSpec) -> None: ...

    async def remove_stream(self, camera_id: UUID) -> None: ...

    def stream_ids(self) -> set[UUID]: ...

    def stream_stats(self) -> list[node_pb2.StreamStats]: ...

    def queue_depths(self) -> dict[str, int]: ...

    def inference_seconds(self) -> float:
        """Mean inference time per batch since the previous call."""

    def cut_clip(self, camera_id: UUID, start: datetime, end: datetime) -> Clip:
        """An MP4 of the stream's encoded video from start to end (called on a worker thread).
        Clips are optional: a backend that keeps no recording buffer, a stream that is not here or
        does not record raise ClipUnavailable, which the agent reports as the clip's failure."""


def deepstream_available() -> bool:
    return importlib.util.find_spec("pyds") is not None and shutil.which("nvidia-smi") is not None


def choose_backend(requested: str) -> str:
    """"auto" picks deepstream where pyds and a GPU are present, portable elsewhere."""
    if requested == "auto":
        return "deepstream" if deepstream_available() else "portable"
    if requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}: choose auto, {' or '.join(BACKENDS)}")
    if requested == "deepstream" and not deepstream_available():
        raise ValueError("the deepstream backend needs the DeepStream Python bindings (pyds) and an NVIDIA GPU; "
                         "run the GPU node image (Dockerfile.gpu) or use --backend portable")
    return requested
