"""Advisory locks: one key per (purpose, value), held for a block or until the end of a transaction."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import asyncpg
import pytest

from comptaflow.common import locks
from comptaflow.common.db import Conn
from comptaflow.common.locks import Namespace, advisory_lock, advisory_xact_lock, key


def unique_value() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def test_a_key_is_the_namespace_in_the_high_bits_and_48_bits_of_blake2b() -> None:
    # Processes of every release must agree on a key: a change here is a change of the lock scheme.
    assert key(Namespace.TENANT_LOADS, "t-acme") == 0x3_F7BD_4998_88A2
    assert key(Namespace.TENANT_LOADS, "t-acme") >> 48 == 3
    assert key(Namespace.TENANT_LOADS, "t-acme") & (2**48 - 1) == int.from_bytes(
        hashlib.blake2b(b"t-acme", digest_size=6).digest(), "big"
    )


def test_no_two_purposes_share_a_key_and_every_key_is_a_positive_bigint() -> None:
    numbers = [int(namespace) for namespace in Namespace]
    assert len(set(numbers)) == len(numbers)
    assert all(0 < number < 2**15 for number in numbers)
    for value in ("", "t-acme", "schema", "é" * 100):
        keys = {key(namespace, value) for namespace in Namespace}
        assert len(keys) == len(numbers)
        assert all(0 < k < 2**63 for k in keys)


async def held_keys(conn: Conn) -> set[int]:
    """The one-key advisory locks held in this database, as the bigint each was taken with."""
    rows = await conn.fetch(
        "SELECT (classid::bigint << 32) | objid::bigint AS key FROM pg_locks"
        " WHERE locktype = 'advisory' AND objsubid = 1 AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return {row["key"] for row in rows}


@pytest.mark.infra
async def test_a_session_lock_is_held_for_the_block_and_a_second_holder_waits(pool: asyncpg.Pool) -> None:
    value = unique_value()
    order: list[str] = []

    async def second() -> None:
        async with advisory_lock(pool, Namespace.TENANT_LOADS, value):
            order.append("second holds it")

    async with pool.acquire() as observer:
        async with advisory_lock(pool, Namespace.TENANT_LOADS, value):
            assert key(Namespace.TENANT_LOADS, value) in await held_keys(observer)
            waiter = asyncio.create_task(second())
            await asyncio.sleep(5 * locks.POLL_SECONDS)
            assert not waiter.done()
            order.append("first releases it")
        await asyncio.wait_for(waiter, timeout=5)
        assert order == ["first releases it", "second holds it"]
        assert key(Namespace.TENANT_LOADS, value) not in await held_keys(observer)


@pytest.mark.infra
async def test_other_values_and_other_purposes_do_not_wait(pool: asyncpg.Pool) -> None:
    value = unique_value()
    async with advisory_lock(pool, Namespace.TENANT_LOADS, value):
        async with asyncio.timeout(2):
            async with advisory_lock(pool, Namespace.TENANT_LOADS, unique_value()):
                pass
            async with advisory_lock(pool, Namespace.MIGRATIONS, value):
                pass
            async with pool.acquire() as conn, conn.transaction():
                await advisory_xact_lock(conn, Namespace.LOAD_REQUESTS, value)


@pytest.mark.infra
async def test_a_lock_whose_connection_dies_is_released(pool: asyncpg.Pool, pg_dsn: str) -> None:
    value = unique_value()
    holder = await asyncpg.connect(pg_dsn)
    try:
        async with advisory_lock(holder, Namespace.TENANT_LOADS, value):
            async with pool.acquire() as admin:
                await admin.execute("SELECT pg_terminate_backend($1)", holder.get_server_pid())
            # The process that held it is gone: the next one takes it at once.
            async with asyncio.timeout(5), advisory_lock(pool, Namespace.TENANT_LOADS, value):
                pass
        # Leaving the first block did not raise although its connection was gone.
    finally:
        await holder.close()


@pytest.mark.infra
async def test_a_transaction_lock_is_held_until_the_transaction_ends(pool: asyncpg.Pool) -> None:
    value = unique_value()
    lock_key = key(Namespace.LOAD_REQUESTS, value)
    async with pool.acquire() as other:
        async with pool.acquire() as conn, conn.transaction():
            await advisory_xact_lock(conn, Namespace.LOAD_REQUESTS, value)
            assert await other.fetchval("SELECT pg_try_advisory_lock($1::bigint)", lock_key) is False
        assert await other.fetchval("SELECT pg_try_advisory_lock($1::bigint)", lock_key) is True
        await other.execute("SELECT pg_advisory_unlock($1::bigint)", lock_key)
