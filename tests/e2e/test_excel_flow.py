"""The accounting upload flow end to end: HTTP upload → RabbitMQ → validator → PostgreSQL, S3, WebSocket.

Everything is real: the machine's PostgreSQL and RabbitMQ, a SeaweedFS server, the gateway served by
uvicorn on a port, the validator consuming its quorum queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import aio_pika
import polars as pl
import pytest
import websockets

from comptaflow.common import batches
from comptaflow.common.contracts import BatchKind, BatchUploaded
from comptaflow.common.metrics import REGISTRY
from comptaflow.common.tokens import Role
from comptaflow.testkit.excel import ExportSpec, PeriodExport, write_period
from tests.common.support import eventually
from tests.e2e.platform import Platform

pytestmark = pytest.mark.infra

FIELDS = ("grand_livre_comptes", "grand_livre_tiers", "plan_comptes", "plan_tiers", "code_journal")


def _multipart(export: PeriodExport, *, auto_load: bool | None = None) -> tuple[list[Any], dict[str, str]]:
    files = [(field, (export.paths[field].name, export.paths[field].read_bytes())) for field in FIELDS]
    data = {"auto_load": "true" if auto_load else "false"} if auto_load is not None else {}
    return files, data


async def _upload(platform: Platform, tenant: str, export: PeriodExport) -> str:
    files, data = _multipart(export)
    async with platform.client(platform.token(tenant)) as client:
        response = await client.post(f"/api/v1/tenants/{tenant}/batches", files=files, data=data)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "PENDING"
    assert body["kind"] == "excel"
    assert body["tenant_id"] == tenant
    batch_id: str = body["batch_id"]
    return batch_id


async def _wait_final(platform: Platform, tenant: str, batch_id: str, *, within: float = 60) -> dict[str, Any]:
    async with platform.client(platform.token(tenant)) as client:
        for _ in range(int(within * 10)):
            response = await client.get(f"/api/v1/batches/{batch_id}")
            assert response.status_code == 200
            batch: dict[str, Any] = response.json()
            if batch["status"] in ("VALIDATED", "FAILED", "COMPLETED"):
                return batch
            await asyncio.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not finish: {batch}")


async def test_valid_period_is_validated_and_streamed_live(platform: Platform, tmp_path: Path) -> None:
    tenant = await platform.new_tenant("Boulangerie Dupré & Fils")
    export = write_period(tmp_path, ExportSpec(layout="grouped", page_size=30))
    events: list[dict[str, Any]] = []

    async with websockets.connect(f"{platform.ws_url}?token={platform.token(tenant)}") as ws:
        await ws.send(json.dumps({"subscribe": {"tenant_id": tenant}}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack["type"] == "subscribed"
        batch_id = await _upload(platform, tenant, export)
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 60))
            events.append(event)
            if event["status"] in ("VALIDATED", "FAILED"):
                break

    batch = await _wait_final(platform, tenant, batch_id)
    assert batch["status"] == "VALIDATED", batch["errors"]
    assert batch["period_start"] == "2024-01-01"
    assert batch["period_end"] == "2024-12-31"
    assert batch["errors"] == []
    assert batch["progress"] == 1.0
    # Files: name, size and sha256 as uploaded.
    by_field = {f["field"]: f for f in batch["files"]}
    assert set(by_field) == set(FIELDS)
    for field in FIELDS:
        content = export.paths[field].read_bytes()
        assert by_field[field]["size"] == len(content)
        assert by_field[field]["sha256"] == hashlib.sha256(content).hexdigest()
        assert by_field[field]["filename"] == export.paths[field].name

    # Live events: this batch only, in order, increasing progress, every stage, final VALIDATED.
    assert all(e["type"] == "status" and e["batch_id"] == batch_id and e["tenant_id"] == tenant for e in events)
    assert [e["status"] for e in events][-1] == "VALIDATED"
    assert {e["status"] for e in events[:-1]} == {"VALIDATING"}
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress)
    stages = [e["stage"] for e in events]
    assert stages[0] == "download"
    assert "store" in stages
    assert stages[-1] == "validated"
    assert any(s.startswith("parse") for s in stages)

    # S3: the declaration layout, the staging tables, nothing left in incoming.
    storage = platform.gateway.storage
    today = date.today().strftime("%Y%m%d")
    folder = f"{tenant}/declaration/2024/periode-20240101-20241231/"
    declared = sorted(await storage.list_keys(folder))
    assert declared == sorted(
        f"{folder}{today}_{name}_Boulangerie_Dupre_Fils"
        for name in ("GrandLivre", "GrandLivreTiers", "PlanComptes", "PlanTiers", "CodeJournal")
    )
    assert await storage.list_keys(f"{tenant}/incoming/{batch_id}/") == []
    gl = pl.read_parquet(
        io.BytesIO(await storage.get_bytes(f"{tenant}/staging/{batch_id}/grand_livre_comptes.parquet"))
    )
    expected = export.ledgers["grand_livre_comptes"]
    assert gl.height == expected.entry_lines
    sums = gl.group_by("account").agg(pl.col("debit").sum(), pl.col("credit").sum())
    got = {row["account"]: (row["debit"], row["credit"]) for row in sums.iter_rows(named=True)}
    assert got == expected.per_account
    assert sum(d for d, _ in got.values()) == expected.total_debit == expected.total_credit


async def test_inconsistent_period_fails_with_precise_codes(platform: Platform, tmp_path: Path) -> None:
    tenant = await platform.new_tenant()
    export = write_period(tmp_path, ExportSpec(tiers_period=(date(2024, 1, 1), date(2024, 6, 30))))
    batch_id = await _upload(platform, tenant, export)
    batch = await _wait_final(platform, tenant, batch_id)
    assert batch["status"] == "FAILED"
    codes = {e["code"] for e in batch["errors"]}
    assert "PERIOD_MISMATCH" in codes
    # Nothing was filed for a failed batch; the upload stays where it was, for diagnosis.
    assert await platform.gateway.storage.list_keys(f"{tenant}/declaration/") == []
    assert len(await platform.gateway.storage.list_keys(f"{tenant}/incoming/{batch_id}/")) == 5


async def test_partial_overlap_with_a_loaded_period_is_refused(platform: Platform, tmp_path: Path) -> None:
    tenant = await platform.new_tenant()
    first = await _upload(platform, tenant, write_period(tmp_path / "a", ExportSpec()))
    assert (await _wait_final(platform, tenant, first))["status"] == "VALIDATED"
    async with platform.gateway.db.acquire() as conn:  # what the loader records once it has loaded `first`
        await conn.execute(
            "INSERT INTO loaded_periods (tenant_id, period_start, period_end, batch_id, kind)"
            " VALUES ($1, '2024-01-01', '2024-06-30', $2, 'excel')",
            tenant,
            uuid.UUID(first),
        )
    overlapping = await _upload(platform, tenant, write_period(tmp_path / "b", ExportSpec()))
    batch = await _wait_final(platform, tenant, overlapping)
    assert batch["status"] == "FAILED"
    assert [e["code"] for e in batch["errors"]] == ["PERIOD_OVERLAP"]

    equal = write_period(tmp_path / "c", ExportSpec(period_start=date(2024, 1, 1), period_end=date(2024, 6, 30)))
    replacing = await _wait_final(platform, tenant, await _upload(platform, tenant, equal))
    assert replacing["status"] == "VALIDATED", replacing["errors"]


async def test_other_tenants_and_anonymous_callers_see_nothing(platform: Platform, tmp_path: Path) -> None:
    tenant, other = await platform.new_tenant(), await platform.new_tenant()
    batch_id = await _upload(platform, tenant, write_period(tmp_path, ExportSpec()))
    async with platform.client(platform.token(other)) as client:
        assert (await client.get(f"/api/v1/batches/{batch_id}")).status_code == 404
        files, _ = _multipart(write_period(tmp_path / "x", ExportSpec()))
        assert (await client.post(f"/api/v1/tenants/{tenant}/batches", files=files)).status_code == 404
    async with platform.client(None) as anonymous:
        assert (await anonymous.get(f"/api/v1/batches/{batch_id}")).status_code == 401
    async with platform.client(platform.token(tenant, role=Role.VIEWER)) as viewer:
        assert (await viewer.get(f"/api/v1/batches/{batch_id}")).status_code == 200
    await _wait_final(platform, tenant, batch_id)


def _validator_acks() -> float:
    labels = {"service": "period-validator", "queue": "period-validator", "outcome": "ack"}
    return REGISTRY.get_sample_value("comptaflow_messages_handled_total", labels) or 0.0


async def test_redelivered_message_does_not_redo_finished_work(platform: Platform, tmp_path: Path) -> None:
    acks = _validator_acks()
    tenant = await platform.new_tenant()
    batch_id = await _upload(platform, tenant, write_period(tmp_path, ExportSpec()))
    await _wait_final(platform, tenant, batch_id)
    async with platform.gateway.db.acquire() as conn:
        before = await batches.get_batch(conn, uuid.UUID(batch_id))
    assert before is not None
    await platform.gateway.bus.publish(
        BatchUploaded(tenant_id=tenant, batch_id=uuid.UUID(batch_id), kind=BatchKind.EXCEL)
    )
    # Handled and acknowledged, the upload's message and then the redelivered one: the validator is done
    # with it, and whatever it was going to change, it has changed by now.
    await eventually(lambda: _validator_acks() >= acks + 2, within=30)
    async with platform.gateway.db.acquire() as conn:
        after = await batches.get_batch(conn, uuid.UUID(batch_id))
    assert after is not None
    assert (after.status, after.status_seq, after.updated_at) == (before.status, before.status_seq, before.updated_at)


async def test_batch_whose_files_vanished_fails_and_its_message_is_dead_lettered(
    platform: Platform, tmp_path: Path, amqp_url: str
) -> None:
    tenant = await platform.new_tenant()
    await platform.validator.stop(grace=5)  # hold the queue while the files disappear
    batch_id = await _upload(platform, tenant, write_period(tmp_path, ExportSpec()))
    storage = platform.gateway.storage
    for _ in range(50):
        if len(await storage.list_keys(f"{tenant}/incoming/{batch_id}/")) == 5:
            break
        await asyncio.sleep(0.1)
    await storage.delete_prefix(f"{tenant}/incoming/{batch_id}/")
    await platform.validator.start()
    batch = await _wait_final(platform, tenant, batch_id)
    assert batch["status"] == "FAILED"
    assert batch["errors"][0]["code"] == "INTERNAL_ERROR"

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        dead = await channel.declare_queue("comptaflow.period-validator.dead", passive=True)
        found = False
        for _ in range(20):
            message = await dead.get(fail=False)
            if message is None:
                break
            await message.ack()
            found = found or json.loads(message.body)["batch_id"] == batch_id
        assert found


async def test_validator_killed_mid_batch_hands_it_to_the_next(platform: Platform, tmp_path: Path) -> None:
    """Stopping a validator with no grace mid-validation requeues the message; a fresh one finishes it."""
    tenant = await platform.new_tenant()
    export = write_period(tmp_path, ExportSpec(n_pieces=3000))
    batch_id = await _upload(platform, tenant, export)
    async with platform.gateway.db.acquire() as conn:
        for _ in range(400):
            status = await conn.fetchval("SELECT status FROM batches WHERE id = $1", uuid.UUID(batch_id))
            if status != "PENDING":
                break
            await asyncio.sleep(0.025)
    assert status == "VALIDATING"
    await platform.validator.stop(grace=0)
    await platform.validator.start()
    batch = await _wait_final(platform, tenant, batch_id, within=120)
    assert batch["status"] == "VALIDATED", batch["errors"]
    key = f"{tenant}/staging/{batch_id}/grand_livre_comptes.parquet"
    gl = pl.read_parquet(io.BytesIO(await platform.gateway.storage.get_bytes(key)))
    assert gl.height == export.ledgers["grand_livre_comptes"].entry_lines
