"""PostgreSQL pool and migrations, each test on a database of its own."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from comptaflow.cli.embedded import free_port
from comptaflow.common import db
from comptaflow.common.errors import DependencyUnavailable

from .support import FreshDatabase

pytestmark = pytest.mark.infra

CORE_TABLES = ["backups", "batch_files", "batches", "loaded_periods", "outbox", "schema_migrations", "tenants"]


async def tables(pool: asyncpg.Pool) -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    return [r["tablename"] for r in rows]


async def test_migrate_applies_everything_once_then_nothing(fresh_database: FreshDatabase) -> None:
    pool = await db.create_pool(await fresh_database(), max_size=2)
    try:
        assert await db.migrate(pool) == db.migration_versions()
        assert await tables(pool) == CORE_TABLES
        assert await db.migrate(pool) == []
        async with pool.acquire() as conn:
            versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert versions == db.migration_versions()
    finally:
        await pool.close()


async def test_concurrent_migrations_apply_each_version_exactly_once(fresh_database: FreshDatabase) -> None:
    dsn = await fresh_database()
    # Separate pools, as separate processes starting at the same time would have.
    pools = [await db.create_pool(dsn, max_size=1) for _ in range(4)]
    try:
        results = await asyncio.gather(*(db.migrate(p) for p in pools))
        assert sorted(results) == [[], [], [], db.migration_versions()]
        assert await tables(pools[0]) == CORE_TABLES
    finally:
        for p in pools:
            await p.close()


async def test_the_migration_lock_is_released_afterwards(fresh_database: FreshDatabase) -> None:
    pool = await db.create_pool(await fresh_database(), max_size=2)
    try:
        await db.migrate(pool)
        async with pool.acquire() as conn:
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        assert held == 0
    finally:
        await pool.close()


async def test_ping_is_true_on_a_live_pool_and_false_once_closed(pg_dsn: str) -> None:
    pool = await db.create_pool(pg_dsn, max_size=1)
    assert await db.ping(pool) is True
    await pool.close()
    assert await db.ping(pool) is False


async def test_jsonb_values_come_back_as_python_objects(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        value = await conn.fetchval("SELECT $1::jsonb", {"rows": 3, "codes": ["A", "B"]})
    assert value == {"rows": 3, "codes": ["A", "B"]}


async def test_create_pool_on_a_closed_port_is_a_dependency_error() -> None:
    with pytest.raises(DependencyUnavailable, match="PostgreSQL unreachable"):
        await db.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")


def test_migrations_ship_in_order() -> None:
    assert db.migration_versions()[:2] == ["0001_core", "0002_backups"]
