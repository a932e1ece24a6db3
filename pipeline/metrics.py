"""Prometheus metrics of a pipeline node, refreshed from each heartbeat's figures (the same numbers
the control plane stores), plus clip counts. A registry per node: tests run several in a process."""

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
        self.clips = Counter("vigil_node_clips", "Clips cut for the control plane, by outcome (ready, failed)",
                             ["outcome"], registry=r)

    def observe(self, heartbeat: pb.HeartbeatRequest) -> None:
        for gauge in (self.stream_fps, self.stream_dropped, self.stream_queue, self.stream_running, self.queue_depth):
            gauge.clear()  # streams removed since the last heartbeat disappear
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
