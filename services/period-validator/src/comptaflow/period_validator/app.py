"""Composition root of the period validator: its handler and parsing sandbox (run by `comptaflow.common.worker`).

At start, the temporary folders of dead validators are removed and the warm parsing child is started; at
stop (after the last message finished or was handed back: a parsing child still running after the grace
period is killed with its task), the sandbox is stopped.
"""

from __future__ import annotations

from comptaflow.common.contracts import BatchUploaded
from comptaflow.common.service import Runtime, WorkerContext
from comptaflow.period_validator.handler import ValidationHandler, remove_stale_folders


def create(context: WorkerContext) -> Runtime:
    handler = ValidationHandler(context.infra, work_dir=context.work_dir)

    async def start() -> None:
        remove_stale_folders(context.work_dir)
        await handler.sandbox.start()

    return Runtime(handlers={BatchUploaded: handler}, on_start=start, on_stop=handler.sandbox.stop)
