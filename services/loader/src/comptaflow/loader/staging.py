"""The staged tables of a batch, downloaded from object storage, ready for `INSERT … FORMAT Parquet`.

The period validator writes `{tenant}/staging/{batch_id}/{table}.parquet` insert-ready: `tenant_id`,
`load_id` (the batch id), then the warehouse table's own columns. The loader forwards those bytes as
they are; it reads only the Parquet footer (columns, row count) and the two tag columns, and refuses
(PermanentError) a table that lacks a column or is tagged for another tenant or load.

A table staged by an earlier validator (no tag columns) is tagged here: decoded and encoded again.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from dataclasses import dataclass

from comptaflow.common.errors import PermanentError
from comptaflow.common.layout import STAGED_ROW_GROUP_ROWS, STAGED_TAGS, staging_key
from comptaflow.common.storage import Storage


@dataclass(frozen=True, slots=True)
class StagedTable:
    table: str  # warehouse table
    columns: tuple[str, ...]  # tenant_id, load_id, then the table's own columns
    rows: int
    data: bytes  # Parquet


def _prepare(raw: bytes, *, table: str, tenant_id: str, load_id: uuid.UUID, columns: tuple[str, ...]) -> StagedTable:
    import polars as pl

    try:
        schema = pl.read_parquet_schema(io.BytesIO(raw))
        missing = [c for c in columns if c not in schema]
        if missing:
            raise PermanentError(f"the staged table {table} lacks the columns {', '.join(missing)}")
        if not all(tag in schema for tag in STAGED_TAGS):
            return _tag(raw, table=table, tenant_id=tenant_id, load_id=load_id, columns=columns)
        tags = (
            pl.scan_parquet(io.BytesIO(raw))
            .select(
                rows=pl.len(),
                tenants=pl.col("tenant_id").unique().implode(),
                loads=pl.col("load_id").unique().implode(),
            )
            .collect()
            .row(0, named=True)
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise PermanentError(f"the staged table {table} is unreadable: {exc}") from exc
    rows = int(tags["rows"])
    if rows and (tags["tenants"] != [tenant_id] or tags["loads"] != [str(load_id)]):
        raise PermanentError(
            f"the staged table {table} is tagged for another load: tenant_id {tags['tenants'][:3]},"
            f" load_id {tags['loads'][:3]} (expected {tenant_id}, {load_id})"
        )
    return StagedTable(table, (*STAGED_TAGS, *columns), rows, raw)


def _tag(raw: bytes, *, table: str, tenant_id: str, load_id: uuid.UUID, columns: tuple[str, ...]) -> StagedTable:
    """Add the tag columns to a table staged without them (by a validator older than insert-ready staging)."""
    import polars as pl

    frame = pl.read_parquet(io.BytesIO(raw), columns=list(columns))
    frame = frame.select(
        pl.lit(tenant_id).alias("tenant_id"), pl.lit(str(load_id)).alias("load_id"), *[pl.col(c) for c in columns]
    )
    out = io.BytesIO()
    frame.write_parquet(out, compression="lz4", statistics=False, row_group_size=STAGED_ROW_GROUP_ROWS)
    return StagedTable(table, (*STAGED_TAGS, *columns), frame.height, out.getvalue())


async def fetch(
    storage: Storage, *, tenant_id: str, batch_id: uuid.UUID, table: str, staged_as: str, columns: tuple[str, ...]
) -> StagedTable:
    """Download one staged table (NotFound if it is gone) and check it is this load's, with every column."""
    raw = await storage.get_bytes(staging_key(tenant_id, batch_id, staged_as))
    return await asyncio.to_thread(_prepare, raw, table=table, tenant_id=tenant_id, load_id=batch_id, columns=columns)
