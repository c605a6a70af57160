"""PostgreSQL advisory locks: one key scheme for every purpose, so that no two purposes can collide.

A lock is named by a purpose (`Namespace`, a fixed number) and a value of that purpose (a tenant id, …).
Its key is one signed 64-bit integer (the one-key form of `pg_advisory_lock(bigint)`):

    bits 63      0 (keys are positive)
    bits 62..48  the namespace number, 1 … 32767
    bits 47..0   the first 6 bytes of blake2b(value as UTF-8), big-endian

Two purposes never share a key: their high bits differ. Two values of one purpose share one with odds
of 1 in 2^48 per pair (among 100,000 tenants, about 2 in 100,000 that any two share one); a shared key
would only make them wait for each other, never let two holders of one value in at once.

The hash is computed here, in Python, rather than with `hashtext()` in SQL: blake2b is specified, so every
process of every version and every PostgreSQL server agrees on the key, while `hashtext` is an internal
function whose results PostgreSQL does not promise to keep across major versions (nor across collations);
a key known before the query is also one a test can assert and a log line can name.

A new purpose (per-tenant jobs, payroll runs, …) is one new member of `Namespace`, with the next unused
number: a number is never reused nor renumbered, since running processes of the previous release still
lock with it.

    advisory_lock(pool_or_conn, namespace, value)   session lock, `async with`: held until the block ends;
                                                    taken with a pool, it is held on a dedicated connection
    advisory_xact_lock(conn, namespace, value)      transaction lock: held until the caller's transaction ends

`advisory_lock` waits by polling `pg_try_advisory_lock`, which keeps the wait cancellable and outside the
pool's statement timeout. A session lock lives as long as its connection: a process that dies releases
it with its connection (a redelivered message can proceed at once), and a connection lost while the block
runs loses the lock without the block being told.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import asyncpg
import structlog

if TYPE_CHECKING:
    from comptaflow.common.db import Conn

log = structlog.get_logger("comptaflow.locks")

POLL_SECONDS = 0.1


@enum.unique
class Namespace(enum.IntEnum):
    """Why a lock is taken: the one list of purposes (numbers are never reused; see the module docstring)."""

    MIGRATIONS = 1
    """`db.migrate`: one process at a time applies migrations (session lock, value "schema")."""
    LOAD_REQUESTS = 2
    """Gateway: the load and restore requests of a tenant are decided one at a time (transaction lock)."""
    TENANT_LOADS = 3
    """Loader: the loads and restores of a tenant run one at a time (session lock held for the whole load)."""
    PENNYLANE_SYNC = 4
    """Pennylane sync: one sync of a tenant at a time (session lock held for the whole sync)."""
    PENNYLANE_SCHEMA = 5
    """Pennylane sync: a tenant's schema is created or migrated by one process at a time (transaction lock)."""
    SCHEDULER = 6
    """A service's scheduler runs in one replica at a time (session lock on the service's name)."""
    BI_LOGINS = 7
    """Gateway: BI logins are created and rotated one at a time (transaction lock, value "roles"): two
    transactions granting on the same database row at once fail with "tuple concurrently updated"."""


_VALUE_BITS = 48
_MAX_NAMESPACE = (1 << (63 - _VALUE_BITS)) - 1


def key(namespace: Namespace, value: str) -> int:
    """The 64-bit key of the lock on `value` for `namespace` (see the module docstring)."""
    number = int(namespace)
    if not 0 < number <= _MAX_NAMESPACE:
        raise ValueError(f"advisory-lock namespace {namespace!r} is outside 1..{_MAX_NAMESPACE}")
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=_VALUE_BITS // 8).digest()
    return (number << _VALUE_BITS) | int.from_bytes(digest, "big")


@contextlib.asynccontextmanager
async def advisory_lock(target: asyncpg.Pool | Conn, namespace: Namespace, value: str) -> AsyncIterator[None]:
    """Hold the session lock on (`namespace`, `value`) for the block, waiting for it as long as it takes.

    Given a pool, the lock is held on a connection taken from it for the block; given a connection, on
    that connection (whose other statements the block may go on running).
    """
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn, advisory_lock(conn, namespace, value):
            yield
        return
    lock_key = key(namespace, value)
    waited = False
    while not await target.fetchval("SELECT pg_try_advisory_lock($1::bigint)", lock_key):
        if not waited:
            log.info("advisory_lock_waiting", lock=namespace.name)
            waited = True
        await asyncio.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        # A broken connection released the lock already (the pool discards it). asyncpg may say so with any
        # of these, a protocol-state InternalClientError included (a session the server terminated while idle).
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError):
            await target.execute("SELECT pg_advisory_unlock($1::bigint)", lock_key)


async def advisory_xact_lock(conn: Conn, namespace: Namespace, value: str) -> None:
    """Take the lock on (`namespace`, `value`) until the end of the caller's transaction (waits for it)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1::bigint)", key(namespace, value))
