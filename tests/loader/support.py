"""Staged batches for the loader tests: Parquet tables in staging, a VALIDATED batch row, declared files."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import asyncpg
import polars as pl

from comptaflow.common import batches, tenants
from comptaflow.common.contracts import BatchKind, BatchStatus
from comptaflow.common.storage import Storage
from comptaflow.common.warehouse.schema import DIMENSIONS, FACTS

LEDGER_SCHEMA = {
    "row": pl.UInt32(),
    "date": pl.Date(),
    "journal": pl.String(),
    "piece": pl.String(),
    "account": pl.String(),
    "account_label": pl.String(),
    "label": pl.String(),
    "debit": pl.Decimal(18, 2),
    "credit": pl.Decimal(18, 2),
    "lettrage": pl.String(),
    "due_date": pl.Date(),
    "collectif": pl.String(),
}
# Columns only a FEC fills: null in these Excel-like ledgers.
FEC_ONLY_NULLS = {
    "entry_num": pl.lit(None, dtype=pl.String),
    "piece_date": pl.lit(None, dtype=pl.Date),
    "lettrage_date": pl.lit(None, dtype=pl.Date),
    "valid_date": pl.lit(None, dtype=pl.Date),
    "currency_amount": pl.lit(None, dtype=pl.Decimal(18, 2)),
    "currency": pl.lit(None, dtype=pl.String),
}
ACCOUNTS = ("401000", "411000", "512000", "606100", "706000")
FIELDS = ("grand_livre_comptes", "grand_livre_tiers", "plan_comptes", "plan_tiers", "code_journal")


@dataclass(frozen=True)
class StagedBatch:
    tenant_id: str
    batch_id: uuid.UUID
    start: date
    end: date
    tables: dict[str, pl.DataFrame]
    declared: dict[str, bytes]  # declared object key → content

    def sums(self) -> dict[str, tuple[Decimal, Decimal]]:
        gl = self.tables["grand_livre_comptes"]
        grouped = gl.group_by("account").agg(pl.col("debit").sum(), pl.col("credit").sum())
        return {r["account"]: (r["debit"], r["credit"]) for r in grouped.iter_rows(named=True)}


def ledger(n: int, start: date, seed: int) -> pl.DataFrame:
    days = max(1, (date(start.year, 12, 31) - start).days)
    rows = []
    for i in range(n):
        amount = Decimal((i * 7919 + seed * 104729) % 1_000_000) / 100
        debit = i % 2 == 0
        rows.append(
            (
                i + 2,
                start + timedelta(days=i % days),
                "VT" if i % 3 else "BQ",
                f"P{i // 2}",
                ACCOUNTS[(i + seed) % len(ACCOUNTS)],
                "Compte",
                f"ligne {i}",
                amount if debit else Decimal("0.00"),
                Decimal("0.00") if debit else amount,
                None,
                None,
                None,
            )
        )
    return pl.DataFrame(rows, schema=LEDGER_SCHEMA, orient="row")


def big_ledger(n: int, start: date) -> pl.DataFrame:
    """A large ledger built columnar (fast), for the kill test."""
    idx = pl.int_range(0, n, dtype=pl.Int64, eager=True)
    cents = (idx * 7919) % 1_000_000
    return pl.DataFrame(
        {
            "row": (idx + 2).cast(pl.UInt32),
            "date": pl.Series([start] * n, dtype=pl.Date),
            "journal": pl.Series(["VT"] * n),
            "piece": pl.Series(["P"] * n),
            "account": (idx % 5).cast(pl.String),
            "account_label": pl.Series([None] * n, dtype=pl.String),
            "label": pl.Series(["ligne"] * n),
            "debit": (cents * (idx % 2 == 0)).cast(pl.Decimal(18, 2)) / 100,
            "credit": (cents * (idx % 2 == 1)).cast(pl.Decimal(18, 2)) / 100,
            "lettrage": pl.Series([None] * n, dtype=pl.String),
            "due_date": pl.Series([None] * n, dtype=pl.Date),
            "collectif": pl.Series([None] * n, dtype=pl.String),
        }
    ).with_columns(pl.col("debit").cast(pl.Decimal(18, 2)), pl.col("credit").cast(pl.Decimal(18, 2)))


def dimension_tables(seed: int) -> dict[str, pl.DataFrame]:
    return {
        "plan_comptes": pl.DataFrame(
            {"account": list(ACCOUNTS), "label": [f"Compte {a} v{seed}" for a in ACCOUNTS], "account_type": ["G"] * 5}
        ),
        "plan_tiers": pl.DataFrame(
            {"code": ["C001", "F001"], "name": ["Client", "Fournisseur"], "collectif": ["411000", "401000"]}
            | {
                c: [None, None]
                for c in ("tiers_type", "siret", "address", "postal_code", "city", "country", "email", "phone")
            },
            schema_overrides=dict.fromkeys(
                ("tiers_type", "siret", "address", "postal_code", "city", "country", "email", "phone"), pl.String
            ),
        ),
        "code_journal": pl.DataFrame({"code": ["VT", "BQ"], "label": ["Ventes", "Banque"], "journal_type": ["V", "B"]}),
    }


async def ensure_tenant(pool: asyncpg.Pool, tenant_id: str) -> None:
    async with pool.acquire() as conn:
        if await tenants.get_tenant(conn, tenant_id) is None:
            await tenants.create_tenant(conn, tenant_id, "ACME SARL")


STAGED_COLUMNS = dict((*DIMENSIONS.values(), *FACTS.values()))


def staged_parquet(frame: pl.DataFrame, *, table: str, tenant_id: str | None, load_id: uuid.UUID | None) -> bytes:
    """A staged table as the period validator writes it: insert-ready, the tag columns first (tenant, load)
    then the warehouse columns; or, with tenant_id and load_id None, untagged as an earlier validator did."""
    if tenant_id is not None and load_id is not None:
        frame = frame.select(
            pl.lit(tenant_id).alias("tenant_id"), pl.lit(str(load_id)).alias("load_id"), *STAGED_COLUMNS[table]
        )
    out = io.BytesIO()
    frame.write_parquet(out)
    return out.getvalue()


async def stage_batch(
    pool: asyncpg.Pool,
    storage: Storage,
    tenant_id: str,
    *,
    start: date = date(2024, 1, 1),
    end: date = date(2024, 12, 31),
    lines: int = 500,
    seed: int = 1,
    big: bool = False,
    untagged: bool = False,
) -> StagedBatch:
    """A VALIDATED batch as the period validator leaves it: staging Parquet + declared files.

    `untagged`: the tables as a validator older than insert-ready staging wrote them (no tag columns)."""
    await ensure_tenant(pool, tenant_id)
    batch_id = uuid.uuid4()
    gl = big_ledger(lines, start) if big else ledger(lines, start, seed)
    tables = {
        "grand_livre_comptes": gl.with_columns(**FEC_ONLY_NULLS),
        "grand_livre_tiers": ledger(max(1, lines // 5), start, seed + 1).with_columns(
            collectif=pl.lit("411000"), **FEC_ONLY_NULLS
        ),
        **dimension_tables(seed),
    }
    for table, frame in tables.items():
        data = await asyncio.to_thread(
            staged_parquet,
            frame,
            table=table,
            tenant_id=None if untagged else tenant_id,
            load_id=None if untagged else batch_id,
        )
        await storage.put_bytes(f"{tenant_id}/staging/{batch_id}/{table}.parquet", data)
    prefix = f"{tenant_id}/declaration/{end.year}/periode-{start:%Y%m%d}-{end:%Y%m%d}/"
    declared: dict[str, bytes] = {}
    files = []
    for field in FIELDS:
        content = f"{field} of {batch_id}".encode()
        key = f"{prefix}{seed:04d}_{field}_{batch_id.hex[:6]}"
        await storage.put_bytes(key, content)
        declared[key] = content
        files.append(batches.BatchFile(field, f"{field}.xlsx", len(content), hashlib.sha256(content).hexdigest(), key))
    async with pool.acquire() as conn, conn.transaction():
        await batches.insert_batch(
            conn,
            batch_id=batch_id,
            tenant_id=tenant_id,
            kind=BatchKind.EXCEL,
            files=files,
            auto_load=False,
            created_by="t",
        )
        await conn.execute(
            "UPDATE batches SET status = $2, stage = 'validated', progress = 1, period_start = $3, period_end = $4"
            " WHERE id = $1",
            batch_id,
            BatchStatus.VALIDATED.value,
            start,
            end,
        )
    return StagedBatch(tenant_id, batch_id, start, end, tables, declared)


async def wait_final(pool: asyncpg.Pool, batch_id: uuid.UUID, *, within: float = 30) -> batches.Batch:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        async with pool.acquire() as conn:
            batch = await batches.get_batch(conn, batch_id)
        assert batch is not None
        if batch.status in (BatchStatus.COMPLETED, BatchStatus.FAILED):
            return batch
        if loop.time() > deadline:
            raise AssertionError(f"batch {batch_id} still {batch.status.value} ({batch.stage}) after {within}s")
        await asyncio.sleep(0.05)


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"
