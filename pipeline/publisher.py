"""The pipeline node's publisher: streams TrackBatches to IngestService.Publish, acked one by one.

    publisher = Publisher(target="cp:50051", api_key=key, node_id=node_id, spool_dir=Path("/var/lib/vigil/spool"))
    await publisher.start()
    await publisher.publish(batch)      # sets batch.node_id and batch.sequence; waits while the queue is full
    await publisher.flush(timeout=5)    # True once everything published so far is acked
    await publisher.close()             # flush what it can, spool the rest

How batches flow:
- publish() assigns the next sequence (a persisted counter: strictly increasing across restarts) and
  appends the serialized request to a bounded in-memory queue, in publication order.
- One sender task owns the Publish stream: a writer sends batches (at most max_in_flight unacked), a
  reader matches the in-order acks against the in-flight list. ACCEPTED and REJECTED are final;
  RETRY spools the batch and pauses sending until the in-flight batches are acked, then the spool is
  replayed from its oldest batch, so a retried batch goes out before anything newer.
- The spool (SQLite, see spool.py) holds every batch that is not on a healthy stream: while the
  control plane is unreachable the queue is drained into it (publish never blocks for long), the
  unacked batches of a broken stream go back into it, and close() writes whatever is left.
- Ordering: the spool is keyed by sequence and, whenever it holds unsent batches, the writer first
  moves the queue into it and then sends from it oldest first; only with an empty spool does it
  send straight from the queue. So batches go out in sequence order, spooled or not.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from vigil.api.v1 import ingest_pb2 as pb
from vigil.logs import get_logger
from vigil.pipeline.spool import Spool, SpooledBatch

log = get_logger("vigil.pipeline.publisher")

PUBLISH_METHOD = "/vigil.v1.IngestService/Publish"
SERVER_MAX_IN_FLIGHT = 256  # the server ends the stream with RESOURCE_EXHAUSTED above this
SEQUENCE_BLOCK = 1024  # sequences reserved on disk per write of the counter
SPOOL_READ_CHUNK = 64


@dataclass(frozen=True)
class PublisherStats:
    queue_depth: int  # batches in the in-memory queue
    unacked: int  # batches sent on the current stream and not acked yet
    spooled_batches: int  # batches in the on-disk spool
    spooled_bytes: int  # size of the spool's files on disk
    sent: int  # batches written to a stream (resends included)
    accepted: int  # ACCEPTED acks (duplicates included)
    duplicates: int  # ACCEPTED acks with duplicate = true
    rejected: int  # REJECTED acks: dropped, never resent
    retried: int  # RETRY acks: the batch was resent later
    reconnects: int  # streams opened after the previous one broke or failed to connect
    connected: bool  # a stream is open now


@dataclass(slots=True)
class _Entry:
    sequence: int
    camera_id: str
    data: bytes  # serialized PublishRequest
    spooled: bool  # also in the spool (deleted there once acked)


class _Changed:
    """Wakes every waiter on each state change; waiters re-check their own condition. One event loop,
    no lock needed."""

    def __init__(self):
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], object]) -> None:
        while not predicate():
            await self._event.wait()


class _StreamEnded(Exception):
    def __init__(self, code: grpc.StatusCode | None, details: str):
        super().__init__(f"{code}: {details}")
        self.code, self.details = code, details


def _identity(data: bytes) -> bytes:
    return data


class Publisher:
    def __init__(self, *, target: str, api_key: str, node_id: uuid.UUID, spool_dir: Path,
                 queue_size: int = 256, max_in_flight: int = 128, reconnect_backoff=(0.2, 5.0),
                 on_unregistered: Callable[[], Awaitable[None]] | None = None,
                 connect_timeout: float = 5.0):
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        if not 1 <= max_in_flight <= SERVER_MAX_IN_FLIGHT:
            raise ValueError(f"max_in_flight must be in 1..{SERVER_MAX_IN_FLIGHT} (the server's limit)")
        base, cap = reconnect_backoff
        if not 0 < base <= cap:
            raise ValueError("reconnect_backoff must be (base, cap) with 0 < base <= cap")
        self._target = target
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._node_id = str(node_id)
        self._queue_size = queue_size
        self._max_in_flight = max_in_flight
        self._backoff = (float(base), float(cap))
        self._on_unregistered = on_unregistered
        self._connect_timeout = connect_timeout
        self._log = log.bind(node_id=self._node_id, target=target)

        self._spool = Spool(spool_dir)
        self._changed = _Changed()
        self._queue: deque[_Entry] = deque()
        self._inflight: deque[_Entry] = deque()
        self._publish_lock = asyncio.Lock()  # sequence order == queue order
        self._next_sequence = 1
        self._sequence_limit = 0  # last sequence of the reserved block
        self._last_sequence = 0  # last sequence handed out
        self._pending: list[int] = []  # heap of sequences not finally acked
        self._finished: set[int] = set()  # finally acked, still in the heap (lazy deletion)
        self._to_delete: list[int] = []  # acked spooled sequences, deleted by the deleter task
        self._deleting = False
        self._hold = False  # a RETRY came: no new sends until the in-flight batches are acked
        self._connected = False
        self._closing = False  # publish() refuses, close() is running
        self._stopping = False  # the sender ends its stream and stops
        self._closed = asyncio.Event()
        self._attempt = 0  # consecutive failed streams (backoff exponent)
        self._sender: asyncio.Task | None = None
        self._deleter: asyncio.Task | None = None
        self._counts = dict(sent=0, accepted=0, duplicates=0, rejected=0, retried=0, reconnects=0)

    # --- public API

    async def start(self) -> None:
        if self._sender is not None:
            raise RuntimeError("publisher already started")
        await self._spool.open()
        for sequence in await self._spool.sequences():  # a previous run's batches: replayed first
            heapq.heappush(self._pending, sequence)
            self._last_sequence = sequence  # flush() covers them too
        self._sender = asyncio.create_task(self._run(), name=f"publisher-{self._node_id}")
        self._deleter = asyncio.create_task(self._delete_acked(), name=f"publisher-spool-{self._node_id}")
        self._log.info("publisher started", spooled_batches=self._spool.count, spool=str(self._spool.path))

    async def publish(self, batch: pb.TrackBatch) -> None:
        if self._sender is None:
            raise RuntimeError("publisher not started: await start() first")
        if self._closing:
            raise RuntimeError("publisher is closed")
        async with self._publish_lock:
            sequence = await self._take_sequence()
            batch.node_id = self._node_id
            batch.sequence = sequence
            entry = _Entry(sequence, batch.camera_id, pb.PublishRequest(batch=batch).SerializeToString(), False)
            heapq.heappush(self._pending, sequence)
            try:
                # backpressure on a healthy stream; while disconnected the spool takes what does not fit
                await self._changed.wait_for(
                    lambda: len(self._queue) < self._queue_size or not self._connected or self._closing)
                if len(self._queue) < self._queue_size:
                    self._queue.append(entry)
                else:
                    await self._spool.put([SpooledBatch(entry.sequence, entry.camera_id, entry.data)])
            except BaseException:  # cancelled (or the disk failed): not published, flush() must not wait for it
                self._finished.add(sequence)
                raise
            finally:
                self._changed.notify()

    async def flush(self, timeout: float | None = None) -> bool:
        """True when every batch published so far (and every batch spooled by a previous run) is
        acked ACCEPTED or REJECTED and gone from the spool; False after `timeout` seconds."""
        target = self._last_sequence
        return await self._wait(lambda: self._flushed(target), timeout)

    async def close(self, timeout: float = 10.0) -> None:
        if self._sender is None:
            return
        if self._closing:  # closed, or another close() is at it
            await self._closed.wait()
            return
        self._closing = True
        try:
            self._changed.notify()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            # flush while a stream is up; once it is down, waiting only delays the restart
            target = self._last_sequence
            await self._wait(lambda: self._flushed(target) or not self._connected, timeout)
            self._stopping = True
            self._changed.notify()
            try:  # a healthy stream ends cleanly: done_writing, then the server's last acks
                async with asyncio.timeout(max(0.5, deadline - loop.time())):
                    await asyncio.shield(self._sender)
            except TimeoutError:
                self._sender.cancel()
            try:
                await self._sender  # on cancellation its teardown spools the unacked batches
            except asyncio.CancelledError:
                pass
            async with self._publish_lock:  # no publish() is half-way: the queue is final
                await self._spill_queue()
            await self._wait(lambda: not self._to_delete and not self._deleting, 5.0)
            self._deleter.cancel()
            try:
                await self._deleter
            except asyncio.CancelledError:
                pass
            left = self._spool.count
            await self._spool.close()
        finally:
            self._closed.set()
        self._log.info("publisher closed", spooled_batches=left, **self._counts)

    def stats(self) -> PublisherStats:
        return PublisherStats(
            queue_depth=len(self._queue), unacked=len(self._inflight), spooled_batches=self._spool.count,
            spooled_bytes=self._spool.size_on_disk(), connected=self._connected, **self._counts)

    # --- bookkeeping

    async def _take_sequence(self) -> int:
        if self._next_sequence > self._sequence_limit:
            first, last = await self._spool.reserve_sequences(SEQUENCE_BLOCK)
            self._next_sequence, self._sequence_limit = first, last
        sequence = self._next_sequence
        self._next_sequence += 1
        self._last_sequence = sequence
        return sequence

    def _flushed(self, target: int) -> bool:
        return self._lowest_pending() > target and not self._to_delete and not self._deleting

    def _lowest_pending(self) -> float:
        while self._pending and self._pending[0] in self._finished:
            self._finished.discard(heapq.heappop(self._pending))
        return self._pending[0] if self._pending else float("inf")

    def _finish(self, entry: _Entry) -> None:
        self._finished.add(entry.sequence)
        self._lowest_pending()  # prunes the heap as acks arrive, flush() or not
        if entry.spooled:
            self._to_delete.append(entry.sequence)

    async def _wait(self, predicate, timeout: float | None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait_for(predicate)
            return True
        except TimeoutError:
            return False

    async def _spill_queue(self) -> None:
        """Move the queued batches into the spool (they are all newer than what it holds)."""
        if not self._queue:
            return
        entries = list(self._queue)
        self._queue.clear()
        self._changed.notify()  # room for publish()
        await self._spool.put([SpooledBatch(e.sequence, e.camera_id, e.data) for e in entries])

    async def _delete_acked(self) -> None:
        """Deletes acked batches from the spool, many per transaction."""
        while True:
            await self._changed.wait_for(lambda: self._to_delete)
            sequences, self._to_delete = self._to_delete, []
            self._deleting = True
            try:
                await self._spool.delete(sequences)
            except Exception:  # noqa: BLE001 - a disk error must not stop publishing; resent batches are harmless
                self._log.exception("cannot delete acked batches from the spool; retrying", count=len(sequences))
                self._to_delete = sequences + self._to_delete
                await asyncio.sleep(1.0)
            finally:
                self._deleting = False
                self._changed.notify()

    # --- the stream

    async def _run(self) -> None:
        first = True
        while not self._stopping:
            if not first:
                self._counts["reconnects"] += 1
            first = False
            try:
                await self._stream_once()
                if self._stopping:
                    return
                code, details = None, "the control plane ended the stream"
            except _StreamEnded as ended:
                code, details = ended.code, ended.details
            except Exception:  # noqa: BLE001 - the sender must outlive any single failure
                self._log.exception("publish stream failed unexpectedly; reconnecting")
                code, details = None, "unexpected error"
            if self._stopping:
                return
            delay = self._next_delay()
            await self._after_stream(code, details, delay)
            await self._spool_while_waiting(delay)

    def _next_delay(self) -> float:
        base, cap = self._backoff
        ceiling = min(cap, base * 2 ** min(self._attempt, 30))
        self._attempt += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # jitter: nodes do not reconnect in step

    async def _after_stream(self, code: grpc.StatusCode | None, details: str, delay: float) -> None:
        fields = dict(code=code.name if code else None, details=details, retry_in_s=round(delay, 2),
                      spooled_batches=self._spool.count)
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            self._log.warning("control plane does not know this node; registering again before reconnecting",
                              **fields)
            if self._on_unregistered is not None:
                try:
                    await self._on_unregistered()
                except Exception:  # noqa: BLE001 - keep spooling; the next stream tells again
                    self._log.exception("on_unregistered callback failed")
        elif code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            self._log.error("control plane refused the node's API key: check that the key is valid, not revoked"
                            " or expired, and has ingest:write (role api_client); batches are spooled meanwhile",
                            **fields)
        elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            self._log.warning("control plane ended the stream: over a limit (rate or in-flight batches)", **fields)
        else:
            self._log.warning("control plane unreachable or stream broken; spooling and reconnecting", **fields)

    async def _spool_while_waiting(self, delay: float) -> None:
        """Back off for `delay` seconds, draining the queue into the spool meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        while not self._stopping:
            await self._spill_queue()
            if not await self._wait(lambda: self._queue or self._stopping, max(0.0, deadline - loop.time())):
                return

    async def _stream_once(self) -> None:
        """One Publish stream, until it breaks (raises _StreamEnded) or the publisher stops (returns)."""
        channel = grpc.aio.insecure_channel(self._target, options=[
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ])
        reader = writer = None
        call = None
        try:
            call = channel.stream_stream(PUBLISH_METHOD, request_serializer=_identity,
                                         response_deserializer=pb.PublishResponse.FromString)(metadata=self._metadata)
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await call.wait_for_connection()
            except TimeoutError:
                raise _StreamEnded(grpc.StatusCode.UNAVAILABLE, "connect timed out") from None
            self._connected = True
            self._changed.notify()
            reader = asyncio.create_task(self._read_acks(call))
            writer = asyncio.create_task(self._write_batches(call))
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if writer.done() and writer.exception() is None:  # stopping: end the stream cleanly
                await call.done_writing()
                await reader  # the server ends the stream after acking what it received
                return
            for task in (reader, writer):
                if task.done() and task.exception() is not None:
                    raise task.exception()
            # the reader saw the server end the stream normally (e.g. a replica shutting down)
            raise _StreamEnded(None, "the control plane ended the stream")
        except grpc.aio.AioRpcError as exc:
            raise _StreamEnded(exc.code(), exc.details() or "") from None
        finally:
            self._connected = False
            self._hold = False
            for task in (reader, writer):
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(*(t for t in (reader, writer) if t is not None), return_exceptions=True)
            await self._requeue_inflight()
            if call is not None:
                call.cancel()
            await channel.close()
            self._changed.notify()

    async def _requeue_inflight(self) -> None:
        """The unacked batches of a broken stream go back to the spool (resent on the next stream; the
        idempotency key makes a batch the server did store an ACCEPTED duplicate)."""
        entries, self._inflight = list(self._inflight), deque()
        await self._spool.put([SpooledBatch(e.sequence, e.camera_id, e.data) for e in entries if not e.spooled])
        if entries:
            self._log.info("unacked batches of the broken stream kept in the spool for resending",
                           count=len(entries))

    async def _write_batches(self, call) -> None:
        cursor = 0  # every spooled batch up to here was sent on this stream
        buffer: deque[SpooledBatch] = deque()
        await self._settle_deletes()  # acked batches must not be replayed from the spool
        while True:
            await self._changed.wait_for(
                lambda: self._stopping or self._hold or len(self._inflight) < self._max_in_flight)
            if self._stopping:
                return
            if self._hold:  # RETRY: wait for the in-flight acks, back off, replay the spool from its start
                await self._changed.wait_for(lambda: not self._inflight or self._stopping)
                await self._wait(lambda: self._stopping, self._next_delay())
                self._hold, cursor = False, 0
                buffer.clear()
                await self._settle_deletes()
                continue
            if not buffer and self._spool.max_sequence > cursor:
                await self._spill_queue()  # what is queued is newer than the spool: it follows it there
                highest = self._spool.max_sequence
                buffer.extend(await self._spool.read_after(cursor, SPOOL_READ_CHUNK))
                if not buffer:
                    cursor = highest
                continue
            if buffer:
                row = buffer.popleft()
                cursor = row.sequence
                entry = _Entry(row.sequence, row.camera_id, row.data, True)
            else:
                await self._changed.wait_for(lambda: self._queue or self._stopping or self._hold
                                             or self._spool.max_sequence > cursor)  # noqa: B023
                if not self._queue or self._stopping or self._hold:
                    continue
                entry = self._queue.popleft()
                self._changed.notify()  # room for publish()
            self._inflight.append(entry)  # before the write: if it breaks midway the batch is resent
            await call.write(entry.data)
            self._counts["sent"] += 1

    async def _settle_deletes(self) -> None:
        await self._changed.wait_for(lambda: not self._to_delete and not self._deleting)

    async def _read_acks(self, call) -> None:
        while True:
            ack = await call.read()
            if ack is grpc.aio.EOF:
                return
            if not self._inflight or ack.sequence != self._inflight[0].sequence:
                expected = self._inflight[0].sequence if self._inflight else None
                self._log.error("ack out of order; reopening the stream", sequence=ack.sequence, expected=expected)
                raise _StreamEnded(grpc.StatusCode.INTERNAL, f"ack {ack.sequence} while expecting {expected}")
            entry = self._inflight.popleft()
            self._attempt = 0  # the stream works: the next failure starts the backoff afresh
            if ack.status == pb.PUBLISH_STATUS_ACCEPTED:
                self._counts["accepted"] += 1
                self._counts["duplicates"] += ack.duplicate
                self._finish(entry)
            elif ack.status == pb.PUBLISH_STATUS_REJECTED:
                self._counts["rejected"] += 1
                self._log.warning("batch rejected by the control plane; dropped, not resent",
                                  sequence=entry.sequence, camera_id=entry.camera_id, error=ack.error)
                self._finish(entry)
            else:  # RETRY (or a status this node does not know: keeping the batch is the safe side)
                self._counts["retried"] += 1
                self._log.info("batch to be resent", sequence=entry.sequence, camera_id=entry.camera_id,
                               status=pb.PublishStatus.Name(ack.status) if ack.status in pb.PublishStatus.values()
                               else ack.status, error=ack.error)
                self._hold = True  # before the spool write: the writer must not pick the batch up meanwhile
                if not entry.spooled:
                    await self._spool.put([SpooledBatch(entry.sequence, entry.camera_id, entry.data)])
            self._changed.notify()
