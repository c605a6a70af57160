"""The writer's binary COPY: every plain column's type is the table's, a record staged twice is written once."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from comptaflow.pennylane_sync import schema, writer
from comptaflow.pennylane_sync.writer import DeleteAll, Unit


@pytest.mark.infra
async def test_the_binary_copy_types_are_those_of_every_tables_plain_columns(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        name = await schema.migrate_tenant(conn, "writer-types")
        for table in schema.KEYS:
            for column in (*schema.KEYS[table], *schema.EXTRA[table]):
                kind = await conn.fetchval(
                    "SELECT atttypid::regtype::text FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2",
                    f"{name}.{table}",
                    column,
                )
                expected = {"int8": "bigint", "int4": "integer", "text": "text", "date": "date"}[writer._TYPES[column]]
                assert kind == expected, f"{table}.{column}"


@pytest.mark.infra
async def test_a_record_staged_twice_is_written_once_the_last_version_and_unchanged_rows_are_untouched(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        name = await schema.migrate_tenant(conn, "writer-twice")
    journal = {"id": 7, "code": "VE", "label": "Ventes", "type": "sale"}
    first = datetime(2026, 1, 1, tzinfo=UTC)
    unit = Unit(name)
    unit.add("journals", [journal, {**journal, "label": "Ventes France"}, {**journal, "id": 8, "code": "HA"}])
    unit.touch("journals", DeleteAll())
    async with pool.acquire() as conn, conn.transaction():
        written = await unit.apply(conn, "journals", first)
    unit.close()
    assert (written.inserted, written.updated, written.deleted, written.rows) == (2, 0, 0, 2)
    async with pool.acquire() as conn:
        assert await conn.fetchval(f"SELECT label FROM {name}.journals WHERE id = 7") == "Ventes France"  # noqa: S608
    # Again, one changed and one unchanged: only the changed row is written (its synced_at moves).
    unit = Unit(name)
    unit.add("journals", [{**journal, "label": "Ventes"}, {**journal, "id": 8, "code": "HA"}])
    unit.touch("journals", DeleteAll())
    later = datetime(2026, 1, 2, tzinfo=UTC)
    async with pool.acquire() as conn, conn.transaction():
        written = await unit.apply(conn, "journals", later)
    unit.close()
    assert (written.inserted, written.updated, written.deleted) == (0, 1, 0)
    async with pool.acquire() as conn:
        rows = {r["id"]: r["synced_at"] for r in await conn.fetch(f"SELECT id, synced_at FROM {name}.journals")}  # noqa: S608
    assert rows == {7: later, 8: first}
