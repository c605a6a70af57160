"""Upload with `auto_load=true` → validator → loader → COMPLETED, the warehouse equal to the ledger to the cent."""

from __future__ import annotations

import asyncio
import io
import uuid
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from comptaflow.common import loads
from comptaflow.testkit.excel import ExportSpec, write_period
from tests.e2e.platform import Platform

pytestmark = pytest.mark.infra

FIELDS = ("grand_livre_comptes", "grand_livre_tiers", "plan_comptes", "plan_tiers", "code_journal")


async def test_auto_load_reaches_completed_with_the_ledger_sums(platform: Platform, tmp_path: Path) -> None:
    assert platform.loader is not None
    tenant = await platform.new_tenant()
    export = write_period(tmp_path, ExportSpec())
    files = [(field, (export.paths[field].name, export.paths[field].read_bytes())) for field in FIELDS]
    async with platform.client(platform.token(tenant)) as client:
        response = await client.post(f"/api/v1/tenants/{tenant}/batches", files=files, data={"auto_load": "true"})
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
        for _ in range(600):
            batch = (await client.get(f"/api/v1/batches/{batch_id}")).json()
            if batch["status"] in ("COMPLETED", "FAILED"):
                break
            await asyncio.sleep(0.1)
    assert batch["status"] == "COMPLETED", batch["errors"]

    staged = pl.read_parquet(
        io.BytesIO(await platform.worker.storage.get_bytes(f"{tenant}/staging/{batch_id}/grand_livre_comptes.parquet"))
    )
    assert staged.height == export.ledgers["grand_livre_comptes"].entry_lines
    expected = {
        r["account"]: (r["debit"], r["credit"])
        for r in staged.group_by("account").agg(pl.col("debit").sum(), pl.col("credit").sum()).iter_rows(named=True)
    }
    warehouse = platform.worker.warehouse
    assert warehouse is not None
    async with platform.worker.db.acquire() as conn:
        ids = await loads.current_load_ids(conn, tenant, None, None)
    assert ids == [uuid.UUID(batch_id)]
    rows = await warehouse.query(
        f"SELECT account, sum(debit), sum(credit) FROM {warehouse.database}.grand_livre"  # noqa: S608
        " WHERE tenant_id = {t:String} AND load_id IN {ids:Array(UUID)} GROUP BY account",
        {"t": tenant, "ids": ids},
    )
    assert {str(a): (Decimal(d), Decimal(c)) for a, d, c in rows} == expected
