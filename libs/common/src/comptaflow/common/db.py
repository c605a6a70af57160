"""PostgreSQL access: the asyncpg pool, the translation of asyncpg's exceptions, and the plain-SQL migrations.

Migrations are the `NNNN_name.sql` files of `comptaflow.common.migrations`, applied in order, each in
its own transaction, under an advisory lock (`locks.Namespace.MIGRATIONS`) so that concurrent starts do
not race.

asyncpg's exceptions stop here. Each becomes one of:

    TransientError
    ├── DependencyUnavailable
    │   └── DatabaseUnavailable — no connection, or the session is gone: a refused or dropped connection
    │                             (SQLSTATE class 08, OSError, asyncpg's "connection is closed"), too many
    │                             connections and other exhausted resources (53), a server shutting down or
    │                             a cancelled statement (57), a system error (58), a read-only standby
    │                             (25006), an idle-session timeout (25P03), a timeout, a closed pool
    └── DatabaseConflict      — the transaction lost a race with another and was rolled back: a
                                serialization failure or a deadlock (40), a lock not available (55P03,
                                `lock_timeout`, NOWAIT); running it again can succeed
    PermanentError
    └── DatabaseRefused       — the statement was refused for what it says or holds: a violated constraint
                                (23: unique, foreign key, check, not null), invalid data (22, and asyncpg's
                                own checks of query arguments), and every other SQL error (42: a syntax
                                error, an undefined table, …); the same statement would be refused again

so that a worker's message is requeued on the first two (within the delivery limit) and dead-lettered at
once on the third, its batch marked FAILED with the reason (`bus.base.or_give_up`). The text of a
translated error names the asyncpg class, the SQLSTATE and the violated constraint, never the statement
nor its values (a permanent error's text reaches the batch's errors, which clients read); the asyncpg
exception is its `__cause__`.

Where: the pool `create_pool()` returns translates at `pool.acquire()`, so no handler, repository function
or route has to remember to. It translates the acquisition (`async with` or `await`), the release, and what
asyncpg raises inside `async with pool.acquire() as conn:` — a commit of `conn.transaction()` that fails
included — once the block exits: a repository function can still catch one asyncpg exception inside the
block (`tenants.create_tenant` turns a unique violation into `TenantExistsError`). Inside a block only
asyncpg's own exceptions are translated: an OSError or a TimeoutError there may come from anything the
block does (a file, a socket) and passes unchanged (the dispatch retries it as it does any unexpected
exception). `translated()` applies the same mapping, OSError and TimeoutError included, around a
connection held outside such a block (a listener, a direct `asyncpg.connect`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator, Iterator
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import structlog
from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy

from comptaflow.common import locks
from comptaflow.common.errors import DependencyUnavailable, PermanentError, TransientError

log = structlog.get_logger("comptaflow.db")

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
"""What a refused or lost connection raises untranslated (at `asyncpg.connect`, or OSError and TimeoutError
inside a pool block); `translate` makes each a `DatabaseUnavailable`."""


class DatabaseUnavailable(DependencyUnavailable):
    """PostgreSQL cannot be reached or the session was lost (see the module docstring): retry later."""


class DatabaseConflict(TransientError):
    """The transaction lost a race with another (serialization failure, deadlock, lock not available)."""


class DatabaseRefused(PermanentError):
    """PostgreSQL refused the statement (a constraint, invalid data, an SQL error): it would refuse it again."""


DATABASE_ERRORS: tuple[type[Exception], ...] = (DatabaseUnavailable, DatabaseConflict, DatabaseRefused)
"""What `translate` makes of asyncpg's exceptions."""

_DRIVER_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
"""asyncpg's own exceptions: the server's (`PostgresError`, with a SQLSTATE) and the client's."""
_TRANSLATED: tuple[type[Exception], ...] = (*_DRIVER_ERRORS, OSError, TimeoutError)

