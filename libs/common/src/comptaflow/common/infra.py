"""The connections a process holds: PostgreSQL pool, bus, object storage, and the warehouse if configured.

`open_infra()` is the single place that opens them (in order) and closes them (in reverse); services
receive the `Infra` object from their composition root, never build connections themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from comptaflow.common import db
from comptaflow.common.bus import Bus
from comptaflow.common.bus.amqp import AmqpBus
from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.errors import DependencyUnavailable
from comptaflow.common.registry import Registry, discover
from comptaflow.common.settings import Settings
from comptaflow.common.storage import Storage
from comptaflow.common.warehouse import Warehouse


@dataclass(frozen=True, slots=True)
class Infra:
    settings: Settings
    db: asyncpg.Pool
    bus: Bus
    storage: Storage
    warehouse: Warehouse | None = None

    async def readiness(self) -> dict[str, bool]:
        checks = {
            "database": await db.ping(self.db),
            "bus": await self.bus.ping(),
            "storage": await self.storage.ping(),
        }
        if self.warehouse is not None:
            checks["warehouse"] = await self.warehouse.ping()
        return checks


def make_bus(settings: Settings, *, service: str, registry: Registry | None = None) -> Bus:
    """RabbitMQ when an AMQP URL is set, else the in-process bus; either declares the registry's topology."""
    topology = (registry or discover(settings.extra_services)).topology
    limit = settings.delivery_limit
    if settings.amqp_url is not None:
        return AmqpBus(settings.amqp_url.get_secret_value(), service=service, topology=topology, delivery_limit=limit)
    return MemoryBus(service=service, topology=topology, delivery_limit=limit)


def make_storage(settings: Settings) -> Storage:
    if not settings.s3_endpoint or settings.s3_access_key is None or settings.s3_secret_key is None:
        raise DependencyUnavailable(
            "object storage is not configured: set COMPTAFLOW_S3_ENDPOINT, COMPTAFLOW_S3_ACCESS_KEY "
            "and COMPTAFLOW_S3_SECRET_KEY"
        )
    return Storage(
        endpoint=settings.s3_endpoint,
        access_key=settings.s3_access_key.get_secret_value(),
        secret_key=settings.s3_secret_key.get_secret_value(),
        bucket=settings.s3_bucket,
        region=settings.s3_region,
    )


ACCEPTS_UPLOADS = ("gateway", "up")
"""Services that stream uploaded files to the store and check, at start, that they can."""


@contextlib.asynccontextmanager
async def open_infra(
    settings: Settings,
    *,
    service: str,
    bus: Bus | None = None,
    run_migrations: bool = False,
    registry: Registry | None = None,
) -> AsyncIterator[Infra]:
    """Open the process's connections; the bus declares the topology of `registry` (default: the installed
    services and COMPTAFLOW_EXTRA_SERVICES)."""
    if settings.database_url is None:
        raise DependencyUnavailable("COMPTAFLOW_DATABASE_URL is not set")
    async with contextlib.AsyncExitStack() as stack:
        pool = await db.create_pool(settings.database_url.get_secret_value(), max_size=settings.db_pool_max)
        stack.push_async_callback(pool.close)
        if run_migrations:
            await db.migrate(pool)
        storage = make_storage(settings)
        await storage.open()
        stack.push_async_callback(storage.close)
        await storage.ensure_bucket()
        if service in ACCEPTS_UPLOADS:
            await storage.check_multipart()
        the_bus = bus if bus is not None else make_bus(settings, service=service, registry=registry)
        await the_bus.connect()
        stack.push_async_callback(the_bus.close)
        warehouse: Warehouse | None = None
        if settings.clickhouse_url:
            warehouse = Warehouse(settings.clickhouse_url)
            await warehouse.open()
            stack.push_async_callback(warehouse.close)
            if run_migrations:
                await warehouse.migrate()
        yield Infra(settings=settings, db=pool, bus=the_bus, storage=storage, warehouse=warehouse)
