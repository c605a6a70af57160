"""A tenant's Pennylane connection (base URL, token, scopes) and the state of each of its tables.

The token is a tenant secret (`comptaflow.common.secrets`, name `TOKEN_SECRET`): encrypted at rest, read
only to be sent to Pennylane. Everything else here is plain rows of migration 0006. Callers own the
transactions: `put_connection` belongs in the one that answers the `PUT`, `record_table` in the one
that applies the table's data (so the checkpoint and the data are committed together).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import SecretStr

from comptaflow.common import secrets
from comptaflow.common.contracts import SyncMode
from comptaflow.common.db import Conn
from comptaflow.common.secrets import Keyring

TOKEN_SECRET = "pennylane.token"  # noqa: S105 — the name of the secret, not its value
DEFAULT_BASE_URL = "https://app.pennylane.com/api/external/v2"


def schema_name(tenant_id: str) -> str:
    """The tenant's PostgreSQL schema (docs/api.md): `pennylane_` + the id with `-` as `_`.

    Tenant ids are `[a-z0-9][a-z0-9-]{1,62}`, so the name is a plain identifier that never needs quoting.
    PostgreSQL cuts identifiers at 63 bytes: for an id longer than 53 characters, the name keeps its first
    54 characters and ends with `_` and 8 hex digits of the id's SHA-256, so that two long ids sharing a
    prefix never share a schema.
    """
    name = "pennylane_" + tenant_id.replace("-", "_")
    if len(name) <= SCHEMA_NAME_MAX:
        return name
    return name[:54] + "_" + hashlib.sha256(tenant_id.encode()).hexdigest()[:8]


SCHEMA_NAME_MAX = 63


def budget_key(token: SecretStr) -> str:
    """The key of a token's request budget: tenants sharing a token share the budget (the token is a
    random secret, so its hash reveals nothing)."""
    return hashlib.sha256(b"comptaflow.pennylane.budget\0" + token.get_secret_value().encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Connection:
    tenant_id: str
    base_url: str
    enabled: bool
    scopes: tuple[str, ...]
    company_id: int | None
    company_name: str | None
    budget_key: str
    updated_at: datetime


_COLUMNS = "tenant_id, base_url, enabled, scopes, company_id, company_name, budget_key, updated_at"


def _connection(row: asyncpg.Record) -> Connection:
    return Connection(
        tenant_id=row["tenant_id"],
        base_url=row["base_url"],
        enabled=row["enabled"],
        scopes=tuple(row["scopes"]),
        company_id=row["company_id"],
        company_name=row["company_name"],
        budget_key=row["budget_key"],
        updated_at=row["updated_at"],
    )


async def put_connection(
    conn: Conn,
    keyring: Keyring,
    tenant_id: str,
    *,
    token: SecretStr,
    base_url: str,
    enabled: bool,
    scopes: Sequence[str],
    company_id: int | None,
    company_name: str | None,
) -> Connection:
    """Store (or replace) the connection and its token (call it in a transaction: both or neither)."""
    await secrets.put_secret(conn, keyring, tenant_id, TOKEN_SECRET, token)
    row = await conn.fetchrow(
        f"""
        INSERT INTO pennylane_connections (tenant_id, base_url, enabled, scopes, company_id, company_name, budget_key)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (tenant_id) DO UPDATE SET base_url = EXCLUDED.base_url, enabled = EXCLUDED.enabled,
            scopes = EXCLUDED.scopes, company_id = EXCLUDED.company_id, company_name = EXCLUDED.company_name,
            budget_key = EXCLUDED.budget_key, updated_at = now()
        RETURNING {_COLUMNS}
        """,  # noqa: S608 — constant columns; values bound
        tenant_id,
        base_url,
        enabled,
        list(scopes),
        company_id,
        company_name,
        budget_key(token),
    )
    assert row is not None
    return _connection(row)


async def get_connection(conn: Conn, tenant_id: str) -> Connection | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM pennylane_connections WHERE tenant_id = $1",  # noqa: S608 — constant columns
        tenant_id,
    )
    return None if row is None else _connection(row)


async def enabled_connections(conn: Conn) -> list[Connection]:
    """Every enabled connection (the scheduler's tenants), by tenant id."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM pennylane_connections WHERE enabled ORDER BY tenant_id"  # noqa: S608
    )
    return [_connection(r) for r in rows]


