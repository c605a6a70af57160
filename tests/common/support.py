"""Small helpers shared by the common-library tests (no fixtures here: those live in conftest.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from comptaflow.common.db import Conn

# Every AmqpBus of the test session declares the queues with this limit (a different one would be refused
# by RabbitMQ with PRECONDITION_FAILED); it matches the `settings` fixture of tests/conftest.py.
AMQP_DELIVERY_LIMIT = 3

# The `fresh_database` fixture: creates an empty database and returns its DSN.
FreshDatabase = Callable[[], Awaitable[str]]


def tenant_id() -> str:
    """A tenant id unique to one test that matches the contract pattern."""
    return f"t-{uuid.uuid4().hex[:12]}"


async def eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool], *, within: float = 10.0) -> None:
    """Poll `check` until it is true; fail with the elapsed time when it is not within `within` seconds."""
    started = time.monotonic()
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() - started > within:
            raise AssertionError(f"condition still false after {within:.1f}s")
        await asyncio.sleep(0.02)


async def blocked_by(pool: asyncpg.Pool, waiting: Conn, holder: Conn) -> None:
    """Wait until the statement running on `waiting` waits for a lock that `holder`'s transaction holds.

    PostgreSQL's own view of it (`pg_blocking_pids`): from then on the statement cannot finish before
    `holder` commits or rolls back, however long the test looks."""
    waiter, blocker = waiting.get_server_pid(), holder.get_server_pid()

    async def blocked() -> bool:
        return blocker in await pool.fetchval("SELECT pg_blocking_pids($1)", waiter)

    await eventually(blocked)
