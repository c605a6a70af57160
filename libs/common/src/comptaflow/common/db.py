"""PostgreSQL access: the asyncpg pool and the plain-SQL migrations.

Migrations are the `NNNN_name.sql` files of `comptaflow.common.migrations`, applied in order, each in
its own transaction, under an advisory lock so that concurrent starts do not race.
asyncpg's connection errors become `DependencyUnavailable` here.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, TypeAlias

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from comptaflow.common.errors import DependencyUnavailable

log = structlog.get_logger("comptaflow.db")

_MIGRATION_LOCK = 0x0C0F1A01
Pool = asyncpg.Pool
# What repository functions take: a plain connection or one borrowed from the pool.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
    TimeoutError,
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, max_size: int = 10) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=max_size, init=_init_connection, command_timeout=60, timeout=15
        )
    except CONNECTION_ERRORS as exc:
        raise DependencyUnavailable(f"PostgreSQL unreachable: {type(exc).__name__}") from exc
    assert pool is not None
    return pool


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("comptaflow.common.migrations")
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name.removesuffix(".sql"), p.read_text(encoding="utf-8")) for p in files]


def migration_versions() -> list[str]:
    """Every migration shipped, in the order they apply."""
    return [version for version, _ in _migrations()]


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply pending migrations; return the names applied now."""
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, sql in _migrations():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                applied_now.append(version)
                log.info("migration_applied", version=version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


async def ping(pool: asyncpg.Pool) -> bool:
    try:
        async with pool.acquire(timeout=5) as conn:
            value: Any = await conn.fetchval("SELECT 1")
            return bool(value == 1)
    except (*CONNECTION_ERRORS, asyncpg.PostgresError):  # type: ignore[misc]  # mypy does not follow tuple unpacking in except
        return False