async def token_of(conn: Conn, keyring: Keyring, tenant_id: str) -> SecretStr | None:
    """The tenant's token, decrypted, to be sent to Pennylane and nowhere else."""
    return await secrets.use_secret(conn, keyring, tenant_id, TOKEN_SECRET)


async def update_scopes(conn: Conn, tenant_id: str, scopes: Sequence[str]) -> None:
    """The scopes `/me` answered at the start of a sync (a token's scopes may change after it was stored)."""
    await conn.execute(
        "UPDATE pennylane_connections SET scopes = $2, updated_at = now() WHERE tenant_id = $1 AND scopes <> $2",
        tenant_id,
        list(scopes),
    )


@dataclass(frozen=True, slots=True)
class TableState:
    table: str
    mode: SyncMode
    status: str
    last_synced_at: datetime | None
    cursor_at: datetime | None
    rows: int
    error: str | None
    stats: dict[str, Any]
    updated_at: datetime


async def table_states(conn: Conn, tenant_id: str) -> dict[str, TableState]:
    rows = await conn.fetch(
        "SELECT table_name, mode, status, last_synced_at, cursor_at, rows, error, stats, updated_at"
        " FROM pennylane_tables WHERE tenant_id = $1",
        tenant_id,
    )
    return {
        r["table_name"]: TableState(
            table=r["table_name"],
            mode=SyncMode(r["mode"]),
            status=r["status"],
            last_synced_at=r["last_synced_at"],
            cursor_at=r["cursor_at"],
            rows=r["rows"],
            error=r["error"],
            stats=r["stats"],
            updated_at=r["updated_at"],
        )
        for r in rows
    }


async def mark_running(conn: Conn, tenant_id: str, table: str, mode: SyncMode) -> None:
    """The table is being synced (its checkpoint, rows and last success are kept)."""
    await conn.execute(
        """
        INSERT INTO pennylane_tables (tenant_id, table_name, mode, status) VALUES ($1, $2, $3, 'RUNNING')
        ON CONFLICT (tenant_id, table_name) DO UPDATE SET mode = EXCLUDED.mode, status = 'RUNNING', updated_at = now()
        """,
        tenant_id,
        table,
        mode.value,
    )


async def record_success(
    conn: Conn,
    tenant_id: str,
    table: str,
    mode: SyncMode,
    *,
    synced_at: datetime,
    cursor_at: datetime | None,
    rows: int,
    stats: dict[str, Any],
) -> None:
    """A sync of the table was applied: call it in the transaction that applied it."""
    await conn.execute(
        """
        INSERT INTO pennylane_tables (tenant_id, table_name, mode, status, last_synced_at, cursor_at, rows, stats)
        VALUES ($1, $2, $3, 'SUCCEEDED', $4, $5, $6, $7)
        ON CONFLICT (tenant_id, table_name) DO UPDATE SET mode = EXCLUDED.mode, status = 'SUCCEEDED',
            last_synced_at = EXCLUDED.last_synced_at, cursor_at = EXCLUDED.cursor_at, rows = EXCLUDED.rows,
            error = NULL, stats = EXCLUDED.stats, updated_at = now()
        """,
        tenant_id,
        table,
        mode.value,
        synced_at,
        cursor_at,
        rows,
        stats,
    )


async def record_failure(conn: Conn, tenant_id: str, table: str, mode: SyncMode, error: str) -> None:
    """The table's sync failed: its data, checkpoint and last success are what they were."""
    await conn.execute(
        """
        INSERT INTO pennylane_tables (tenant_id, table_name, mode, status, error) VALUES ($1, $2, $3, 'FAILED', $4)
        ON CONFLICT (tenant_id, table_name) DO UPDATE SET mode = EXCLUDED.mode, status = 'FAILED',
            error = EXCLUDED.error, updated_at = now()
        """,
        tenant_id,
        table,
        mode.value,
        error,
    )
