"""Prometheus metrics of a pipeline node, refreshed from each heartbeat's figures (the same numbers
the control plane stores), plus clip counts. GPU series are labelled by index and UUID, as the node
registered its GPUs; a heartbeat without GPU figures (no GPU, failed reading) leaves none.
A registry per node: tests run several in a process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from vigil.api.v1 import node_pb2 as pb
from vigil.metrics import MetricsEndpoint


class NodeMetrics(MetricsEndpoint):
    def __init__(self):
        super().__init__()
        r = self.registry
        self.stream_fps = Gauge("vigil_node_stream_fps", "Frames per second of a stream since the previous "
                                "heartbeat, decoded or processed", ["camera_id", "kind"], registry=r)
        self.stream_dropped = Gauge("vigil_node_stream_dropped_frames", "Frames a stream dropped since it "
                                    "started (cumulative)", ["camera_id"], registry=r)
        self.stream_queue = Gauge("vigil_node_stream_queue_depth", "Frames of a stream waiting for processing",
                                  ["camera_id"], registry=r)
        self.stream_running = Gauge("vigil_node_stream_running", "1 while a stream is RUNNING", ["camera_id"],
                                    registry=r)
        self.queue_depth = Gauge("vigil_node_queue_depth", "Items waiting in a pipeline stage", ["stage"], registry=r)
        self.inference_seconds = Gauge("vigil_node_inference_seconds", "Mean inference time per batch since the "
                                       "previous heartbeat", registry=r)
        self.unacked = Gauge("vigil_node_unacked_batches", "Track batches sent and not yet acknowledged", registry=r)
        self.spooled = Gauge("vigil_node_spooled_batches", "Track batches in the on-disk spool", registry=r)
        gpu = ["gpu", "uuid"]
        self.gpu_info = Gauge("vigil_node_gpu_info", "1 for each GPU the node registered, with its name and "
                              "compute capability", [*gpu, "name", "compute_capability"], registry=r)
        self.gpu_memory_total = Gauge("vigil_node_gpu_memory_total_bytes", "Device memory of a GPU", gpu, registry=r)
        self.gpu_memory_used = Gauge("vigil_node_gpu_memory_used_bytes", "Device memory in use at the last "
                                     "heartbeat", gpu, registry=r)
        self.gpu_utilization = Gauge("vigil_node_gpu_utilization", "Share of NVML's last sample period in which "
                                     "a kernel ran, in [0, 1]", gpu, registry=r)
        self.gpu_decoder = Gauge("vigil_node_gpu_decoder_utilization", "NVDEC utilisation in [0, 1]", gpu, registry=r)
        self.gpu_encoder = Gauge("vigil_node_gpu_encoder_utilization", "NVENC utilisation in [0, 1] (0 on GPUs "
                                 "without NVENC)", gpu, registry=r)
        self.gpu_temperature = Gauge("vigil_node_gpu_temperature_celsius", "GPU temperature", gpu, registry=r)
        self._gpu_uuids: dict[int, str] = {}
        self.clips = Counter("vigil_node_clips", "Clips cut for the control plane, by outcome (ready, failed)",
                             ["outcome"], registry=r)

    def registered(self, node: pb.Node) -> None:
        """The GPUs the node registered with (re-registering replaces them)."""
        self.gpu_info.clear()
        self.gpu_memory_total.clear()
        self._gpu_uuids = {g.index: g.uuid for g in node.gpus}
        for g in node.gpus:
            self.gpu_info.labels(gpu=str(g.index), uuid=g.uuid, name=g.name,
                                 compute_capability=g.compute_capability).set(1)
            self.gpu_memory_total.labels(gpu=str(g.index), uuid=g.uuid).set(g.memory_total_bytes)

    def observe(self, heartbeat: pb.HeartbeatRequest) -> None:
        gpu_gauges = (self.gpu_memory_used, self.gpu_utilization, self.gpu_decoder, self.gpu_encoder,
                      self.gpu_temperature)
        for gauge in (self.stream_fps, self.stream_dropped, self.stream_queue, self.stream_running, self.queue_depth,
                      *gpu_gauges):
            gauge.clear()  # streams removed since the last heartbeat disappear, and GPUs not read this time
        for s in heartbeat.streams:
            self.stream_fps.labels(camera_id=s.camera_id, kind="decoded").set(s.decode_fps)
            self.stream_fps.labels(camera_id=s.camera_id, kind="processed").set(s.processed_fps)
            self.stream_dropped.labels(camera_id=s.camera_id).set(s.dropped_frames)
            self.stream_queue.labels(camera_id=s.camera_id).set(s.queue_depth)
            self.stream_running.labels(camera_id=s.camera_id).set(1 if s.state == pb.STREAM_STATE_RUNNING else 0)
        stats = heartbeat.stats
        for stage, depth in stats.queue_depths.items():
            self.queue_depth.labels(stage=stage).set(depth)
        self.inference_seconds.set(stats.inference_duration.ToTimedelta().total_seconds())
        self.unacked.set(stats.unacked_batches)
        self.spooled.set(stats.spooled_batches)
        for g in stats.gpus:
            labels = {"gpu": str(g.index), "uuid": self._gpu_uuids.get(g.index, "")}
            self.gpu_memory_used.labels(**labels).set(g.memory_used_bytes)
            self.gpu_utilization.labels(**labels).set(g.utilization)
            self.gpu_decoder.labels(**labels).set(g.decoder_utilization)
            self.gpu_encoder.labels(**labels).set(g.encoder_utilization)
            self.gpu_temperature.labels(**labels).set(g.temperature_celsius)
