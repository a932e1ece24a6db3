"""The ingest side of one control-plane replica: its pipeline (with the hooks others plug in) and
its feed relay, one of each per ControlApp.

    runtime = ingest_runtime(app)
    runtime.pipeline.on_events.append(evaluate_rules)   # async (tx, events, observations)
    runtime.start() ... await runtime.stop()             # the relay's background task

The ControlApp owns one (app.ingest) and starts and stops it with itself.
"""

from __future__ import annotations

import time

from vigil.control.ingest.pipeline import IngestPipeline
from vigil.control.ingest.recognition import Recognizer
from vigil.control.ingest.relay import FeedRelay


class TimedRecognizer(Recognizer):
    """Recognition timed per batch into the replica's histogram (vigil_recognition_seconds)."""

    def __init__(self, histogram):
        self.histogram = histogram

    async def identify(self, conn, faces):
        started = time.perf_counter()
        try:
            return await super().identify(conn, faces)
        finally:
            if faces:
                self.histogram.observe(time.perf_counter() - started)


class IngestRuntime:
    def __init__(self, app):
        self.pipeline = IngestPipeline(TimedRecognizer(app.metrics.recognition_seconds))
        self.relay = FeedRelay(app.pool, app.redis)

    def start(self) -> None:
        self.relay.start()

    async def stop(self) -> None:
        await self.relay.stop()


def ingest_runtime(app) -> IngestRuntime:
    return app.ingest
