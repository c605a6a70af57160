"""A FEC through the whole platform: upload the `fec` field → validator → loader → the trial balance over HTTP.

The expected sums come from an independent plain-Python reading of the files (`fec_reference`).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from comptaflow.testkit.fec import EVERY_QUIRK, write_fec
from tests.e2e.platform import Platform, wait_for_status
from tests.period_validator.fec_reference import FIXTURES, REAL_FILES, read_reference

pytestmark = pytest.mark.infra


async def _upload(client: httpx.AsyncClient, tenant: str, path: Path, **fields: str) -> dict[str, Any]:
    content = await asyncio.to_thread(path.read_bytes)
    response = await client.post(
        f"/api/v1/tenants/{tenant}/batches",
        files=[("fec", (path.name, content))],
        data={"auto_load": "true", **fields},
    )
    assert response.status_code == 202, response.text
    assert response.json()["kind"] == "fec"
    return await wait_for_status(client, response.json()["batch_id"])


async def _trial_balance(client: httpx.AsyncClient, tenant: str) -> dict[str, tuple[Decimal, Decimal]]:
    response = await client.get(f"/api/v1/tenants/{tenant}/trial-balance")
    assert response.status_code == 200, response.text
    body = response.json()
    rows = {r["account"]: (Decimal(r["debit"]), Decimal(r["credit"])) for r in body["rows"]}
    assert Decimal(body["total_debit"]) == sum(d for d, _ in rows.values())
    assert Decimal(body["total_credit"]) == sum(c for _, c in rows.values())
    return rows


async def test_the_three_real_files_load_and_their_trial_balances_match(platform: Platform) -> None:
    warehouse = platform.worker.warehouse
    assert warehouse is not None
    for name in REAL_FILES:
        reference = read_reference(name)
        tenant = await platform.new_tenant()
        async with platform.client(platform.token(tenant)) as client:
            batch = await _upload(client, tenant, FIXTURES / f"{name}.txt")
            assert batch["status"] == "COMPLETED", (name, batch["errors"][:3])
            assert batch["stats"]["lines"] == reference.lines
            assert await _trial_balance(client, tenant) == reference.accounts, name
            periods = (await client.get(f"/api/v1/tenants/{tenant}/periods")).json()["items"]
            assert [(p["batch_id"], p["kind"]) for p in periods] == [(batch["batch_id"], "fec")]
        rows = await warehouse.query(
            f"SELECT account, sum(debit), sum(credit) FROM {warehouse.database}.grand_livre_tiers"  # noqa: S608
            " WHERE tenant_id = {t:String} GROUP BY account",
            {"t": tenant},
        )
        assert {str(a): (Decimal(d), Decimal(c)) for a, d, c in rows} == reference.tiers, name


async def test_an_unbalanced_fec_fails_and_leaves_the_loaded_period_intact(platform: Platform, tmp_path: Path) -> None:
    name = "123456789FEC20500930"
    reference = read_reference(name)
    tenant = await platform.new_tenant()
    source = (FIXTURES / f"{name}.txt").read_bytes()
    # One cent more on the first debit of 1888,31 (line 2): the entry and the file no longer balance.
    assert source.count(b"\t1888,31\t") >= 1
    broken = tmp_path / f"{name}.txt"
    broken.write_bytes(source.replace(b"\t1888,31\t", b"\t1888,32\t", 1))
    async with platform.client(platform.token(tenant)) as client:
        first = await _upload(client, tenant, FIXTURES / f"{name}.txt")
        assert first["status"] == "COMPLETED", first["errors"][:3]
        failed = await _upload(client, tenant, broken)
        assert failed["status"] == "FAILED"
        codes = [error["code"] for error in failed["errors"]]
        assert set(codes) == {"UNBALANCED"}
        entry = next(error for error in failed["errors"] if error.get("row") == 2)
        assert "difference 0.01" in entry["message"]
        assert await _trial_balance(client, tenant) == reference.accounts
        periods = (await client.get(f"/api/v1/tenants/{tenant}/periods")).json()["items"]
        assert [(p["batch_id"], p["backups"]) for p in periods] == [(first["batch_id"], [])]


async def test_the_period_named_at_upload_is_the_batchs_period(platform: Platform) -> None:
    tenant = await platform.new_tenant()
    async with platform.client(platform.token(tenant)) as client:
        batch = await _upload(
            client,
            tenant,
            FIXTURES / "123456789FEC20500930.txt",
            period_start="2022-04-01",
            period_end="2023-04-30",
        )
        assert batch["status"] == "COMPLETED", batch["errors"][:3]
        assert (batch["period_start"], batch["period_end"]) == ("2022-04-01", "2023-04-30")
        outside = await _upload(
            client,
            tenant,
            FIXTURES / "123456789FEC20500930.txt",
            period_start="2022-05-01",
            period_end="2023-04-30",
        )
        assert outside["status"] == "FAILED"
        assert {error["code"] for error in outside["errors"]} == {"ENTRY_OUTSIDE_PERIOD"}


async def test_a_fec_with_every_quirk_at_once_loads_through_the_platform(platform: Platform, tmp_path: Path) -> None:
    spec = replace(EVERY_QUIRK, lines=3000, seed=11)
    written = await asyncio.to_thread(write_fec, tmp_path / "FEC-quirks.txt", spec)
    tenant = await platform.new_tenant()
    async with platform.client(platform.token(tenant)) as client:
        batch = await _upload(client, tenant, written.path)
        assert batch["status"] == "COMPLETED", batch["errors"][:3]
        assert batch["stats"]["format"]["encoding"] == "CP850"
        assert {w["code"] for w in batch["warnings"]} >= {"MISSING_VALID_DATE", "ENTRIES_NOT_NUMBERED"}
        assert (batch["period_start"], batch["period_end"]) == (
            written.period_start.isoformat(),
            written.period_end.isoformat(),
        )
        assert await _trial_balance(client, tenant) == written.accounts
        rows = (await client.get(f"/api/v1/tenants/{tenant}/trial-balance")).json()["rows"]
        # Labels decoded from CP850 (é = 0x82…), none replaced.
        assert {r["account"]: r["label"] for r in rows} == written.account_labels
        assert any("é" in label for label in written.account_labels.values())
