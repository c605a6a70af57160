"""The `tenants` table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from comptaflow.common.db import Conn


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    created_at: datetime


class TenantExistsError(Exception):
    pass


async def create_tenant(conn: Conn, tenant_id: str, name: str) -> Tenant:
    try:
        row = await conn.fetchrow(
            "INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING id, name, created_at", tenant_id, name
        )
    except asyncpg.UniqueViolationError as exc:
        raise TenantExistsError(tenant_id) from exc
    assert row is not None
    return Tenant(row["id"], row["name"], row["created_at"])


async def get_tenant(conn: Conn, tenant_id: str) -> Tenant | None:
    row = await conn.fetchrow("SELECT id, name, created_at FROM tenants WHERE id = $1", tenant_id)
    return None if row is None else Tenant(row["id"], row["name"], row["created_at"])


async def list_tenants(conn: Conn, only: Sequence[str] | None) -> list[Tenant]:
    """All tenants (`only=None`) or those whose ids are listed, ordered by id."""
    if only is None:
        rows = await conn.fetch("SELECT id, name, created_at FROM tenants ORDER BY id")
    else:
        rows = await conn.fetch(
            "SELECT id, name, created_at FROM tenants WHERE id = ANY($1::text[]) ORDER BY id", list(only)
        )
    return [Tenant(r["id"], r["name"], r["created_at"]) for r in rows]
