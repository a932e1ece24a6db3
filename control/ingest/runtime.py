"""The ingest side of one control-plane replica: its pipeline (with the hooks others plug in), its
feed relay and its feed fan-out hub, one of each per ControlApp.

    runtime = IngestRuntime(pool, redis, metrics.recognition_seconds)    # starts nothing
    runtime.pipeline.on_events.append(evaluate_rules)   # async (tx, events, observations)
    runtime.start() ... await runtime.stop()             # the relay's task; stop() also ends the hub's

The ControlApp owns one (app.ingest) and starts and stops it with itself.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from prometheus_client import Histogram
from psycopg_pool import AsyncConnectionPool

from vigil.control.ingest.fanout import FeedHub
from vigil.control.ingest.pipeline import IngestPipeline
from vigil.control.ingest.recognition import Recognizer
from vigil.control.ingest.relay import FeedRelay
from vigil.storage.bus import EventBus


class TimedRecognizer(Recognizer):
    """Recognition timed per batch into the replica's histogram (vigil_recognition_seconds)."""

    def __init__(self, histogram: Histogram):
        self.histogram = histogram

    async def identify(self, conn, faces):
        started = time.perf_counter()
        try:
            return await super().identify(conn, faces)
        finally:
            if faces:
                self.histogram.observe(time.perf_counter() - started)


class IngestRuntime:
    def __init__(self, pool: AsyncConnectionPool, redis: aioredis.Redis, recognition_seconds: Histogram):
        self.pipeline = IngestPipeline(TimedRecognizer(recognition_seconds))
        self.relay = FeedRelay(pool, redis)
        self.hub = FeedHub(EventBus(redis))  # reads the stream while EventService.Subscribe calls are open

    def start(self) -> None:
        self.relay.start()

    async def stop(self) -> None:
        await self.hub.stop()
        await self.relay.stop()


def ingest_runtime(app) -> IngestRuntime:
    return app.ingest
