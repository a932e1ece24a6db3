"""The stream outbox both backends publish through: when a stream's updates go out, how its
batches are keyed, the latency samples, END on close. No services."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from vigil.api.v1 import ingest_pb2 as pb
from vigil.pipeline.messages import MAX_UPDATES_PER_BATCH
from vigil.pipeline.outbox import StreamOutbox
from vigil.pipeline.streams import ProcessingSettings, StreamCounters, StreamSpec
from vigil.pipeline.tracks import Sighting

BOX = (0.1, 0.1, 0.2, 0.4)


def outbox(published: list[pb.TrackBatch]) -> StreamOutbox:
    async def publish(batch: pb.TrackBatch) -> None:
        published.append(batch)

    spec = StreamSpec(uuid.uuid4(), None, "file:///a.mp4", 25,
                      ProcessingSettings(track_update_interval=timedelta(milliseconds=100)))
    return StreamOutbox(uuid.UUID(int=1), spec, StreamCounters(spec.camera_id), publish)


def test_updates_wait_for_the_interval_then_go_out_in_numbered_batches():
    published: list[pb.TrackBatch] = []
    box = outbox(published)
    now = datetime.now(UTC)
    box.observe(0, now - timedelta(seconds=2), [Sighting(7, pb.OBJECT_CLASS_PERSON, BOX, 0.9)], (1280, 720))
    assert len(box) == 1
    asyncio.run(box.flush_if_due(60.0))
    assert published == [] and len(box) == 1  # not due: one update, interval not over
    asyncio.run(box.flush_if_due(0.0))
    [batch] = published
    assert batch.idempotency_key == f"{uuid.UUID(int=1)}:{box.camera_id}:{box.epoch}:1"
    assert (batch.frame_width, batch.frame_height) == (1280, 720) and batch.camera_id == str(box.camera_id)
    assert [(u.track_id, u.kind) for u in batch.updates] == [(f"{box.epoch}-p7", pb.TRACK_UPDATE_KIND_START)]
    assert box.counters.report().latency.ToTimedelta() >= timedelta(seconds=2) and len(box) == 0
    asyncio.run(box.close())
    [_, ended] = published
    assert ended.idempotency_key.endswith(":2")  # numbering goes on within the epoch
    assert [(u.track_id, u.kind) for u in ended.updates] == [(f"{box.epoch}-p7", pb.TRACK_UPDATE_KIND_END)]


def test_half_a_batch_waiting_goes_out_before_the_interval_and_a_quiet_frame_adds_no_latency_sample():
    published: list[pb.TrackBatch] = []
    box = outbox(published)
    now = datetime.now(UTC)
    box.observe(0, now - timedelta(seconds=20), [], (640, 480))  # a frame with nothing in it
    asyncio.run(box.flush_if_due(0.0))
    assert published == []
    crowd = [Sighting(i, pb.OBJECT_CLASS_PERSON, BOX, 0.9) for i in range(MAX_UPDATES_PER_BATCH // 2)]
    box.observe(1, now, crowd, (640, 480))
    asyncio.run(box.flush_if_due(60.0))
    assert sum(len(b.updates) for b in published) == MAX_UPDATES_PER_BATCH // 2
    assert box.counters.report().latency.ToTimedelta() < timedelta(seconds=10)  # the quiet frame is not in it
    assert box.report().active_tracks == MAX_UPDATES_PER_BATCH // 2
