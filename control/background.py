"""A component's one long-running asyncio task beside the gRPC server (feed relay, assignment
reconciler, assignment signal): start() is idempotent, stop() cancels it and waits for it."""

from __future__ import annotations

import abc
import asyncio
import contextlib


class BackgroundTask(abc.ABC):
    task_name = "background"
    _task: asyncio.Task | None = None

    @abc.abstractmethod
    async def _run(self) -> None:
        """The component's loop."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
