"""What a backend needs to run one camera stream, and the figures it keeps about it.

StreamSpec is the node's plain view of a StreamAssignment (control plane → node); StreamCounters
are updated by the backend as frames flow and turned into StreamStats for each heartbeat.
Both are backend-neutral.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit, urlunsplit
from uuid import UUID

from google.protobuf.duration_pb2 import Duration

from vigil.api.v1 import node_pb2
from vigil.pipeline.messages import timestamp


@dataclass(frozen=True)
class ProcessingSettings:
    detection_enabled: bool = True
    min_detection_confidence: float = 0.5
    min_face_size: int = 40  # pixels of face box height
    min_face_quality: float = 0.5
    max_inference_fps: float = 0.0  # 0 = every decoded frame
    track_update_interval: timedelta = timedelta(milliseconds=200)
    face_embedding_enabled: bool = True
    snapshots_enabled: bool = True
    recording_enabled: bool = False
    codec: str = ""

    @classmethod
    def from_message(cls, s: node_pb2.PipelineSettings) -> ProcessingSettings:
        interval = s.track_update_interval.ToTimedelta() if s.HasField("track_update_interval") else None
        return cls(
            detection_enabled=s.detection_enabled, min_detection_confidence=s.min_detection_confidence,
            min_face_size=s.min_face_size, min_face_quality=s.min_face_quality,
            max_inference_fps=s.max_inference_fps,
            track_update_interval=interval if interval and interval > timedelta(0) else cls.track_update_interval,
            face_embedding_enabled=s.face_embedding_enabled, snapshots_enabled=s.snapshots_enabled,
            recording_enabled=s.recording_enabled, codec=s.codec)


@dataclass(frozen=True)
class StreamSpec:
    camera_id: UUID
    site_id: UUID | None
    source_url: str  # without credentials
    fps: int
    settings: ProcessingSettings = ProcessingSettings()
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @classmethod
    def from_assignment(cls, a: node_pb2.StreamAssignment) -> StreamSpec:
        return cls(camera_id=UUID(a.camera_id), site_id=UUID(a.site_id) if a.site_id else None,
                   source_url=a.source_url, fps=a.fps or 25,
                   settings=ProcessingSettings.from_message(a.settings) if a.HasField("settings")
                   else ProcessingSettings(),
                   username=a.credentials.username, password=a.credentials.password)

    def url_with_credentials(self) -> str:
        """The URL the decoder opens; never log it."""
        if not self.username:
            return self.source_url
        parts = urlsplit(self.source_url)
        login = quote(self.username, safe="") + (":" + quote(self.password, safe="") if self.password else "")
        return urlunsplit(parts._replace(netloc=f"{login}@{parts.netloc}"))


class StreamCounters:
    """Cumulative counters of one stream, written by the backend's threads; rates per heartbeat."""

    def __init__(self, camera_id: UUID):
        self.camera_id = camera_id
        self._lock = threading.Lock()
        self.state = node_pb2.STREAM_STATE_STARTING
        self.decoded = 0
        self.processed = 0
        self.dropped = 0
        self.reconnects = 0
        self.active_tracks = 0
        self.queue_depth = 0
        self.last_frame_time: datetime | None = None
        self.last_error = ""
        self._latency_sum = 0.0
        self._latency_count = 0
        self._inference_sum = 0.0
        self._window = (time.monotonic(), 0, 0)  # start, decoded, processed at the last report

    def frame_decoded(self, capture_time: datetime) -> None:
        with self._lock:
            self.decoded += 1
            self.last_frame_time = capture_time
            if self.state in (node_pb2.STREAM_STATE_STARTING, node_pb2.STREAM_STATE_RECONNECTING):
                self.state = node_pb2.STREAM_STATE_RUNNING
                self.last_error = ""

    def frames_dropped(self, count: int = 1) -> None:
        with self._lock:
            self.dropped += count

    def frame_processed(self, inference_s: float) -> None:
        with self._lock:
            self.processed += 1
            self._inference_sum += inference_s

    def published(self, capture_time: datetime) -> None:
        latency = (datetime.now(UTC) - capture_time).total_seconds()
        with self._lock:
            self._latency_sum += max(latency, 0.0)
            self._latency_count += 1

    def set_state(self, state: int, error: str = "") -> None:
        with self._lock:
            self.state = state
            if error:
                self.last_error = error[:1000]
            if state == node_pb2.STREAM_STATE_RECONNECTING:
                self.reconnects += 1

    def report(self) -> node_pb2.StreamStats:
        """StreamStats for a heartbeat; rates and means cover the time since the previous report."""
        with self._lock:
            now = time.monotonic()
            start, decoded0, processed0 = self._window
            elapsed = max(now - start, 1e-6)
            stats = node_pb2.StreamStats(
                camera_id=str(self.camera_id), state=self.state,
                decode_fps=(self.decoded - decoded0) / elapsed, processed_fps=(self.processed - processed0) / elapsed,
                latency=_duration(self._latency_sum / self._latency_count if self._latency_count else 0.0),
                dropped_frames=self.dropped, queue_depth=self.queue_depth,
                inference_duration=_duration(self._inference_sum / max(self.processed - processed0, 1)),
                reconnects=self.reconnects, active_tracks=self.active_tracks, last_error=self.last_error)
            if self.last_frame_time is not None:
                stats.last_frame_time.CopyFrom(timestamp(self.last_frame_time))
            self._window = (now, self.decoded, self.processed)
            self._latency_sum, self._latency_count, self._inference_sum = 0.0, 0, 0.0
            return stats


class InferenceTimes:
    """The node's mean inference time per batch (across streams), reset at each heartbeat."""

    def __init__(self):
        self._lock = threading.Lock()
        self._seconds, self._batches = 0.0, 0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._seconds += seconds
            self._batches += 1

    def take_mean(self) -> float:
        with self._lock:
            seconds, batches = self._seconds, self._batches
            self._seconds, self._batches = 0.0, 0
        return seconds / batches if batches else 0.0


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromTimedelta(timedelta(seconds=seconds))
    return d
