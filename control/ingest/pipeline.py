"""IngestPipeline.store(tx, requests) → one BatchOutcome per request: a group of TrackBatches of one
stream, all in the caller's transaction (group commit: one BEGIN and COMMIT for the group).

  validate each (nothing written yet) → lock the group's cameras, in order (batches of one camera
  never interleave, on any replica) → per batch, in its own savepoint and in order: claim the
  idempotency key (a key already stored: duplicate, nothing written) → events (recognition and
  clusters included) → their feed messages into the outbox → the on_events hooks (rules,
  analytics) → the caller commits, acks every batch, then wakes the feed relay.

A batch that breaks a rule (RepositoryError) is rolled back to its savepoint and rejected alone;
the rest of the group is stored. A hook is an async callable hook(tx, events, observations). It
runs inside the batch's savepoint, in its own: what it writes commits with the batch, and a hook
that fails is logged and rolled back alone, so a rule's bug never costs the batch its events.
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
from vigil.errors import InvalidArgument, NotFound, RepositoryError
from vigil.logs import get_logger
from vigil.storage.locks import transaction_lock
from vigil.storage.repositories.events import IngestBatchRepository, TrackEventRepository
from vigil.storage.repositories.sites import Camera, CameraRepository

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
    events: tuple[RecordedEvent, ...] = ()  # created, or re-described (a better face, a vehicle's new label)
    observations: tuple[TrackObservation, ...] = ()  # every update, with the identity known for its track
    updates: int = 0  # track updates stored (0 for a duplicate)


@dataclass(frozen=True)
class BatchOutcome:
    """What became of one request of a group: stored (or a duplicate), rejected, or to be resent."""
    sequence: int
    result: BatchResult | None = None  # stored once the caller commits
    rejected: RepositoryError | None = None  # can never be stored: nothing of it was written
    failed: Exception | None = None  # not stored for a reason that may pass: the node resends it


class IngestPipeline:
    def __init__(self, recognizer: Recognizer | None = None):
        self.recognizer = recognizer or Recognizer()
        self.on_events: list[EventsHook] = []

    async def store(self, tx: Transaction, requests: Sequence[pb.PublishRequest]) -> list[BatchOutcome]:
        """Each request in order, in the caller's transaction: one outcome per request. An
        exception raised here (the connection broke) leaves the whole group to be resent."""
        conn = tx.conn
        parsed: list[TrackBatch | RepositoryError] = []
        for request in requests:
            try:
                parsed.append(parse_request(request))
            except RepositoryError as exc:
                parsed.append(exc)
        cameras = await self._cameras(conn, {b.camera_id for b in parsed if isinstance(b, TrackBatch)})
        for camera_id in sorted(c for c, found in cameras.items() if isinstance(found, Camera)):
            await transaction_lock(conn, "vigil.ingest", str(camera_id))  # in order: no deadlock between groups
        outcomes = []
        for request, batch in zip(requests, parsed):
            sequence = request.batch.sequence
            camera = cameras.get(batch.camera_id) if isinstance(batch, TrackBatch) else batch
            if isinstance(camera, RepositoryError):
                outcomes.append(BatchOutcome(sequence, rejected=camera))
                continue
            try:
                async with conn.transaction():  # the batch's savepoint: a rejected batch writes nothing
                    result = await self._store_one(tx, batch, camera)
            except RepositoryError as exc:  # invalid, unknown model version, refused by row security
                outcomes.append(BatchOutcome(sequence, rejected=exc))
            except Exception as exc:
                if conn.broken or conn.closed:
                    raise
                outcomes.append(BatchOutcome(sequence, failed=exc))
            else:
                outcomes.append(BatchOutcome(sequence, result=result))
        return outcomes

    @staticmethod
    async def _cameras(conn, camera_ids: set[UUID]) -> dict[UUID, Camera | RepositoryError]:
        repo, found = CameraRepository(conn), {}
        for camera_id in camera_ids:
            try:
                found[camera_id] = await repo.get(camera_id)
            except NotFound:
                found[camera_id] = InvalidArgument("batch.camera_id", f"camera {camera_id} is not registered")
            except RepositoryError as exc:  # e.g. refused by row security: the batches of this camera alone
                found[camera_id] = exc
        return found

    async def _store_one(self, tx: Transaction, batch: TrackBatch, camera: Camera) -> BatchResult:
        conn = tx.conn
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
        return BatchResult(batch.sequence, False, camera.id, camera.site_id, tuple(recorded), tuple(observations),
                           len(batch.updates))

    @staticmethod
    async def _observations(conn, batch: TrackBatch) -> list[TrackObservation]:
        identities = await TrackEventRepository(conn, batch.camera_id).identities({u.track_id for u in batch.updates})
        camera_id, width, height = str(batch.camera_id), batch.frame_width, batch.frame_height
        known = {track: (str(p) if p else None, str(c) if c else None) for track, (p, c) in identities.items()}
        unknown = (None, None)
        observations = []
        for u in batch.updates:
            person_id, cluster_id = known.get(u.track_id, unknown)
            observations.append(TrackObservation(
                camera_id=camera_id, track_id=u.track_id, object_class=u.object_class, box=u.box,
                confidence=u.confidence, capture_time=u.capture_time, kind=u.kind, person_id=person_id,
                cluster_id=cluster_id, frame_width=width, frame_height=height, label=u.label))
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
