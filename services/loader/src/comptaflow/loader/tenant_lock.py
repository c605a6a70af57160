"""Serialisation of one tenant's loads: a PostgreSQL session advisory lock held for the whole load.

The lock lives on a dedicated pooled connection: if the process dies, the connection drops and the lock
with it, so a redelivered message can proceed at once. Waiting polls `pg_try_advisory_lock`, which keeps
the wait cancellable and independent of the pool's statement timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import structlog

log = structlog.get_logger("comptaflow.loader")

_KEY = "hashtextextended('comptaflow.load.' || $1, 0)"
POLL_SECONDS = 0.1


@contextlib.asynccontextmanager
async def tenant_lock(pool: asyncpg.Pool, tenant_id: str) -> AsyncIterator[None]:
    async with pool.acquire() as conn:
        waited = False
        while not await conn.fetchval(f"SELECT pg_try_advisory_lock({_KEY})", tenant_id):
            if not waited:
                log.info("tenant_load_waiting")
                waited = True
            await asyncio.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            # A broken connection released the lock already; the pool discards it.
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await conn.execute(f"SELECT pg_advisory_unlock({_KEY})", tenant_id)
