"""Upload with `auto_load=true` → validator → loader → COMPLETED, the warehouse equal to the ledger to the cent."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from comptaflow.common import loads
from comptaflow.testkit.excel import ExportSpec, PeriodExport, write_period
from tests.e2e.platform import Platform, wait_for_status

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
        batch = await wait_for_status(client, response.json()["batch_id"], tries=600)
        batch_id = batch["batch_id"]
    assert batch["status"] == "COMPLETED", batch["errors"]

    expected = export.ledgers["grand_livre_comptes"]
    warehouse = platform.worker.warehouse
    assert warehouse is not None
    async with platform.worker.db.acquire() as conn:
        ids = await loads.current_load_ids(conn, tenant, None, None)
    assert ids == [uuid.UUID(batch_id)]
    rows = await warehouse.query(
        f"SELECT account, sum(debit), sum(credit), count() FROM {warehouse.database}.grand_livre"  # noqa: S608
        " WHERE tenant_id = {t:String} AND load_id IN {ids:Array(UUID)} GROUP BY account",
        {"t": tenant, "ids": ids},
    )
    assert {str(a): (Decimal(d), Decimal(c)) for a, d, c, _ in rows} == expected.per_account
    assert sum(int(n) for *_, n in rows) == expected.entry_lines
    # Loaded: the staged tables are removed (the removal follows the COMPLETED event).
    for _ in range(200):
        if not await platform.worker.storage.list_keys(f"{tenant}/staging/{batch_id}/"):
            break
        await asyncio.sleep(0.05)
    assert await platform.worker.storage.list_keys(f"{tenant}/staging/{batch_id}/") == []


async def _upload(client: httpx.AsyncClient, tenant: str, export: PeriodExport) -> str:
    files = [(field, (export.paths[field].name, export.paths[field].read_bytes())) for field in FIELDS]
    response = await client.post(f"/api/v1/tenants/{tenant}/batches", files=files, data={"auto_load": "true"})
    assert response.status_code == 202, response.text
    batch_id: str = response.json()["batch_id"]
    return batch_id


async def _trial_balance(client: httpx.AsyncClient, tenant: str) -> dict[str, tuple[Decimal, Decimal]]:
    response = await client.get(
        f"/api/v1/tenants/{tenant}/trial-balance", params={"period_start": "2024-01-01", "period_end": "2024-12-31"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    rows = {r["account"]: (Decimal(r["debit"]), Decimal(r["credit"])) for r in body["rows"]}
    assert all(Decimal(r["balance"]) == Decimal(r["debit"]) - Decimal(r["credit"]) for r in body["rows"])
    assert Decimal(body["total_debit"]) == sum(d for d, _ in rows.values())
    assert Decimal(body["total_credit"]) == sum(c for _, c in rows.values())
    return rows


async def test_reupload_replaces_keeps_a_backup_and_restore_brings_it_back(platform: Platform, tmp_path: Path) -> None:
    """The story of issue 3: load, replace the same period (same day), the backup, the restore — via HTTP."""
    tenant = await platform.new_tenant("Garage Lefèvre")
    first = write_period(tmp_path / "first", ExportSpec(seed=7, layout="grouped", page_size=40))
    second = write_period(tmp_path / "second", ExportSpec(seed=8))
    events: list[dict[str, Any]] = []
    async with (
        platform.client(platform.token(tenant)) as client,
        websockets.connect(f"{platform.ws_url}?token={platform.token(tenant)}") as ws,
    ):
        await ws.send(json.dumps({"subscribe": {"tenant_id": tenant}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "subscribed"

        first_id = await _upload(client, tenant, first)
        finished = await wait_for_status(client, first_id)
        assert finished["status"] == "COMPLETED", finished["errors"]
        while not events or events[-1]["status"] != "COMPLETED":
            events.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
        # The trial balance equals the uploaded ledger to the cent: no Total row counted, no line lost.
        assert await _trial_balance(client, tenant) == first.ledgers["grand_livre_comptes"].per_account

        second_id = await _upload(client, tenant, second)
        finished = await wait_for_status(client, second_id)
        assert finished["status"] == "COMPLETED", finished["errors"]
        assert await _trial_balance(client, tenant) == second.ledgers["grand_livre_comptes"].per_account
        periods = (await client.get(f"/api/v1/tenants/{tenant}/periods")).json()["items"]
        assert [(p["period_start"], p["period_end"], p["batch_id"]) for p in periods] == [
            ("2024-01-01", "2024-12-31", second_id)
        ]
        assert [b["batch_id"] for b in periods[0]["backups"]] == [first_id]

        # The backup folder holds the first upload's bytes, although the second had the same file names.
        storage = platform.gateway.storage
        backup_keys = await storage.list_keys(f"{tenant}/declaration/2024/periode-20240101-20241231/backup/")
        backed_up = {hashlib.sha256(await storage.get_bytes(k)).hexdigest() for k in backup_keys}
        assert {hashlib.sha256(first.paths[f].read_bytes()).hexdigest() for f in FIELDS} <= backed_up

        restore = await client.post(f"/api/v1/backups/{periods[0]['backups'][0]['backup_id']}/restore")
        assert restore.status_code == 202, restore.text
        assert restore.json() == {"batch_id": first_id, "status": "PROCESSING"}
        for _ in range(300):
            periods = (await client.get(f"/api/v1/tenants/{tenant}/periods")).json()["items"]
            if periods[0]["batch_id"] == first_id:
                break
            await asyncio.sleep(0.1)
        assert periods[0]["batch_id"] == first_id
        assert [b["batch_id"] for b in periods[0]["backups"]] == [second_id]
        assert await _trial_balance(client, tenant) == first.ledgers["grand_livre_comptes"].per_account

    # Live: the first batch's stages arrived in order, validation then load, ending COMPLETED.
    mine = [e for e in events if e["batch_id"] == first_id]
    statuses = [e["status"] for e in mine]
    assert statuses[-1] == "COMPLETED"
    assert statuses.index("VALIDATED") < statuses.index("PROCESSING")
    assert [e["seq"] for e in mine] == sorted(e["seq"] for e in mine)
    loading = [e for e in mine if e["status"] in ("PROCESSING", "COMPLETED")]
    assert [e["progress"] for e in loading] == sorted(e["progress"] for e in loading)
    stages = [e["stage"] for e in loading]
    for stage in ("download", "dimensions", "facts", "verify", "switch"):
        assert stage in stages, stages
    assert stages.index("dimensions") < stages.index("facts") < stages.index("switch")


async def test_both_workers_give_memory_back_after_each_batch(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import structlog

    from comptaflow.common import worker

    released: list[str] = []

    async def release(settings: Any) -> None:
        assert settings.retain_heap is False
        released.append(structlog.contextvars.get_contextvars()["message_type"])

    monkeypatch.setattr(worker, "release_after_batch", release)
    tenant = await platform.new_tenant()
    async with platform.client(platform.token(tenant)) as client:
        batch_id = await _upload(client, tenant, write_period(tmp_path, ExportSpec()))
        batch = await wait_for_status(client, batch_id, tries=600)
    assert batch["status"] == "COMPLETED", batch["errors"]
    for _ in range(100):  # each worker releases after it has announced its outcome
        if len(released) == 2:
            break
        await asyncio.sleep(0.05)
    assert sorted(released) == ["batch.load_requested", "batch.uploaded"]
