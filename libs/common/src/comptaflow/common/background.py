"""A service's long-running background loop (the gateway's sweeper, a scheduler): started once, and
stopped by cancelling it, whatever it is waiting on."""

from __future__ import annotations

import abc
import asyncio
from typing import ClassVar


class BackgroundTask(abc.ABC):
    """Subclasses name the task and write `_run`, a loop that never returns on its own."""

    task_name: ClassVar[str]

    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    @abc.abstractmethod
    async def _run(self) -> None: ...