_CONFLICTS: tuple[type[Exception], ...] = (asyncpg.TransactionRollbackError, asyncpg.LockNotAvailableError)
_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # 08: connection failure, does not exist, rejected
    asyncpg.InsufficientResourcesError,  # 53: too many connections, out of memory, disk full
    asyncpg.OperatorInterventionError,  # 57: admin or crash shutdown, cannot connect now, query cancelled
    asyncpg.PostgresSystemError,  # 58: I/O error of the server
    asyncpg.ReadOnlySQLTransactionError,  # 25006: the server is (now) a standby
    asyncpg.IdleInTransactionSessionTimeoutError,  # 25P03: the server closed the session
    asyncpg.InterfaceError,  # connection closed, pool closing (argument errors excepted: see translate)
    asyncpg.InternalClientError,  # protocol error, outdated type cache
)


def translate(exc: Exception) -> Exception:
    """The Comptaflow error for an exception of asyncpg (or OSError, TimeoutError); any other one unchanged."""
    detail = type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        detail += f", SQLSTATE {sqlstate}"
    constraint = getattr(exc, "constraint_name", None)
    if constraint:
        detail += f", constraint {constraint}"
    # asyncpg's checks of query arguments (DataError) and of its configuration are InterfaceErrors too.
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError):
        return DatabaseRefused(f"the database client refused the arguments of a statement ({detail})")
    if isinstance(exc, _CONFLICTS):
        return DatabaseConflict(f"the transaction conflicted with another and was rolled back ({detail})")
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable(f"PostgreSQL unavailable ({detail})")
    if isinstance(exc, asyncpg.PostgresError):
        return DatabaseRefused(f"PostgreSQL refused a statement ({detail})")
    return exc


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Translate what asyncpg (or the network: OSError, TimeoutError) raises in the block."""
    try:
        yield
    except _TRANSLATED as exc:
        raise translate(exc) from exc


if TYPE_CHECKING:
    _PoolBase = asyncpg.Pool[asyncpg.Record]
    _AcquireBase = PoolAcquireContext[asyncpg.Record]
else:
    _PoolBase = asyncpg.Pool
    _AcquireBase = PoolAcquireContext


class _TranslatedAcquire(_AcquireBase):
    """`pool.acquire()` translating the acquisition, the release and asyncpg's exceptions in the block."""

    __slots__ = ()

    async def __aenter__(self) -> PoolConnectionProxy[asyncpg.Record]:
        with translated():
            return await super().__aenter__()

    async def __aexit__(self, *exc_info: object) -> None:
        with translated():
            await super().__aexit__(*exc_info)
        raised = exc_info[1] if len(exc_info) > 1 else None
        if isinstance(raised, _DRIVER_ERRORS):
            raise translate(raised) from raised

    def __await__(self) -> Generator[Any, None, PoolConnectionProxy[asyncpg.Record]]:
        with translated():
            return (yield from super().__await__())


class _TranslatingPool(_PoolBase):
    """An asyncpg pool whose `acquire()` translates asyncpg's exceptions (see the module docstring)."""

    __slots__ = ()

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext[asyncpg.Record]:
        return _TranslatedAcquire(self, timeout)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, max_size: int = 10) -> asyncpg.Pool:
    """A pool of at most `max_size` connections whose `acquire()` translates asyncpg's exceptions."""
    # Built as `asyncpg.create_pool` builds its own pool (same defaults), of the translating class.
    pool = _TranslatingPool(
        dsn,
        min_size=1,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        init=_init_connection,
        command_timeout=60,
        timeout=15,
    )
    try:
        await pool
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"PostgreSQL unreachable: {type(exc).__name__}") from exc
    except _DRIVER_ERRORS as exc:
        raise translate(exc) from exc
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
    async with pool.acquire() as conn, locks.advisory_lock(conn, locks.Namespace.MIGRATIONS, "schema"):
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
    return applied_now


async def ping(pool: asyncpg.Pool) -> bool:
    try:
        async with pool.acquire(timeout=5) as conn:
            value: Any = await conn.fetchval("SELECT 1")
            return bool(value == 1)
    except (*DATABASE_ERRORS, *CONNECTION_ERRORS):
        return False
