"""The node side of one control-plane replica: the assignment signal and the reconciler, one of
each per ControlApp (app.nodes), started and stopped with it.

    app.nodes.reconciler.wake()      # reconcile now (after a drain, say) rather than within 1 s
    await app.nodes.signal.wait(t)   # a WatchAssignments stream waiting for the next change
    app.nodes.closing                # set when the replica stops: watch streams end cleanly
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from vigil.control.nodes.reconciler import AssignmentReconciler
from vigil.control.nodes.signal import AssignmentSignal

RECONCILE_INTERVAL_S = 1.0
WATCH_POLL_S = 0.5  # a watcher re-reads its assignments at least this often (camera updates, lost signals)


class NodeRuntime:
    def __init__(self, pool: AsyncConnectionPool, redis: aioredis.Redis):
        self.signal = AssignmentSignal(redis)
        self.reconciler = AssignmentReconciler(pool, self.signal, interval_s=RECONCILE_INTERVAL_S)
        self.closing = asyncio.Event()

    def start(self) -> None:
        self.closing.clear()
        self.signal.start()
        self.reconciler.start()

    async def stop(self) -> None:
        self.closing.set()
        await self.reconciler.stop()
        await self.signal.stop()  # wakes the watchers, which see `closing` and end
