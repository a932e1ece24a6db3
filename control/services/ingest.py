"""IngestService: track batches from pipeline nodes, each stored in one transaction and acked.

Every batch gets exactly one ack, in order, and never ends the stream: ACCEPTED once committed
(duplicate=true when its idempotency key was stored before and nothing was written), REJECTED
with the offending field for a batch that can never be stored, RETRY when storing failed for a
reason that may pass (the database restarting, a lock timeout) so the node resends it later.
A batch from a node id that NodeService does not know ends the stream with FAILED_PRECONDITION.
The work itself is control.ingest.pipeline's.
"""

from __future__ import annotations

import uuid

import grpc

from vigil.api.v1 import ingest_pb2 as pb
from vigil.api.v1 import ingest_pb2_grpc
from vigil.control.ingest.runtime import IngestRuntime
from vigil.control.metrics import ControlMetrics
from vigil.control.rpc import rpc
from vigil.control.transactions import CallerDatabase
from vigil.errors import RepositoryError
from vigil.logs import get_logger
from vigil.storage.repositories.nodes import NodeRepository

log = get_logger("vigil.control.ingest")


class IngestService(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, db: CallerDatabase, runtime: IngestRuntime, metrics: ControlMetrics):
        self.db = db
        self.runtime = runtime  # its pipeline stores the batches, its relay is woken after each commit
        self.metrics = metrics

    @rpc("ingest", "write")
    async def Publish(self, request_iterator, context):
        registered: set[str] = set()  # node ids of this stream already found registered
        async for request in request_iterator:
            node_id = request.batch.node_id
            if node_id not in registered:
                known = await self._registered(node_id)
                if known is False:
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                        f"node {node_id} is not registered: call NodeService.RegisterNode first")
                if known:
                    registered.add(node_id)
            yield await self._acknowledge(request)

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

    async def _acknowledge(self, request: pb.PublishRequest) -> pb.PublishResponse:
        sequence = request.batch.sequence
        try:
            async with self.db.transaction() as tx:
                result = await self.runtime.pipeline.process(tx, request)
        except RepositoryError as exc:  # invalid, unknown camera or model version, refused by row security
            self.metrics.ingest_batches.labels(outcome="rejected").inc()
            return pb.PublishResponse(sequence=sequence, status=pb.PUBLISH_STATUS_REJECTED, error=str(exc))
        except Exception as exc:
            incident = uuid.uuid4().hex[:12]
            log.exception("ingest batch not stored; the node will resend it", sequence=sequence, incident=incident)
            self.metrics.ingest_batches.labels(outcome="retry").inc()
            return pb.PublishResponse(sequence=sequence, status=pb.PUBLISH_STATUS_RETRY,
                                      error=f"not stored ({type(exc).__name__}, incident {incident}); resend later")
        self.metrics.ingest_batches.labels(outcome="duplicate" if result.duplicate else "accepted").inc()
        if not result.duplicate:
            self.metrics.ingest_updates.inc(len(request.batch.updates))
            self.runtime.relay.wake()
        return pb.PublishResponse(sequence=sequence, status=pb.PUBLISH_STATUS_ACCEPTED, duplicate=result.duplicate)


SERVICE = (IngestService, ingest_pb2_grpc.add_IngestServiceServicer_to_server, "vigil.v1.IngestService")
