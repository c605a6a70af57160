"""The loader against real RabbitMQ, PostgreSQL, SeaweedFS and chdb."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aio_pika
import polars as pl
import pytest

from comptaflow.common import batches, loads
from comptaflow.common.contracts import BatchStatus, LoadRequested, StatusEvent
from comptaflow.common.infra import open_infra
from comptaflow.common.metrics import REGISTRY
from comptaflow.common.settings import Settings
from comptaflow.common.warehouse import Warehouse
from comptaflow.common.worker import Worker
from comptaflow.loader.service import SERVICE as LOADER
from tests.common.support import eventually
from tests.loader.conftest import Running
from tests.loader.support import StagedBatch, new_tenant, stage_batch, staged_parquet, wait_final

pytestmark = pytest.mark.infra


def _wh(running: Running) -> Warehouse:
    assert running.infra.warehouse is not None
    return running.infra.warehouse


async def _current_rows(running: Running, tenant: str, table: str) -> int:
    async with running.infra.db.acquire() as conn:
        ids = await loads.current_load_ids(conn, tenant, None, None)
    if not ids:
        return 0
    wh = _wh(running)
    rows = await wh.query(
        f"SELECT count() FROM {wh.database}.{table} WHERE tenant_id = {{t:String}} AND load_id IN {{ids:Array(UUID)}}",  # noqa: S608
        {"t": tenant, "ids": ids},
    )
    return int(rows[0][0])


async def _current_sums(running: Running, tenant: str) -> dict[str, tuple[Decimal, Decimal]]:
    async with running.infra.db.acquire() as conn:
        ids = await loads.current_load_ids(conn, tenant, None, None)
    wh = _wh(running)
    rows = await wh.query(
        f"SELECT account, sum(debit), sum(credit) FROM {wh.database}.grand_livre"  # noqa: S608
        " WHERE tenant_id = {t:String} AND load_id IN {ids:Array(UUID)} GROUP BY account",
        {"t": tenant, "ids": ids},
    )
    return {str(a): (Decimal(d), Decimal(c)) for a, d, c in rows}


def _acks() -> float:
    """Messages the loader of the `running` fixture handled and acknowledged, in this process so far."""
    labels = {"service": "loader-test", "queue": LOADER.queues[0].name, "outcome": "ack"}
    return REGISTRY.get_sample_value("comptaflow_messages_handled_total", labels) or 0.0


async def _load(running: Running, staged: StagedBatch) -> batches.Batch:
    await running.infra.bus.publish(LoadRequested(tenant_id=staged.tenant_id, batch_id=staged.batch_id))
    return await wait_final(running.infra.db, staged.batch_id)


async def test_validated_batch_is_loaded_to_the_cent_with_live_stages(running: Running) -> None:
    tenant = new_tenant()
    staged = await stage_batch(running.infra.db, running.infra.storage, tenant, lines=2000)
    events: list[StatusEvent] = []

    async def collect() -> None:
        async with running.infra.bus.status_stream() as stream:
            async for event in stream:
                if event.batch_id == staged.batch_id:
                    events.append(event)
                    if event.status in ("COMPLETED", "FAILED"):
                        return

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0.3)
    batch = await _load(running, staged)
    await asyncio.wait_for(collector, 10)

    assert batch.status is BatchStatus.COMPLETED, batch.errors
    for table, staged_as in {
        "grand_livre": "grand_livre_comptes",
        "grand_livre_tiers": "grand_livre_tiers",
        "plan_comptes": "plan_comptes",
        "plan_tiers": "plan_tiers",
        "code_journal": "code_journal",
    }.items():
        assert await _current_rows(running, tenant, table) == staged.tables[staged_as].height
    assert await _current_sums(running, tenant) == staged.sums()
    assert batch.stats["loaded"]["grand_livre"] == 2000
    assert [e.stage for e in events] == [
        "claim", "download", "dimensions", "facts", "verify", "backup", "switch", "completed"
    ]  # fmt: skip
    progress = [e.progress for e in events]
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    assert events[-1].status == "COMPLETED"
    wh = _wh(running)
    meta = await wh.query(
        f"SELECT status, records_inserted FROM {wh.database}.etl_metadata FINAL"  # noqa: S608
        " WHERE tenant_id = {t:String} AND batch_id = {b:UUID}",
        {"t": tenant, "b": staged.batch_id},
    )
    assert meta == [("success", 2000 + 400 + 5 + 2 + 2)]


async def test_reloading_a_period_keeps_a_backup_and_restore_brings_it_back(running: Running) -> None:
    acks = _acks()
    tenant = new_tenant()
    infra = running.infra
    first = await stage_batch(infra.db, infra.storage, tenant, lines=300, seed=1)
    assert (await _load(running, first)).status is BatchStatus.COMPLETED
    second = await stage_batch(infra.db, infra.storage, tenant, lines=200, seed=2)
    assert (await _load(running, second)).status is BatchStatus.COMPLETED

    assert await _current_rows(running, tenant, "grand_livre") == 200
    assert await _current_sums(running, tenant) == second.sums()
    async with infra.db.acquire() as conn:
        periods = await loads.list_periods(conn, tenant)
    assert [(p.period_start, p.period_end, p.batch_id) for p in periods] == [(first.start, first.end, second.batch_id)]
    assert [b.batch_id for b in periods[0].backups] == [first.batch_id]
    backup_id = periods[0].backups[0].backup_id
    async with infra.db.acquire() as conn:
        backup = await loads.get_backup(conn, backup_id)
    assert backup is not None
    assert backup.s3_prefix.startswith(f"{tenant}/declaration/2024/periode-20240101-20241231/backup/")
    saved = sorted(await infra.storage.list_keys(backup.s3_prefix))
    assert saved == sorted(backup.s3_prefix + key.rsplit("/", 1)[1] for key in first.declared)
    for key, content in first.declared.items():
        assert await infra.storage.get_bytes(backup.s3_prefix + key.rsplit("/", 1)[1]) == content

    events: list[StatusEvent] = []

    async def collect() -> None:
        async with infra.bus.status_stream() as stream:
            async for event in stream:
                if event.batch_id == first.batch_id:
                    events.append(event)
                    if event.status == "COMPLETED":
                        return

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0.3)
    restore = LoadRequested(tenant_id=tenant, batch_id=first.batch_id, backup_id=backup_id)
    await infra.bus.publish(restore)
    await asyncio.wait_for(collector, 20)
    assert [(e.stage, e.status) for e in events] == [("restore", "PROCESSING"), ("restore", "COMPLETED")]

    assert await _current_rows(running, tenant, "grand_livre") == 300
    assert await _current_sums(running, tenant) == first.sums()
    async with infra.db.acquire() as conn:
        periods = await loads.list_periods(conn, tenant)
        assert await loads.get_backup(conn, backup_id) is None
        restored = await batches.get_batch(conn, first.batch_id)
    assert periods[0].batch_id == first.batch_id
    assert [b.batch_id for b in periods[0].backups] == [second.batch_id]
    assert restored is not None
    assert restored.status is BatchStatus.COMPLETED

    # The same restore again changes nothing, once the loader is done with it (acknowledged, as the two loads
    # and the first restore were).
    before = await _seq(running, first.batch_id)
    await infra.bus.publish(restore)
    await eventually(lambda: _acks() >= acks + 4, within=30)
    assert await _seq(running, first.batch_id) == before
    async with infra.db.acquire() as conn:
        assert [p.batch_id for p in await loads.list_periods(conn, tenant)] == [first.batch_id]


async def _seq(running: Running, batch_id: uuid.UUID) -> tuple[Any, ...]:
    async with running.infra.db.acquire() as conn:
        batch = await batches.get_batch(conn, batch_id)
    assert batch is not None
    return (batch.status, batch.status_seq, batch.updated_at)


async def test_tenants_load_side_by_side_and_one_tenants_loads_one_after_the_other(running: Running) -> None:
    infra = running.infra
    a, b = new_tenant(), new_tenant()
    from datetime import date

    staged = [
        await stage_batch(infra.db, infra.storage, a, lines=3000),
        await stage_batch(infra.db, infra.storage, b, lines=3000),
        await stage_batch(infra.db, infra.storage, a, lines=3000, start=date(2025, 1, 1), end=date(2025, 12, 31)),
    ]
    for s in staged:
        await infra.bus.publish(LoadRequested(tenant_id=s.tenant_id, batch_id=s.batch_id))
    done = await asyncio.gather(*(wait_final(infra.db, s.batch_id) for s in staged))
    assert [d.status for d in done] == [BatchStatus.COMPLETED] * 3
    assert await _current_rows(running, a, "grand_livre") == 6000
    assert await _current_rows(running, b, "grand_livre") == 3000
    wh = _wh(running)
    spans = await wh.query(
        f"SELECT processing_start, processing_end FROM {wh.database}.etl_metadata FINAL"  # noqa: S608
        " WHERE tenant_id = {t:String} AND status = 'success' ORDER BY processing_start",
        {"t": a},
    )
    assert len(spans) == 2
    assert spans[0][1] <= spans[1][0], "the two loads of one tenant overlapped"


async def test_poison_messages_are_dead_lettered_and_the_next_load_proceeds(running: Running, amqp_url: str) -> None:
    infra = running.infra
    tenant = new_tenant()
    gone = await stage_batch(infra.db, infra.storage, tenant, lines=50)
    await infra.storage.delete_prefix(f"{tenant}/staging/{gone.batch_id}/")
    await infra.bus.publish(LoadRequested(tenant_id=tenant, batch_id=gone.batch_id))
    await infra.bus.publish_raw("batch.load_requested", b"{not json", message_id=str(uuid.uuid4()))
    failed = await wait_final(infra.db, gone.batch_id)
    assert failed.status is BatchStatus.FAILED
    assert failed.errors[0]["code"] == "LOAD_FAILED"
    assert "not found" in failed.errors[0]["message"]

    good = await stage_batch(infra.db, infra.storage, tenant, lines=50, start=failed.period_start or gone.start)
    assert (await _load(running, good)).status is BatchStatus.COMPLETED

    bodies: list[bytes] = []
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        dead = await channel.declare_queue("comptaflow.loader.dead", passive=True)
        for _ in range(200):
            message = await dead.get(fail=False)
            if message is None:
                break
            await message.ack()
            bodies.append(message.body)
    assert b"{not json" in bodies
    assert any(
        b.startswith(b"{") and b != b"{not json" and json.loads(b)["batch_id"] == str(gone.batch_id) for b in bodies
    )


async def test_redelivered_finished_load_redoes_nothing(running: Running) -> None:
    acks = _acks()
    infra = running.infra
    tenant = new_tenant()
    staged = await stage_batch(infra.db, infra.storage, tenant, lines=100)
    assert (await _load(running, staged)).status is BatchStatus.COMPLETED
    before = await _seq(running, staged.batch_id)
    await infra.bus.publish(LoadRequested(tenant_id=tenant, batch_id=staged.batch_id))
    # Done with both the load and the redelivered request: acknowledged, after whatever it would change.
    await eventually(lambda: _acks() >= acks + 2, within=30)
    assert await _seq(running, staged.batch_id) == before
    assert await _current_rows(running, tenant, "grand_livre") == 100
    wh = _wh(running)
    total = await wh.query(
        f"SELECT count() FROM {wh.database}.grand_livre WHERE tenant_id = {{t:String}}",  # noqa: S608
        {"t": tenant},
    )
    assert total == [(100,)]


async def test_tables_staged_without_tags_by_an_earlier_validator_still_load(running: Running) -> None:
    tenant = new_tenant()
    staged = await stage_batch(running.infra.db, running.infra.storage, tenant, lines=300, untagged=True)
    batch = await _load(running, staged)
    assert batch.status is BatchStatus.COMPLETED, batch.errors
    assert await _current_rows(running, tenant, "grand_livre") == 300
    assert await _current_rows(running, tenant, "plan_tiers") == 2
    assert await _current_sums(running, tenant) == staged.sums()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda frame: frame.drop("debit"), "the staged table grand_livre lacks the columns debit"),
        (lambda frame: frame.with_columns(tenant_id=pl.lit("someone-else")), "tagged for another load"),
    ],
    ids=["missing-column", "other-tenant"],
)
async def test_a_staged_table_lacking_a_column_or_tagged_for_another_load_fails_the_load_and_writes_nothing(
    running: Running, change: Callable[[pl.DataFrame], pl.DataFrame], reason: str
) -> None:
    infra = running.infra
    tenant = new_tenant()
    staged = await stage_batch(infra.db, infra.storage, tenant, lines=100)
    key = f"{tenant}/staging/{staged.batch_id}/grand_livre_comptes.parquet"
    frame = pl.read_parquet(io.BytesIO(await infra.storage.get_bytes(key)))
    await infra.storage.put_bytes(key, staged_parquet(change(frame), table="", tenant_id=None, load_id=None))

    batch = await _load(running, staged)
    assert batch.status is BatchStatus.FAILED
    assert batch.errors[0]["code"] == "LOAD_FAILED"
    assert reason in batch.errors[0]["message"]
    wh = _wh(running)
    for table in ("plan_comptes", "grand_livre"):
        rows = await wh.query(
            f"SELECT count() FROM {wh.database}.{table} WHERE load_id = {{l:UUID}}",  # noqa: S608
            {"l": staged.batch_id},
        )
        assert rows == [(0,)], table


async def test_a_period_keeps_its_newest_backups_and_the_older_ones_are_gone(loader_settings: Settings) -> None:
    async with open_infra(loader_settings.model_copy(update={"backups_keep": 2}), service="loader-test") as infra:
        loader = Worker(LOADER, infra)
        await loader.start()
        try:
            running = Running(infra, loader)
            tenant = new_tenant()
            staged, prefixes = [], {}
            for seed in range(1, 5):  # four loads of the same period: three backups made, two kept
                batch = await stage_batch(infra.db, infra.storage, tenant, lines=50 + seed, seed=seed)
                assert (await _load(running, batch)).status is BatchStatus.COMPLETED
                staged.append(batch)
                async with infra.db.acquire() as conn:
                    for period in await loads.list_periods(conn, tenant):
                        for view in period.backups:
                            backup = await loads.get_backup(conn, view.backup_id)
                            assert backup is not None
                            prefixes[backup.batch_id] = backup.s3_prefix
                await asyncio.sleep(1.1)  # backup folders are named to the second
            # The pruning of old backups runs after COMPLETED is announced: stopping the loader waits for it.
            await loader.stop(grace=30)
            async with infra.db.acquire() as conn:
                [period] = await loads.list_periods(conn, tenant)
            assert period.batch_id == staged[3].batch_id
            assert [b.batch_id for b in period.backups] == [staged[2].batch_id, staged[1].batch_id]
            wh = _wh(running)
            for table in ("grand_livre", "plan_comptes"):
                rows = await wh.query(
                    f"SELECT DISTINCT load_id FROM {wh.database}.{table} WHERE tenant_id = {{t:String}}",  # noqa: S608
                    {"t": tenant},
                )
                assert {uuid.UUID(str(load)) for (load,) in rows} == {b.batch_id for b in staged[1:]}, table
            assert await _current_sums(running, tenant) == staged[3].sums()
            # The pruned backup's copied files are gone; the kept backups' files are all there.
            assert await infra.storage.list_keys(prefixes[staged[0].batch_id]) == []
            for kept in staged[1:3]:
                assert len(await infra.storage.list_keys(prefixes[kept.batch_id])) == len(kept.declared)
        finally:
            await loader.stop(grace=5)
