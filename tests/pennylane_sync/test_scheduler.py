"""The sync schedule: slots spread per tenant, full at 03:00 Paris, caught up once, one leader."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, time, timedelta

import asyncpg
import pytest
from pydantic import SecretStr

from comptaflow.common import db, jobs, tenants
from comptaflow.common.contracts import JobStatus, SyncMode
from comptaflow.common.locks import Namespace, advisory_lock
from comptaflow.common.pennylane import connections
from comptaflow.common.secrets import Keyring, generate_key
from comptaflow.pennylane_sync.scheduler import Schedule, Scheduler, ask, due, tick

SCHEDULE = Schedule(interval=timedelta(hours=2), full_at=time(3, 0), timezone="Europe/Paris", spread=timedelta(hours=1))
KEYRING = Keyring.from_setting(generate_key())


def test_incremental_slots_are_the_latest_at_or_before_now_and_spread_across_tenants() -> None:
    now = datetime(2026, 12, 4, 10, 17, tzinfo=UTC)
    buckets: Counter[int] = Counter()
    for n in range(500):
        tenant = f"client-{n:03d}"
        slot = SCHEDULE.incremental_slot(tenant, now)
        assert now - timedelta(hours=2) < slot <= now
        # The same tenant's slots are exactly one interval apart.
        assert SCHEDULE.incremental_slot(tenant, slot - timedelta(seconds=1)) == slot - timedelta(hours=2)
        offset = (slot.timestamp() % 7200) // 600  # which ten minutes of the two hours
        buckets[int(offset)] += 1
    # 500 tenants over twelve ten-minute buckets: about 42 each, none crowded.
    assert len(buckets) == 12
    assert max(buckets.values()) < 70


def test_the_full_slot_is_at_three_paris_time_shifted_within_the_spread_in_winter_and_summer() -> None:
    for now, three_utc in (
        (datetime(2026, 12, 4, 12, 0, tzinfo=UTC), datetime(2026, 12, 4, 2, 0, tzinfo=UTC)),  # CET = UTC+1
        (datetime(2026, 7, 4, 12, 0, tzinfo=UTC), datetime(2026, 7, 4, 1, 0, tzinfo=UTC)),  # CEST = UTC+2
    ):
        for n in range(50):
            slot = SCHEDULE.full_slot(f"client-{n}", now)
            assert three_utc <= slot < three_utc + timedelta(hours=1)
    # Before today's slot, the latest one is yesterday's.
    early = datetime(2026, 12, 4, 1, 30, tzinfo=UTC)
    assert SCHEDULE.full_slot("client-1", early).date() == datetime(2026, 12, 3, tzinfo=UTC).date()


async def _connected_tenant(pool: asyncpg.Pool) -> str:
    tenant = f"sched-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as conn, conn.transaction():
        await tenants.create_tenant(conn, tenant, "Scheduled client")
        await connections.put_connection(
            conn,
            KEYRING,
            tenant,
            token=SecretStr(f"token-{tenant}"),
            base_url="http://127.0.0.1:9/api/external/v2",
            enabled=True,
            scopes=[],
            company_id=1,
            company_name="Client",
        )
    return tenant


async def _jobs_of(pool: asyncpg.Pool, tenant: str) -> list[jobs.Job]:
    async with pool.acquire() as conn:
        return await jobs.list_jobs(conn, tenant, kind="pennylane.sync", status=None, limit=50, after=None)


async def _finish_all(pool: asyncpg.Pool, tenant: str) -> None:
    async with pool.acquire() as conn:
        for job in await jobs.list_jobs(conn, tenant, kind="pennylane.sync", status=None, limit=50, after=None):
            if job.status is JobStatus.PENDING:
                await jobs.claim(conn, job.id, stage="test", progress=0, limit=5)
                await jobs.finish(conn, job.id, JobStatus.SUCCEEDED)


@pytest.mark.infra
async def test_a_new_tenant_gets_a_full_sync_then_incrementals_each_slot_once(pool: asyncpg.Pool) -> None:
    tenant = await _connected_tenant(pool)
    now = datetime.now(UTC)
    asked = [d for d in await tick(pool, SCHEDULE, now) if d.tenant_id == tenant]
    assert [d.mode for d in asked] == [SyncMode.FULL]
    (job,) = await _jobs_of(pool, tenant)
    assert job.params["mode"] == "full"
    assert job.idempotency_key == asked[0].idempotency_key
    async with pool.acquire() as conn:
        queued = await conn.fetchval(
            "SELECT count(*) FROM outbox"
            " WHERE routing_key = 'pennylane.sync_requested' AND body::jsonb->>'job_id' = $1",
            str(job.id),
        )
    assert queued == 1  # the job and its message in one transaction

    # While it is pending, nothing more is asked for it.
    assert not [d for d in await tick(pool, SCHEDULE, now) if d.tenant_id == tenant]
    await _finish_all(pool, tenant)
    # Done, and asked for after both slots: nothing is due until the next incremental slot.
    assert not [d for d in await tick(pool, SCHEDULE, now) if d.tenant_id == tenant]
    later = SCHEDULE.incremental_slot(tenant, now) + timedelta(hours=2, seconds=1)
    asked = [d for d in await tick(pool, SCHEDULE, later) if d.tenant_id == tenant]
    if SCHEDULE.full_slot(tenant, later) > now:  # the next tick crossed tonight's full slot
        assert [d.mode for d in asked] == [SyncMode.FULL]
    else:
        assert [d.mode for d in asked] == [SyncMode.INCREMENTAL]
    await _finish_all(pool, tenant)
    # Missed slots (a day without a scheduler) are caught up once, not once per slot.
    much_later = later + timedelta(days=1)
    asked = [d for d in await tick(pool, SCHEDULE, much_later) if d.tenant_id == tenant]
    assert [d.mode for d in asked] == [SyncMode.FULL]
    assert not [d for d in await tick(pool, SCHEDULE, much_later) if d.tenant_id == tenant]


@pytest.mark.infra
async def test_two_schedulers_deciding_at_once_ask_once(pool: asyncpg.Pool) -> None:
    tenant = await _connected_tenant(pool)
    now = datetime.now(UTC)
    async with pool.acquire() as a, pool.acquire() as b:
        first, second = await due(a, SCHEDULE, now), await due(b, SCHEDULE, now)
    assert [d for d in first if d.tenant_id == tenant] == [d for d in second if d.tenant_id == tenant]
    mine = next(d for d in first if d.tenant_id == tenant)
    async with pool.acquire() as a, pool.acquire() as b:
        created = await asyncio.gather(ask(a, mine), ask(b, mine))
    assert sorted(created) == [False, True]
    assert len(await _jobs_of(pool, tenant)) == 1


@pytest.mark.infra
async def test_a_disabled_tenant_is_not_scheduled(pool: asyncpg.Pool) -> None:
    tenant = await _connected_tenant(pool)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE pennylane_connections SET enabled = false WHERE tenant_id = $1", tenant)
    assert not [d for d in await tick(pool, SCHEDULE) if d.tenant_id == tenant]


@pytest.mark.infra
async def test_one_scheduler_leads_and_another_takes_over_when_it_stops(pg_dsn: str) -> None:
    pools = [await db.create_pool(pg_dsn, max_size=3) for _ in range(2)]
    first = Scheduler(pools[0], SCHEDULE, tick_s=0.05, standby_s=0.05)
    second = Scheduler(pools[1], SCHEDULE, tick_s=0.05, standby_s=0.05)
    try:
        await first.start()
        for _ in range(100):
            if first.leading:
                break
            await asyncio.sleep(0.02)
        await second.start()
        await asyncio.sleep(0.3)
        assert first.leading
        assert not second.leading
        await first.stop()
        for _ in range(100):
            if second.leading:
                break
            await asyncio.sleep(0.02)
        assert second.leading
    finally:
        await first.stop()
        await second.stop()
        for p in pools:
            await p.close()


@pytest.mark.infra
async def test_a_running_job_blocks_the_schedule_only_while_its_sync_holds_the_tenant_lock(pool: asyncpg.Pool) -> None:
    tenant = await _connected_tenant(pool)
    async with pool.acquire() as conn:
        job, _ = await jobs.create_job(conn, tenant, "pennylane.sync", {"mode": "full", "tables": None})
        await jobs.claim(conn, job.id, stage="test", progress=0, limit=5)  # RUNNING, as a killed run leaves it
    # Nobody holds the lock (the process that ran it died): at its next slot the tenant is scheduled again.
    later = datetime.now(UTC) + timedelta(hours=2, minutes=1)
    assert [d.tenant_id for d in await tick(pool, SCHEDULE, later) if d.tenant_id == tenant] == [tenant]
    other = await _connected_tenant(pool)
    async with pool.acquire() as conn:
        job, _ = await jobs.create_job(conn, other, "pennylane.sync", {"mode": "full", "tables": None})
        await jobs.claim(conn, job.id, stage="test", progress=0, limit=5)
    async with advisory_lock(pool, Namespace.PENNYLANE_SYNC, other):  # a sync in progress
        assert not [d for d in await tick(pool, SCHEDULE, later) if d.tenant_id == other]
