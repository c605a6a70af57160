"""Composition root of the period validator: one consumer on the `comptaflow.period-validator` queue."""

from __future__ import annotations

from pathlib import Path

from comptaflow.common.bus import Consumer
from comptaflow.common.bus.base import PERIOD_VALIDATOR_QUEUE
from comptaflow.common.infra import Infra
from comptaflow.period_validator.handler import SERVICE, ValidationHandler, remove_stale_folders


class PeriodValidator:
    """Start consuming with `start()`; `stop()` finishes or requeues in-flight work (a parsing child still
    running after the grace period is killed with its task, and its message handed back)."""

    service = SERVICE

    def __init__(self, infra: Infra, *, work_dir: Path | None = None) -> None:
        self._infra = infra
        self._work_dir = work_dir
        self._handler = ValidationHandler(infra, work_dir=work_dir)
        self._consumer: Consumer | None = None

    async def start(self) -> None:
        remove_stale_folders(self._work_dir)
        await self._handler.sandbox.start()
        self._consumer = await self._infra.bus.consume(
            PERIOD_VALIDATOR_QUEUE, self._handler, prefetch=self._infra.settings.worker_prefetch
        )

    async def stop(self, *, grace: float = 30.0) -> None:
        if self._consumer is not None:
            await self._consumer.stop(grace=grace)
            self._consumer = None
        await self._handler.sandbox.stop()
