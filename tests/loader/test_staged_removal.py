"""The loader removes a batch's staged tables once it is COMPLETED; a restore never needs them."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from comptaflow.common import loads
from comptaflow.common.contracts import BatchStatus, LoadRequested
from comptaflow.common.storage import Storage
from tests.loader.conftest import Running
from tests.loader.support import StagedBatch, new_tenant, stage_batch, wait_final

pytestmark = pytest.mark.infra


async def _staged_keys(storage: Storage, staged: StagedBatch) -> list[str]:
    return sorted(await storage.list_keys(f"{staged.tenant_id}/staging/{staged.batch_id}/"))


async def _gone(storage: Storage, staged: StagedBatch, *, within: float = 10.0) -> bool:
    """Whether the staged tables disappear (the removal follows the COMPLETED event)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while await _staged_keys(storage, staged):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _load(running: Running, staged: StagedBatch) -> BatchStatus:
    await running.infra.bus.publish(LoadRequested(tenant_id=staged.tenant_id, batch_id=staged.batch_id))
    return (await wait_final(running.infra.db, staged.batch_id)).status


async def _current_sums(running: Running, tenant: str) -> dict[str, tuple[Decimal, Decimal]]:
    wh = running.infra.warehouse
    assert wh is not None
    async with running.infra.db.acquire() as conn:
        ids = await loads.current_load_ids(conn, tenant, None, None)
    rows = await wh.query(
        f"SELECT account, sum(debit), sum(credit) FROM {wh.database}.grand_livre"  # noqa: S608
        " WHERE tenant_id = {t:String} AND load_id IN {ids:Array(UUID)} GROUP BY account",
        {"t": tenant, "ids": ids},
    )
    return {str(a): (Decimal(d), Decimal(c)) for a, d, c in rows}


async def test_a_completed_load_leaves_no_staged_table_and_keeps_its_declared_files(running: Running) -> None:
    storage = running.infra.storage
    staged = await stage_batch(running.infra.db, storage, new_tenant(), lines=200)
    other = await stage_batch(running.infra.db, storage, new_tenant(), lines=50)  # validated, not loaded
    assert len(await _staged_keys(storage, staged)) == 5

    assert await _load(running, staged) is BatchStatus.COMPLETED
    assert await _gone(storage, staged)
    for key, content in staged.declared.items():
        assert await storage.get_bytes(key) == content
    assert len(await _staged_keys(storage, other)) == 5


async def test_a_restore_brings_back_a_load_whose_staged_tables_are_gone(running: Running) -> None:
    infra = running.infra
    tenant = new_tenant()
    first = await stage_batch(infra.db, infra.storage, tenant, lines=120, seed=1)
    assert await _load(running, first) is BatchStatus.COMPLETED
    second = await stage_batch(infra.db, infra.storage, tenant, lines=80, seed=2)
    assert await _load(running, second) is BatchStatus.COMPLETED
    assert await _gone(infra.storage, first)
    assert await _gone(infra.storage, second)

    async with infra.db.acquire() as conn:
        [period] = await loads.list_periods(conn, tenant)
    [backup] = period.backups
    assert backup.batch_id == first.batch_id
    await infra.bus.publish(LoadRequested(tenant_id=tenant, batch_id=first.batch_id, backup_id=backup.backup_id))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        async with infra.db.acquire() as conn:
            current: uuid.UUID | None = await loads.current_load(conn, tenant, first.start, first.end)
        if current == first.batch_id:
            break
        assert loop.time() < deadline, "the restore did not happen"
        await asyncio.sleep(0.05)
    assert await _current_sums(running, tenant) == first.sums()
