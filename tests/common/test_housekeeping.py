"""Housekeeping on a real PostgreSQL and S3 (SeaweedFS): staged tables removed, FAILED batches swept.

Each test works in a database of its own (`private_pool`): a sweep looks at every batch of the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from pydantic import ValidationError

from comptaflow.common import batches, tenants
from comptaflow.common.batches import BatchFile
from comptaflow.common.contracts import BatchKind, BatchStatus
from comptaflow.common.housekeeping import Sweeper, remove_staged, sweep_failed
from comptaflow.common.settings import Settings
from comptaflow.common.storage import Storage

from .support import tenant_id

pytestmark = pytest.mark.infra

NOW = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
EXCEL_FIELDS = ("code_journal", "grand_livre_comptes", "grand_livre_tiers", "plan_comptes", "plan_tiers")
STAGED_TABLES = ("code_journal", "grand_livre_comptes", "grand_livre_tiers", "plan_comptes", "plan_tiers")


@dataclass(frozen=True)
class Stored:
    batch_id: uuid.UUID
    files: list[str]  # the keys batch_files lists
    staged: list[str]


async def _tenant(pool: asyncpg.Pool) -> str:
    tenant = tenant_id()
    async with pool.acquire() as conn:
        await tenants.create_tenant(conn, tenant, "ACME SARL")
    return tenant


async def _batch(
    pool: asyncpg.Pool,
    storage: Storage,
    tenant: str,
    *,
    status: BatchStatus,
    updated_at: datetime,
    filed: bool = False,
    staged: bool = True,
) -> Stored:
    """A batch in `status` since `updated_at`, its files stored in incoming/ (or, `filed`, in the declaration
    layout, as for a batch that failed while loading) and, `staged`, its staged tables."""
    batch_id = uuid.uuid4()
    folder = (
        f"{tenant}/declaration/2024/periode-20240101-20241231/20250101_" if filed else f"{tenant}/incoming/{batch_id}/"
    )
    files = []
    for field in EXCEL_FIELDS:
        content = f"{field} of {batch_id}".encode()
        key = f"{folder}{field}-{batch_id.hex[:6]}.xlsx"
        await storage.put_bytes(key, content)
        files.append(BatchFile(field, f"{field}.xlsx", len(content), hashlib.sha256(content).hexdigest(), key))
    staged_keys = []
    if staged:
        for table in STAGED_TABLES:
            key = f"{tenant}/staging/{batch_id}/{table}.parquet"
            await storage.put_bytes(key, b"PAR1")
            staged_keys.append(key)
    async with pool.acquire() as conn, conn.transaction():
        await batches.insert_batch(
            conn,
            batch_id=batch_id,
            tenant_id=tenant,
            kind=BatchKind.EXCEL,
            files=files,
            auto_load=False,
            created_by="t",
        )
        errors = [{"code": "UNBALANCED", "message": "the general ledger does not balance"}]
        await conn.execute(
            "UPDATE batches SET status = $2, stage = lower($2), progress = 1, errors = $3, stats = $4,"
            " created_at = $5, updated_at = $5 WHERE id = $1",
            batch_id,
            status.value,
            errors if status is BatchStatus.FAILED else [],
            {"errors_total": 1},
            updated_at,
        )
    return Stored(batch_id, sorted(f.object_key for f in files), staged_keys)


async def _keys(storage: Storage, tenant: str) -> list[str]:
    return sorted(await storage.list_keys(f"{tenant}/"))


async def _get(pool: asyncpg.Pool, batch_id: uuid.UUID) -> batches.Batch:
    async with pool.acquire() as conn:
        batch = await batches.get_batch(conn, batch_id)
    assert batch is not None
    return batch


async def test_remove_staged_deletes_the_staged_tables_of_one_batch_only(
    private_pool: asyncpg.Pool, storage: Storage
) -> None:
    tenant = await _tenant(private_pool)
    done = await _batch(private_pool, storage, tenant, status=BatchStatus.COMPLETED, updated_at=NOW)
    other = await _batch(private_pool, storage, tenant, status=BatchStatus.VALIDATED, updated_at=NOW)

    assert await remove_staged(storage, tenant, done.batch_id) == 5
    assert await _keys(storage, tenant) == sorted([*done.files, *other.files, *other.staged])
    assert await remove_staged(storage, tenant, done.batch_id) == 0  # nothing left: nothing to do


async def test_remove_staged_never_raises_when_the_store_is_unavailable() -> None:
    closed = Storage(endpoint="http://127.0.0.1:1", access_key="a", secret_key="b", bucket="nowhere")  # never opened
    assert await remove_staged(closed, "acme", uuid.uuid4()) == 0


async def test_a_sweep_removes_the_incoming_files_and_staged_tables_of_batches_failed_too_long_ago(
    private_pool: asyncpg.Pool, storage: Storage
) -> None:
    tenant = await _tenant(private_pool)
    old = await _batch(private_pool, storage, tenant, status=BatchStatus.FAILED, updated_at=NOW - 31 * DAY)
    orphan = f"{tenant}/incoming/{old.batch_id}/fec.txt"  # left by an interrupted upload: not listed, removed too
    await storage.put_bytes(orphan, b"JournalCode")
    recent = await _batch(private_pool, storage, tenant, status=BatchStatus.FAILED, updated_at=NOW - 29 * DAY)
    load_failed = await _batch(
        private_pool, storage, tenant, status=BatchStatus.FAILED, updated_at=NOW - 40 * DAY, filed=True
    )
    completed = await _batch(private_pool, storage, tenant, status=BatchStatus.COMPLETED, updated_at=NOW - 90 * DAY)

    assert await sweep_failed(private_pool, storage, retention_days=30, now=NOW) == 2

    # Kept: the recent failure's everything, the declared files of the batch that failed while loading,
    # and whatever belongs to a batch that did not fail.
    assert await _keys(storage, tenant) == sorted(
        [*recent.files, *recent.staged, *load_failed.files, *completed.files, *completed.staged]
    )
    swept = await _get(private_pool, old.batch_id)
    assert swept.status is BatchStatus.FAILED
    assert swept.errors == [{"code": "UNBALANCED", "message": "the general ledger does not balance"}]
    assert sorted(f.object_key for f in swept.files) == old.files  # still listed
    assert swept.stats == {
        "errors_total": 1,
        "files_removed": {
            "at": "2025-03-31T12:00:00Z",
            "failed_at": "2025-02-28T12:00:00Z",
            "retention_days": 30,
            "fields": list(EXCEL_FIELDS),
            "objects": 11,
        },
    }
    assert swept.updated_at > NOW - 31 * DAY
    filed = await _get(private_pool, load_failed.batch_id)
    assert filed.stats["files_removed"] == {
        "at": "2025-03-31T12:00:00Z",
        "failed_at": "2025-02-19T12:00:00Z",
        "retention_days": 30,
        "fields": [],
        "objects": 5,
    }
    assert (await _get(private_pool, recent.batch_id)).stats == {"errors_total": 1}
    assert (await _get(private_pool, completed.batch_id)).stats == {"errors_total": 1}


async def test_the_retention_is_counted_from_the_failure_and_its_exact_end_is_still_kept(
    private_pool: asyncpg.Pool, storage: Storage
) -> None:
    tenant = await _tenant(private_pool)
    on_the_day = await _batch(private_pool, storage, tenant, status=BatchStatus.FAILED, updated_at=NOW - 7 * DAY)
    just_before = await _batch(
        private_pool, storage, tenant, status=BatchStatus.FAILED, updated_at=NOW - 7 * DAY - timedelta(microseconds=1)
    )

    assert await sweep_failed(private_pool, storage, retention_days=7, now=NOW) == 1
    assert await _keys(storage, tenant) == sorted([*on_the_day.files, *on_the_day.staged])
    assert "files_removed" in (await _get(private_pool, just_before.batch_id)).stats
    assert "files_removed" not in (await _get(private_pool, on_the_day.batch_id)).stats

    assert await sweep_failed(private_pool, storage, retention_days=7, now=NOW + timedelta(microseconds=1)) == 1
    assert await _keys(storage, tenant) == []


async def test_a_sweep_is_idempotent_and_never_redoes_a_batch(private_pool: asyncpg.Pool, storage: Storage) -> None:
    tenant = await _tenant(private_pool)
    old = await _batch(private_pool, storage, tenant, status=BatchStatus.FAILED, updated_at=NOW - 60 * DAY)
    assert await sweep_failed(private_pool, storage, retention_days=30, now=NOW) == 1
    first = await _get(private_pool, old.batch_id)

    assert await sweep_failed(private_pool, storage, retention_days=30, now=NOW + DAY) == 0
    again = await _get(private_pool, old.batch_id)
    assert again.stats == first.stats
    assert again.updated_at == first.updated_at
    assert await _keys(storage, tenant) == []


async def test_a_sweep_is_bounded_and_takes_the_oldest_failures_first(
    private_pool: asyncpg.Pool, storage: Storage
) -> None:
    tenant = await _tenant(private_pool)
    stored = [
        await _batch(
            private_pool, storage, tenant, status=BatchStatus.FAILED, updated_at=NOW - days * DAY, staged=False
        )
        for days in (50, 70, 60)
    ]
    assert await sweep_failed(private_pool, storage, retention_days=30, now=NOW, limit=2) == 2
    assert await _keys(storage, tenant) == stored[0].files  # the most recent failure waits
    assert await sweep_failed(private_pool, storage, retention_days=30, now=NOW, limit=2) == 1
    assert await sweep_failed(private_pool, storage, retention_days=30, now=NOW, limit=2) == 0
    assert await _keys(storage, tenant) == []


async def test_concurrent_sweeps_share_the_work_and_sweep_each_batch_once(
    private_pool: asyncpg.Pool, storage: Storage
) -> None:
    tenant = await _tenant(private_pool)
    stored = [
        await _batch(private_pool, storage, tenant, status=BatchStatus.FAILED, updated_at=NOW - 40 * DAY, staged=False)
        for _ in range(6)
    ]
    counts = await asyncio.gather(*(sweep_failed(private_pool, storage, retention_days=30, now=NOW) for _ in range(3)))
    assert sum(counts) == 6
    assert await _keys(storage, tenant) == []
    for s in stored:
        assert (await _get(private_pool, s.batch_id)).stats["files_removed"]["objects"] == 5


async def test_a_sweep_refuses_a_naive_time_or_a_retention_under_a_day(
    private_pool: asyncpg.Pool, storage: Storage
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await sweep_failed(private_pool, storage, retention_days=30, now=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="at least 1"):
        await sweep_failed(private_pool, storage, retention_days=0)


def test_the_failed_retention_defaults_to_30_days_and_is_at_least_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().failed_retention_days == 30
    monkeypatch.setenv("COMPTAFLOW_FAILED_RETENTION_DAYS", "7")
    assert Settings().failed_retention_days == 7
    monkeypatch.setenv("COMPTAFLOW_FAILED_RETENTION_DAYS", "0")
    with pytest.raises(ValidationError):
        Settings()


async def test_the_sweeper_sweeps_at_start_and_stops_when_asked(private_pool: asyncpg.Pool, storage: Storage) -> None:
    tenant = await _tenant(private_pool)
    now = datetime.now(UTC)
    old = await _batch(private_pool, storage, tenant, status=BatchStatus.FAILED, updated_at=now - 31 * DAY)
    recent = await _batch(private_pool, storage, tenant, status=BatchStatus.FAILED, updated_at=now - 29 * DAY)
    sweeper = Sweeper(private_pool, storage, retention_days=30, interval=3600)
    await sweeper.start()
    try:
        for _ in range(200):
            if sweeper.passes:
                break
            await asyncio.sleep(0.05)
    finally:
        await sweeper.stop()
    assert sweeper.passes == 1  # the first pass, at start; the next would come an hour later
    assert "files_removed" in (await _get(private_pool, old.batch_id)).stats
    assert "files_removed" not in (await _get(private_pool, recent.batch_id)).stats
    assert await _keys(storage, tenant) == sorted(recent.files + recent.staged)
