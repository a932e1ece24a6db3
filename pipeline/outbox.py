"""A stream's outbox: the track updates its TrackBook produced and has yet to publish, the capture
times of the frames they came from (for the latency figure), and the numbering of its batches.

Both backends keep one per stream and flush it the same way, so batch keys, batch sizes and the
publishing cadence do not depend on the backend. The DeepStream backend observes frames on a
worker thread while the asyncio loop flushes, hence the lock (shared with whatever else reads the
book from another thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from uuid import UUID

from vigil.api.v1 import ingest_pb2 as pb
from vigil.api.v1 import node_pb2
from vigil.pipeline.messages import MAX_UPDATES_PER_BATCH, new_epoch, track_batches
from vigil.pipeline.streams import StreamCounters, StreamSpec
from vigil.pipeline.tracks import Sighting, TrackBook

Publish = Callable[[pb.TrackBatch], Awaitable[None]]


class StreamOutbox:
    def __init__(self, node_id: UUID, spec: StreamSpec, counters: StreamCounters, publish: Publish):
        self.node_id = node_id
        self.camera_id = spec.camera_id
        self.counters = counters
        self.publish = publish
        self.book = TrackBook(new_epoch(), update_interval=spec.settings.track_update_interval)
        self.lock = threading.Lock()
        self.frame_size = (0, 0)
        self._updates: list[pb.TrackUpdate] = []
        self._captures: list[datetime] = []
        self._sent = 0  # batches of this epoch, for their idempotency keys
        self._last_flush = time.monotonic()

    @property
    def epoch(self) -> str:
        return self.book.epoch

    def __len__(self) -> int:
        """Updates waiting to be published."""
        return len(self._updates)

    def configure(self, spec: StreamSpec) -> None:
        """New settings of the same source: the tracks go on, at the new update interval."""
        with self.lock:
            self.book.update_interval = spec.settings.track_update_interval

    def observe(self, frame_number: int, capture_time: datetime, sightings: Iterable[Sighting],
                frame_size: tuple[int, int]) -> None:
        """A processed frame: what the book makes of its sightings waits for the next flush."""
        with self.lock:
            self._updates += self.book.observe(frame_number, capture_time, sightings)
            self._captures.append(capture_time)
            self.frame_size = frame_size

    def report(self) -> node_pb2.StreamStats:
        self.counters.active_tracks = len(self.book)
        return self.counters.report()

    async def flush_if_due(self, interval_s: float) -> None:
        """Publish once `interval_s` has passed since the last flush, or sooner when half a
        TrackBatch is waiting."""
        with self.lock:
            if not self._updates:
                self._captures.clear()  # frames that produced nothing to publish
                return
            due = len(self._updates) >= MAX_UPDATES_PER_BATCH // 2 or time.monotonic() - self._last_flush >= interval_s
        if due:
            await self.flush()

    async def flush(self) -> None:
        with self.lock:
            updates, self._updates = self._updates, []
            captures, self._captures = self._captures, []
        self._last_flush = time.monotonic()
        batches = track_batches(self.node_id, self.camera_id, self.epoch, self._sent, self.frame_size, updates)
        self._sent += len(batches)
        for batch in batches:
            await self.publish(batch)
        for moment in captures:
            self.counters.published(moment)

    async def close(self) -> None:
        """The stream stops: END for its open tracks, published now."""
        with self.lock:
            self._updates += self.book.close_all()
        await self.flush()
