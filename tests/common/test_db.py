"""PostgreSQL pool and migrations, each test on a database of its own."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from comptaflow.cli.embedded import free_port
from comptaflow.common import db
from comptaflow.common.bus.base import Delivery, Outcome, WorkerQueue, dispatch
from comptaflow.common.contracts import BatchKind, BatchUploaded, Message
from comptaflow.common.errors import DependencyUnavailable, NotFound, PermanentError, TransientError
from comptaflow.common.tenants import create_tenant

from .support import FreshDatabase, tenant_id

pytestmark = pytest.mark.infra

CORE_TABLES = [
    "backups",
    "batch_files",
    "batches",
    "bi_logins",
    "jobs",
    "loaded_periods",
    "outbox",
    "pennylane_budgets",
    "pennylane_connections",
    "pennylane_tables",
    "schema_migrations",
    "tenant_secrets",
    "tenants",
]


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


# -- asyncpg's exceptions, translated at `pool.acquire()` ------------------------------------------------


async def test_a_unique_violation_is_a_permanent_refusal_naming_the_constraint(pool: asyncpg.Pool) -> None:
    tenant = tenant_id()
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, 'A')", tenant)
    with pytest.raises(db.DatabaseRefused) as raised:
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, 'B')", tenant)
    assert isinstance(raised.value, PermanentError)
    assert str(raised.value) == (
        "PostgreSQL refused a statement (UniqueViolationError, SQLSTATE 23505, constraint tenants_pkey)"
    )
    assert isinstance(raised.value.__cause__, asyncpg.UniqueViolationError)
    assert tenant not in str(raised.value)  # the values of a statement stay out of its text


async def test_invalid_arguments_and_sql_errors_are_permanent_refusals(pool: asyncpg.Pool) -> None:
    with pytest.raises(db.DatabaseRefused, match=r"^PostgreSQL refused a statement \(DataError, SQLSTATE 22000\)$"):
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT $1::int", "not a number")
    with pytest.raises(db.DatabaseRefused, match=r"UndefinedTableError, SQLSTATE 42P01"):
        async with pool.acquire() as conn:
            await conn.fetch("SELECT * FROM no_such_table")


async def test_a_serialization_failure_is_a_transient_conflict(pool: asyncpg.Pool) -> None:
    tenant = tenant_id()
    async with pool.acquire() as conn:
        await create_tenant(conn, tenant, "Before")

    async def update_after_a_concurrent_commit() -> None:
        async with pool.acquire() as first, first.transaction(isolation="repeatable_read"):
            assert await first.fetchval("SELECT name FROM tenants WHERE id = $1", tenant) == "Before"
            # Another transaction changes the row and commits after `first` took its snapshot.
            async with pool.acquire() as second:
                await second.execute("UPDATE tenants SET name = 'Second' WHERE id = $1", tenant)
            await first.execute("UPDATE tenants SET name = 'First' WHERE id = $1", tenant)

    with pytest.raises(db.DatabaseConflict) as raised:
        await update_after_a_concurrent_commit()
    assert isinstance(raised.value, TransientError)
    assert not isinstance(raised.value, DependencyUnavailable)
    assert str(raised.value) == (
        "the transaction conflicted with another and was rolled back (SerializationError, SQLSTATE 40001)"
    )
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT name FROM tenants WHERE id = $1", tenant) == "Second"


async def test_a_lock_timeout_is_a_transient_conflict(pool: asyncpg.Pool) -> None:
    tenant = tenant_id()
    async with pool.acquire() as conn:
        await create_tenant(conn, tenant, "Locked")

    async def update_with_a_lock_timeout() -> None:
        async with pool.acquire() as waiter, waiter.transaction():
            await waiter.execute("SET LOCAL lock_timeout = '100ms'")
            await waiter.execute("UPDATE tenants SET name = 'Waiter' WHERE id = $1", tenant)

    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", tenant)
        with pytest.raises(db.DatabaseConflict, match=r"LockNotAvailableError, SQLSTATE 55P03"):
            await update_with_a_lock_timeout()


async def test_a_terminated_backend_is_unavailable_and_the_pool_recovers(pool: asyncpg.Pool) -> None:
    async def query_after_being_terminated() -> None:
        async with pool.acquire() as victim:
            pid = await victim.fetchval("SELECT pg_backend_pid()")
            async with pool.acquire() as admin:
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid) is True
            await victim.fetchval("SELECT 1")

    with pytest.raises(db.DatabaseUnavailable) as raised:
        await query_after_being_terminated()
    assert isinstance(raised.value, DependencyUnavailable)
    assert isinstance(raised.value, TransientError)
    assert str(raised.value).startswith("PostgreSQL unavailable (")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT 1") == 1


async def test_a_commit_that_fails_is_translated(pool: asyncpg.Pool) -> None:
    # A deferred constraint is checked at COMMIT, when `conn.transaction()` exits inside the block.
    async def commit_a_duplicate() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE deferred_check (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP"
            )
            await conn.execute("INSERT INTO deferred_check VALUES (1), (1)")

    with pytest.raises(db.DatabaseRefused, match=r"UniqueViolationError, SQLSTATE 23505"):
        await commit_a_duplicate()


async def test_a_closed_pool_is_unavailable_whether_acquired_with_async_with_or_await(pg_dsn: str) -> None:
    pool = await db.create_pool(pg_dsn, max_size=1)
    await pool.close()
    with pytest.raises(db.DatabaseUnavailable, match=r"^PostgreSQL unavailable \(InterfaceError\)$"):
        async with pool.acquire():
            pass
    with pytest.raises(db.DatabaseUnavailable):
        await pool.acquire()


async def test_what_asyncpg_did_not_raise_passes_unchanged(pool: asyncpg.Pool) -> None:
    with pytest.raises(NotFound):
        async with pool.acquire():
            raise NotFound("batch gone")
    # An OSError inside a block may come from anything it does (a file): it is not the database's.
    with pytest.raises(FileNotFoundError):
        async with pool.acquire():
            raise FileNotFoundError("staged.parquet")
    # A repository function can still catch an asyncpg exception inside the block.
    async with pool.acquire() as conn:
        with contextlib.suppress(asyncpg.DivisionByZeroError):
            await conn.fetchval("SELECT 1/0")
        assert await conn.fetchval("SELECT 1") == 1


async def test_translated_covers_a_direct_connection(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        with pytest.raises(db.DatabaseRefused, match="DivisionByZeroError, SQLSTATE 22012"), db.translated():
            await conn.fetchval("SELECT 1/0")
    finally:
        await conn.close()
    with pytest.raises(db.DatabaseUnavailable, match=r"ConnectionRefusedError"), db.translated():
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", timeout=5)


QUEUE = WorkerQueue("test-db-errors", (BatchUploaded,))


async def outcome_of(work: Callable[[], Awaitable[None]]) -> Outcome:
    """What the dispatch decides for a first delivery whose handler runs `work`."""

    async def handler(_message: Message, _delivery: Delivery) -> None:
        await work()

    event = BatchUploaded(tenant_id=tenant_id(), batch_id=uuid.uuid4(), kind=BatchKind.FEC)
    return await dispatch(
        service="test",
        queue=QUEUE,
        handler=handler,
        body=event.model_dump_json().encode(),
        delivery=Delivery(routing_key="batch.uploaded", delivery_count=0, redelivered=False),
        delivery_limit=3,
    )


async def test_a_handler_is_dead_lettered_on_a_refusal_and_requeued_on_a_lost_session(pool: asyncpg.Pool) -> None:
    async def duplicate() -> None:
        tenant = tenant_id()
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, 'A'), ($1, 'B')", tenant)

    async def terminated() -> None:
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    assert await outcome_of(duplicate) is Outcome.DEAD_LETTER
    assert await outcome_of(terminated) is Outcome.REQUEUE
