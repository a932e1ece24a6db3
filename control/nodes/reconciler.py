"""AssignmentReconciler: every interval (or when woken), on one replica at a time, marks nodes
whose lease ran out OFFLINE and applies the planner's changes to stream_assignments.

Cameras created, changed or deleted through CameraService, nodes registering, draining or going
quiet are all picked up by the next pass: the pass reads the whole picture each time, so nothing
needs to notify it (DrainNode and friends wake it only to be quicker).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolClosed

from vigil.control.background import BackgroundTask
from vigil.control.nodes.planner import plan_assignments
from vigil.control.nodes.signal import AssignmentSignal
from vigil.logs import get_logger
from vigil.storage.locks import try_transaction_lock
from vigil.storage.repositories.nodes import NodeRepository, StreamAssignmentRepository

log = get_logger("vigil.control.nodes.reconciler")

_LOCK = "vigil.node_reconciler"


@dataclass(frozen=True)
class PassResult:
    ran: bool  # False: another replica held the lock
    offline: tuple[UUID, ...] = ()
    moves: int = 0
    unplaced: int = 0


class AssignmentReconciler(BackgroundTask):
    task_name = "node-reconciler"

    def __init__(self, pool: AsyncConnectionPool, signal: AssignmentSignal, *, interval_s: float = 1.0,
                 retry_s: float = 5.0):
        self.pool = pool
        self.signal = signal
        self.interval_s = interval_s
        self.retry_s = retry_s
        self._wake = asyncio.Event()
        self._unplaced_reported = 0

    def wake(self) -> None:
        self._wake.set()


    async def reconcile(self) -> PassResult:
        """One pass, in one transaction under a transaction-scoped advisory lock: replicas take
        turns, and a replica that dies mid-pass releases the lock with its connection."""
        async with self.pool.connection() as conn, conn.transaction():
            if not await try_transaction_lock(conn, _LOCK):
                return PassResult(ran=False)
            nodes, assignments = NodeRepository(conn), StreamAssignmentRepository(conn)
            offline = await nodes.expire_leases()
            plan = plan_assignments(await nodes.loads(), await assignments.current(),
                                    await assignments.assignable_cameras())
            if plan.moves:
                await assignments.apply(plan.moves)
        for node_id in offline:
            log.warning("node missed its lease; marked offline, its streams are reassigned", node_id=str(node_id))
        if plan.moves:
            log.info("stream assignments changed", moves=len(plan.moves),
                     unassigned=sum(1 for n in plan.moves.values() if n is None))
            await self.signal.publish()  # after commit: watchers read the new rows
        if len(plan.unplaced) != self._unplaced_reported:  # said once per change, not every second
            self._unplaced_reported = len(plan.unplaced)
            if plan.unplaced:
                log.warning("no node has room for some streams; they wait unassigned", streams=len(plan.unplaced))
        return PassResult(True, tuple(offline), len(plan.moves), len(plan.unplaced))

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.reconcile()
            except PoolClosed:  # the control plane is shutting down
                return
            except psycopg.Error as exc:
                log.warning("node reconciler pass failed; retrying", error=str(exc), retry_s=self.retry_s)
                await asyncio.sleep(self.retry_s)
                continue
            except Exception:
                log.exception("node reconciler pass failed; retrying", retry_s=self.retry_s)
                await asyncio.sleep(self.retry_s)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
