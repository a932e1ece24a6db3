"""IngestService: track batches from pipeline nodes, stored in group commits and acked.

A stream's batches are read as they come; the ones waiting when the previous group committed
(at most `group_batches`) are stored together in one transaction, each in its own savepoint
(control.ingest.pipeline), so a node that keeps many batches in flight pays one commit per group,
not per batch. Every batch gets exactly one ack, in order, and never ends the stream: ACCEPTED once committed
(duplicate=true when its idempotency key was stored before and nothing was written), REJECTED
with the offending field for a batch that can never be stored, RETRY when storing failed for a
reason that may pass (the database restarting, a lock timeout) so the node resends it later.
A batch from a node id that NodeService does not know ends the stream with FAILED_PRECONDITION.
The work itself is control.ingest.pipeline's.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc

from vigil.api.v1 import ingest_pb2 as pb
from vigil.api.v1 import ingest_pb2_grpc
from vigil.control.ingest.pipeline import BatchOutcome
from vigil.control.ingest.runtime import IngestRuntime
from vigil.control.metrics import ControlMetrics
from vigil.control.rpc import rpc
from vigil.control.transactions import CallerDatabase
from vigil.logs import get_logger
from vigil.storage.repositories.nodes import NodeRepository

log = get_logger("vigil.control.ingest")


_END = object()  # the node finished writing (or the stream broke)


class IngestService(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, db: CallerDatabase, runtime: IngestRuntime, metrics: ControlMetrics, group_batches: int = 16):
        self.db = db
        self.runtime = runtime  # its pipeline stores the batches, its relay is woken after each commit
        self.metrics = metrics
        self.group_batches = group_batches  # most batches of one stream stored in one transaction

    @rpc("ingest", "write")
    async def Publish(self, request_iterator, context):
        registered: set[str] = set()  # node ids of this stream already found registered
        waiting: asyncio.Queue = asyncio.Queue(self.group_batches)  # full: gRPC's flow control holds the node
        reader = asyncio.create_task(self._read(request_iterator, waiting))
        try:
            while (group := await self._next_group(waiting)):
                unknown = None
                for i, request in enumerate(group):
                    node_id = request.batch.node_id
                    if node_id not in registered:
                        known = await self._registered(node_id)
                        if known is False:
                            unknown, group = node_id, group[:i]  # the batches before it are still acked
                            break
                        if known:
                            registered.add(node_id)
                for ack in await self._acknowledge(group) if group else ():
                    yield ack
                if unknown is not None:
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                        f"node {unknown} is not registered: call NodeService.RegisterNode first")
        finally:
            reader.cancel()

    @staticmethod
    async def _read(request_iterator, waiting: asyncio.Queue) -> None:
        try:
            async for request in request_iterator:
                await waiting.put(request)
        except Exception as exc:  # noqa: BLE001 - the stream broke: what was read is still stored and acked
            log.info("ingest stream ended", reason=repr(exc))
        await waiting.put(_END)

    async def _next_group(self, waiting: asyncio.Queue) -> list[pb.PublishRequest]:
        """The next batch (waiting for it) and those queued behind it, up to group_batches; empty at the end."""
        group = []
        item = await waiting.get()
        while item is not _END:
            group.append(item)
            if len(group) >= self.group_batches or waiting.empty():
                return group
            item = waiting.get_nowait()
        waiting.put_nowait(_END)  # seen again by the next call: the stream is over
        return group

    async def _registered(self, node_id: str) -> bool | None:
        """Whether NodeService knows the node; None when that cannot be told: a malformed id is the
        batch's fault (REJECTED by the pipeline's checks), and a failed lookup is retried with the
        batch (RETRY). Deliberately NOT checked: that the batch's camera is assigned to this node
        now. A node replays its spool after an outage, by which time the camera may have moved to
        another node; refusing those batches would lose their metadata."""
        try:
            node_uuid = uuid.UUID(node_id)
        except ValueError:
            return None
        try:
            async with self.db.transaction() as tx:
                return await NodeRepository(tx.conn).exists(node_uuid)
        except Exception as exc:  # noqa: BLE001 - the database is unreachable: the batch's ack says RETRY
            log.warning("node registration not checked; the batch decides", node_id=node_id, error=str(exc))
            return None

    async def _acknowledge(self, group: list[pb.PublishRequest]) -> list[pb.PublishResponse]:
        """One ack per request, in order, once the group's transaction has committed."""
        try:
            async with self.db.transaction() as tx:
                outcomes = await self.runtime.pipeline.store(tx, group)
        except Exception as exc:
            incident = uuid.uuid4().hex[:12]
            log.exception("ingest batches not stored; the node will resend them", batches=len(group),
                          incident=incident)
            self.metrics.ingest_batches.labels(outcome="retry").inc(len(group))
            error = f"not stored ({type(exc).__name__}, incident {incident}); resend later"
            return [pb.PublishResponse(sequence=r.batch.sequence, status=pb.PUBLISH_STATUS_RETRY, error=error)
                    for r in group]
        acks, stored = [], False
        for outcome in outcomes:
            acks.append(self._ack(outcome))
            stored |= outcome.result is not None and not outcome.result.duplicate
        if stored:
            self.runtime.relay.wake()
        return acks

    def _ack(self, outcome: BatchOutcome) -> pb.PublishResponse:
        sequence, result = outcome.sequence, outcome.result
        if outcome.rejected is not None:
            self.metrics.ingest_batches.labels(outcome="rejected").inc()
            return pb.PublishResponse(sequence=sequence, status=pb.PUBLISH_STATUS_REJECTED, error=str(outcome.rejected))
        if result is None:
            incident = uuid.uuid4().hex[:12]
            log.error("ingest batch not stored; the node will resend it", sequence=sequence, incident=incident,
                      exc_info=outcome.failed)
            self.metrics.ingest_batches.labels(outcome="retry").inc()
            return pb.PublishResponse(sequence=sequence, status=pb.PUBLISH_STATUS_RETRY,
                                      error=f"not stored ({type(outcome.failed).__name__}, incident {incident});"
                                            " resend later")
        self.metrics.ingest_batches.labels(outcome="duplicate" if result.duplicate else "accepted").inc()
        if not result.duplicate:
            self.metrics.ingest_updates.inc(result.updates)
        return pb.PublishResponse(sequence=sequence, status=pb.PUBLISH_STATUS_ACCEPTED, duplicate=result.duplicate)


SERVICE = (IngestService, ingest_pb2_grpc.add_IngestServiceServicer_to_server, "vigil.v1.IngestService")
