"""Decoding one camera stream with PyAV (FFmpeg) on a thread of its own.

  file:///path/video.mp4[?loop=true&rate=native|max]   recorded video: played at its own frame
                                                       rate (a replayed camera) or as fast as
                                                       it decodes; looped on demand
  rtsp://host/path, rtsps://…, http(s)://…             live: reconnects with capped, jittered
                                                       back-off until the stream is removed

Packets are demuxed, handed to the stream's clip buffer (encoded, as they are), then decoded.
Frames wait in a small queue for the batcher; when the node falls behind, the oldest frame is
dropped (and counted) so latency stays bounded instead of memory growing.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

import av
import numpy as np

from vigil.api.v1 import node_pb2
from vigil.logs import get_logger
from vigil.pipeline.recording import PacketRing
from vigil.pipeline.streams import StreamCounters, StreamSpec

log = get_logger("vigil.pipeline.source")

OPEN_TIMEOUT_US = "5000000"  # FFmpeg's socket timeout for live sources: a dead camera fails in 5 s
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Frame:
    camera_id: UUID
    number: int  # decoder frame counter since the stream started (loops continue counting)
    capture_time: datetime
    image: np.ndarray  # (H, W, 3) uint8 BGR

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]


@dataclass(frozen=True)
class SourceOptions:
    """How a URL is read, from its scheme and (for files) its query."""

    location: str  # what FFmpeg opens
    is_file: bool
    loop: bool
    realtime: bool  # pace frames at the video's own rate

    @classmethod
    def of(cls, spec: StreamSpec) -> SourceOptions:
        parts = urlsplit(spec.source_url)
        if parts.scheme.lower() == "file":
            query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
            path = Path(unquote(parts.path))
            return cls(str(path), True, query.get("loop", "false") in _TRUE, query.get("rate", "native") != "max")
        return cls(spec.url_with_credentials(), False, False, False)


class VideoSource(threading.Thread):
    def __init__(self, spec: StreamSpec, counters: StreamCounters, *, queue_size: int = 4,
                 backoff: tuple[float, float] = (0.5, 10.0), recording: PacketRing | None = None):
        super().__init__(name=f"decode-{spec.camera_id}", daemon=True)
        self.spec = spec
        self.options = SourceOptions.of(spec)
        self.counters = counters
        self.backoff = backoff
        self._frames: deque[Frame] = deque()
        self._queue_size = queue_size
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._halt = threading.Event()
        self.finished = threading.Event()  # set when a file ended (no loop) or the source was stopped
        self._number = 0
        self.recording = recording  # encoded packets for clips; None when the stream records nothing

    # --- consumer side -----------------------------------------------------------------------

    def take(self, limit: int) -> list[Frame]:
        with self._lock:
            frames = [self._frames.popleft() for _ in range(min(limit, len(self._frames)))]
            self.counters.queue_depth = len(self._frames)
            self._space.notify()
            return frames

    def pending(self) -> int:
        return len(self._frames)

    def stop(self) -> None:
        self._halt.set()

    # --- decoder thread ----------------------------------------------------------------------

    def run(self) -> None:
        delay = self.backoff[0]
        try:
            while not self._halt.is_set():
                try:
                    ended = self._play()
                    delay = self.backoff[0]
                except (av.FFmpegError, OSError) as exc:
                    if self.options.is_file:  # a missing or corrupt file will not heal by retrying
                        self.counters.set_state(
                            node_pb2.STREAM_STATE_FAILED, f"cannot read {self.options.location}: {exc}"
                        )
                        log.error("stream failed", camera_id=str(self.spec.camera_id), error=str(exc))
                        return
                    self.counters.set_state(node_pb2.STREAM_STATE_RECONNECTING, f"source lost: {exc}")
                    log.warning("stream lost; reconnecting", camera_id=str(self.spec.camera_id), error=str(exc),
                                retry_in_s=round(delay, 2))
                    self._halt.wait(delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, self.backoff[1])
                    continue
                if self.options.is_file:
                    if ended and not self.options.loop:
                        return
                elif not self._halt.is_set():  # a live source that ended the stream: reconnect
                    self.counters.set_state(node_pb2.STREAM_STATE_RECONNECTING, "the source ended the stream")
                    log.warning("stream ended by the source; reconnecting", camera_id=str(self.spec.camera_id))
                    self._halt.wait(delay)
        finally:
            self.finished.set()

    def _play(self) -> bool:
        """Decode until the source ends (True) or the stream is stopped (False)."""
        options = {} if self.options.is_file else {"rtsp_transport": "tcp", "timeout": OPEN_TIMEOUT_US}
        with av.open(self.options.location, options=options, timeout=None if self.options.is_file else 10) as container:
            video = container.streams.video[0]
            video.thread_type = "AUTO"  # FFmpeg's frame threads: decoding leaves the GIL
            rate = float(video.average_rate or video.guessed_rate or self.spec.fps or 25)
            started = time.monotonic()
            wall_start = datetime.now(UTC)
            first_pts = None
            index = 0
            if self.recording is not None:
                self.recording.start_segment(video)
            # demux, then decode: the encoded packets go to the clip buffer as they are (no re-encode)
            for packet in container.demux(video):
                if self._halt.is_set():
                    return False
                if self.recording is not None and packet.size:
                    if self.options.realtime and packet.pts is not None and packet.time_base is not None:
                        first_pts = packet.pts if first_pts is None else first_pts
                        self.recording.add(packet, wall_start + timedelta(
                            seconds=float((packet.pts - first_pts) * packet.time_base)))
                    else:
                        self.recording.add(packet, datetime.now(UTC))
                for decoded in packet.decode():
                    if self._halt.is_set():
                        return False
                    if self.options.realtime:
                        if decoded.pts is not None and decoded.time_base is not None:
                            first_pts = decoded.pts if first_pts is None else first_pts
                            offset = float((decoded.pts - first_pts) * decoded.time_base)
                        else:
                            offset = index / rate
                        wait = started + offset - time.monotonic()
                        if wait > 0 and self._halt.wait(wait):
                            return False
                        capture = wall_start + timedelta(seconds=offset)
                    else:
                        capture = datetime.now(UTC)
                    index += 1
                    self._push(Frame(self.spec.camera_id, self._number, capture,
                                     decoded.to_ndarray(format="bgr24")))
            return True

    def _push(self, frame: Frame) -> None:
        self._number += 1
        self.counters.frame_decoded(frame.capture_time)
        with self._space:
            if self.options.is_file and not self.options.realtime:
                # as fast as possible: the decoder waits for the pipeline (nothing is lost)
                while len(self._frames) >= self._queue_size and not self._halt.is_set():
                    self._space.wait(0.1)
            elif len(self._frames) >= self._queue_size:  # live: the newest frame matters most
                self._frames.popleft()
                self.counters.frames_dropped()
            self._frames.append(frame)
            self.counters.queue_depth = len(self._frames)
