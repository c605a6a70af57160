"""The staged tables of a batch: downloaded from object storage, tagged with tenant and load, as Parquet.

The period validator wrote `{tenant}/staging/{batch_id}/{table}.parquet`; the loader adds the two
columns every warehouse row carries (`tenant_id`, `load_id`) and keeps the row count to verify the insert.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from dataclasses import dataclass

from comptaflow.common.errors import PermanentError
from comptaflow.common.layout import staging_key
from comptaflow.common.storage import Storage


@dataclass(frozen=True, slots=True)
class StagedTable:
    table: str  # warehouse table
    columns: tuple[str, ...]  # tenant_id, load_id, then the table's own columns
    rows: int
    data: bytes  # Parquet


def _tag(raw: bytes, *, table: str, tenant_id: str, load_id: uuid.UUID, columns: tuple[str, ...]) -> StagedTable:
    import polars as pl

    try:
        frame = pl.read_parquet(io.BytesIO(raw), columns=list(columns))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise PermanentError(f"the staged table {table} is unreadable: {exc}") from exc
    frame = frame.select(
        pl.lit(tenant_id).alias("tenant_id"), pl.lit(str(load_id)).alias("load_id"), *[pl.col(c) for c in columns]
    )
    out = io.BytesIO()
    frame.write_parquet(out, compression="lz4", statistics=False)
    return StagedTable(table, ("tenant_id", "load_id", *columns), frame.height, out.getvalue())


async def fetch(
    storage: Storage, *, tenant_id: str, batch_id: uuid.UUID, table: str, staged_as: str, columns: tuple[str, ...]
) -> StagedTable:
    """Download one staged table (NotFound if it is gone) and tag it for the warehouse."""
    raw = await storage.get_bytes(staging_key(tenant_id, batch_id, staged_as))
    return await asyncio.to_thread(_tag, raw, table=table, tenant_id=tenant_id, load_id=batch_id, columns=columns)
