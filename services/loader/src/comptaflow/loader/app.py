"""Composition root of the loader: its handler on the process's connections (run by `comptaflow.common.worker`)."""

from __future__ import annotations

from comptaflow.common.contracts import LoadRequested
from comptaflow.common.errors import ConfigurationError
from comptaflow.common.service import Runtime, WorkerContext
from comptaflow.loader.handler import LoadHandler


def create(context: WorkerContext) -> Runtime:
    infra = context.infra
    warehouse = infra.warehouse
    if warehouse is None:
        raise ConfigurationError("the loader needs a warehouse: set COMPTAFLOW_CLICKHOUSE_URL")

    async def start() -> None:
        # The loader is the warehouse's writer: its schema is brought up to date before the first load (idempotent).
        await warehouse.migrate()

    return Runtime(handlers={LoadRequested: LoadHandler(infra, warehouse)}, on_start=start)
