"""The analytical warehouse (ClickHouse) through clickhouse-connect: in-process chdb or an HTTP server.

    chdb:///abs/path                          embedded engine (`comptaflow up`, tests), same SQL
    http(s)://user:pass@host:port/database    a ClickHouse server (production)

The client is synchronous; every call runs in a worker thread. chdb can hold one path per process, so
clients are kept in a per-process registry (one per path, reference-counted) and their calls serialised.

Exceptions are translated here: a server that cannot be reached → `DependencyUnavailable`; anything
the server refuses → `WarehouseError` (permanent) with its message. SQL binds values server-side only
(`{name:Type}`); identifiers (database, tables, columns) come from code.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import structlog

from comptaflow.common.errors import ConfigurationError, DependencyUnavailable, PermanentError
from comptaflow.common.warehouse.schema import check_identifier

log = structlog.get_logger("comptaflow.warehouse")
T = TypeVar("T")


class WarehouseError(PermanentError):
    """The warehouse refused a statement (bad SQL, type mismatch, unknown table…)."""


@dataclass
class _Shared:
    client: Any
    lock: threading.Lock
    refs: int


_REGISTRY: dict[str, _Shared] = {}
_REGISTRY_LOCK = threading.Lock()


def _database_of(url: str) -> str | None:
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        name = unquote(parsed.path.strip("/"))
        return name or None
    return None


def _connect(url: str) -> Any:
    import clickhouse_connect

    parsed = urlparse(url)
    if parsed.scheme == "chdb":
        return clickhouse_connect.get_client(dsn=url)
    if parsed.scheme not in ("http", "https"):
        raise ConfigurationError("COMPTAFLOW_CLICKHOUSE_URL must start with chdb://, http:// or https://")
    return clickhouse_connect.get_client(
        host=parsed.hostname or "localhost",
        port=parsed.port or (8443 if parsed.scheme == "https" else 8123),
        username=unquote(parsed.username or "default"),
        password=unquote(parsed.password or ""),
        secure=parsed.scheme == "https",
        connect_timeout=10,
        send_receive_timeout=300,
    )


def _translate(exc: Exception, what: str) -> Exception:
    from clickhouse_connect.driver import exceptions as ch

    if isinstance(exc, ch.OperationalError | OSError):
        return DependencyUnavailable(f"warehouse unreachable during {what}: {type(exc).__name__}")
    if isinstance(exc, ch.ClickHouseError):
        return WarehouseError(f"warehouse refused {what}: {exc}")
    return exc


class Warehouse:
    """One warehouse database. `open()` before use, `close()` after; `migrate()` creates its tables."""

    def __init__(self, url: str, *, database: str = "comptaflow") -> None:
        self._url = url
        self.database = check_identifier(_database_of(url) or database)
        self._shared: _Shared | None = None
        self._chdb = urlparse(url).scheme == "chdb"

    @property
    def embedded(self) -> bool:
        return self._chdb

    async def open(self) -> None:
        if self._shared is not None:
            return
        try:
            self._shared = await asyncio.to_thread(self._acquire)
        except ConfigurationError:
            raise
        except Exception as exc:
            raise _translate(exc, "connect") from exc

    def _acquire(self) -> _Shared:
        key = self._url if self._chdb else f"{self._url}#{id(self)}"
        with _REGISTRY_LOCK:
            shared = _REGISTRY.get(key)
            if shared is None:
                shared = _Shared(client=_connect(self._url), lock=threading.Lock(), refs=0)
                _REGISTRY[key] = shared
            shared.refs += 1
            return shared

    async def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is None:
            return
        await asyncio.to_thread(self._release, shared)

    def _release(self, shared: _Shared) -> None:
        with _REGISTRY_LOCK:
            shared.refs -= 1
            if shared.refs > 0:
                return
            for key, value in list(_REGISTRY.items()):
                if value is shared:
                    del _REGISTRY[key]
        with shared.lock:
            shared.client.close()

    async def _run(self, what: str, call: Callable[[Any], T]) -> T:
        shared = self._shared
        if shared is None:
            raise DependencyUnavailable("the warehouse is not open (call open() first)")

        def locked() -> T:
            if self._chdb:
                with shared.lock:
                    return call(shared.client)
            return call(shared.client)

        try:
            return await asyncio.to_thread(locked)
        except (ConfigurationError, DependencyUnavailable, WarehouseError):
            raise
        except Exception as exc:
            raise _translate(exc, what) from exc

    async def ping(self) -> bool:
        try:
            rows = await self.query("SELECT 1")
        except (DependencyUnavailable, WarehouseError):
            return False
        return rows == [(1,)]

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        def call(client: Any) -> list[tuple[Any, ...]]:
            result = client.query(sql, parameters=parameters or {})
            return [tuple(row) for row in result.result_rows]

        return await self._run("a query", call)

    async def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        await self._run("a command", lambda client: client.command(sql, parameters=parameters or {}))

    async def insert_parquet(self, table: str, data: bytes, columns: Sequence[str]) -> None:
        """Insert a Parquet file's rows into `table` of this database (columns matched by name)."""
        target = f"{self.database}.{table}"
        await self._run(
            f"an insert into {table}",
            lambda client: client.raw_insert(target, list(columns), data, fmt="Parquet"),
        )

    async def migrate(self) -> list[str]:
        from comptaflow.common.warehouse.schema import migrate

        return await migrate(self)
