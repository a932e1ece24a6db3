"""IngestPipeline.process(tx, request) → BatchResult: one TrackBatch, all in the caller's transaction.

  validate (nothing written yet) → lock the camera (batches of one camera never interleave, on
  any replica) → claim the idempotency key (a key already stored: duplicate, nothing written) →
  events (recognition and clusters included) → their feed messages into the outbox → the
  on_events hooks (rules, analytics) → the caller commits, then wakes the feed relay.

A hook is an async callable hook(tx, events, observations). It runs inside the transaction, in
its own savepoint: what it writes commits with the batch, and a hook that fails is logged and
rolled back alone, so a rule's bug never costs the batch its events.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from vigil.api.v1 import ingest_pb2 as pb
from vigil.control.analytics.model import TrackObservation
from vigil.control.ingest import feed
from vigil.control.ingest.batch import TrackBatch, parse_request
from vigil.control.ingest.events import RecordedEvent, TrackEventWriter
from vigil.control.ingest.recognition import Recognizer
from vigil.control.ingest.tracks import summarise
from vigil.errors import InvalidArgument, NotFound
from vigil.logs import get_logger
from vigil.storage.locks import transaction_lock
from vigil.storage.repositories.events import IngestBatchRepository, TrackEventRepository
from vigil.storage.repositories.sites import CameraRepository

if TYPE_CHECKING:
    from vigil.control.app import Transaction

log = get_logger("vigil.control.ingest")

EventsHook = Callable[["Transaction", Sequence[RecordedEvent], Sequence[TrackObservation]], Awaitable[None]]


@dataclass(frozen=True)
class BatchResult:
    sequence: int
    duplicate: bool  # the key was stored before: nothing was written, no hook ran
    camera_id: UUID
    site_id: UUID
    events: tuple[RecordedEvent, ...] = ()  # created, or re-described with a better face
    observations: tuple[TrackObservation, ...] = ()  # every update, with the identity known for its track


class IngestPipeline:
    def __init__(self, recognizer: Recognizer | None = None):
        self.recognizer = recognizer or Recognizer()
        self.on_events: list[EventsHook] = []

    async def process(self, tx: Transaction, request: pb.PublishRequest) -> BatchResult:
        batch = parse_request(request)
        conn = tx.conn
        try:
            camera = await CameraRepository(conn).get(batch.camera_id)
        except NotFound:
            raise InvalidArgument("batch.camera_id", f"camera {batch.camera_id} is not registered") from None
        await transaction_lock(conn, "vigil.ingest", str(batch.camera_id))
        claimed = await IngestBatchRepository(conn).claim(
            batch.idempotency_key, node_id=batch.node_id, camera_id=batch.camera_id, sequence=batch.sequence,
            update_count=len(batch.updates))
        if not claimed:
            return BatchResult(batch.sequence, True, camera.id, camera.site_id)
        recorded = await TrackEventWriter(conn, batch, self.recognizer).write(summarise(batch.updates))
        observations = await self._observations(conn, batch)
        await feed.record(conn, [feed.FeedItem.of_event(r.event) for r in recorded])
        for hook in self.on_events:
            await self._run(hook, tx, recorded, observations)
        return BatchResult(batch.sequence, False, camera.id, camera.site_id, tuple(recorded), tuple(observations))

    @staticmethod
    async def _observations(conn, batch: TrackBatch) -> list[TrackObservation]:
        identities = await TrackEventRepository(conn, batch.camera_id).identities({u.track_id for u in batch.updates})
        observations = []
        for u in batch.updates:
            person_id, cluster_id = identities.get(u.track_id, (None, None))
            observations.append(TrackObservation(
                camera_id=str(batch.camera_id), track_id=u.track_id, object_class=u.object_class, box=u.box,
                confidence=u.confidence, capture_time=u.capture_time, kind=u.kind,
                person_id=str(person_id) if person_id else None, cluster_id=str(cluster_id) if cluster_id else None,
                frame_width=batch.frame_width, frame_height=batch.frame_height))
        return observations

    @staticmethod
    async def _run(hook: EventsHook, tx: Transaction, recorded: list[RecordedEvent],
                   observations: list[TrackObservation]) -> None:
        try:
            async with tx.conn.transaction():
                await hook(tx, recorded, observations)
        except Exception:
            log.exception("ingest hook failed; its writes were rolled back", hook=getattr(hook, "__qualname__", hook),
                          incident=uuid.uuid4().hex[:12])
