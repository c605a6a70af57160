"""Composition root of the loader: one consumer on the `comptaflow.loader` queue."""

from __future__ import annotations

from comptaflow.common.bus import Consumer
from comptaflow.common.bus.base import LOADER_QUEUE
from comptaflow.common.errors import ConfigurationError
from comptaflow.common.infra import Infra
from comptaflow.loader.handler import SERVICE, LoadHandler

# Loads of one tenant wait for each other (advisory lock): more than one slot lets other tenants proceed.
MIN_PREFETCH = 2


class Loader:
    """Start consuming with `start()`; `stop()` finishes or requeues in-flight work."""

    service = SERVICE

    def __init__(self, infra: Infra) -> None:
        if infra.warehouse is None:
            raise ConfigurationError("the loader needs a warehouse: set COMPTAFLOW_CLICKHOUSE_URL")
        self._infra = infra
        self._handler = LoadHandler(infra, infra.warehouse)
        self._consumer: Consumer | None = None

    async def start(self) -> None:
        assert self._infra.warehouse is not None
        await self._infra.warehouse.migrate()  # idempotent; the loader is the warehouse's writer
        prefetch = max(MIN_PREFETCH, self._infra.settings.worker_prefetch)
        self._consumer = await self._infra.bus.consume(LOADER_QUEUE, self._handler, prefetch=prefetch)

    async def stop(self, *, grace: float = 30.0) -> None:
        if self._consumer is not None:
            await self._consumer.stop(grace=grace)
            self._consumer = None
