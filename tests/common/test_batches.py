"""The batch state machine and the `batches`/`batch_files`/`tenants` tables, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import uuid
from datetime import date

import asyncpg
import pytest

from comptaflow.common import batches
from comptaflow.common.batches import BatchFile, get_batch, insert_batch, list_batches, record_progress, transition
from comptaflow.common.contracts import BatchKind, BatchStatus
from comptaflow.common.tenants import TenantExistsError, create_tenant, get_tenant, list_tenants

from .support import blocked_by, tenant_id

pytestmark = pytest.mark.infra

S = BatchStatus
ORDER = [S.PENDING, S.VALIDATING, S.VALIDATED, S.PROCESSING, S.COMPLETED]

# Written out from the specification (docs/api.md, Statuses), not derived from the module's own table:
# forward one step, FAILED from any unfinished status, and VALIDATING/PROCESSING again so a worker can
# take over a redelivered message. Everything else is refused.
ALLOWED: set[tuple[BatchStatus, BatchStatus]] = {
    (S.PENDING, S.VALIDATING),
    (S.PENDING, S.FAILED),
    (S.VALIDATING, S.VALIDATING),
    (S.VALIDATING, S.VALIDATED),
    (S.VALIDATING, S.FAILED),
    (S.VALIDATED, S.PROCESSING),
    (S.VALIDATED, S.FAILED),
    (S.PROCESSING, S.PROCESSING),
    (S.PROCESSING, S.COMPLETED),
    (S.PROCESSING, S.FAILED),
}
# The transitions that bring a new batch (PENDING) to each status.
PATH: dict[BatchStatus, list[BatchStatus]] = {
    S.PENDING: [],
    S.VALIDATING: [S.VALIDATING],
    S.VALIDATED: [S.VALIDATING, S.VALIDATED],
    S.PROCESSING: [S.VALIDATING, S.VALIDATED, S.PROCESSING],
    S.COMPLETED: [S.VALIDATING, S.VALIDATED, S.PROCESSING, S.COMPLETED],
    S.FAILED: [S.FAILED],
}


def a_file(field: str, content: bytes, tenant: str, batch_id: uuid.UUID) -> BatchFile:
    return BatchFile(
        field=field,
        filename=f"{field}.xlsx",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        object_key=f"{tenant}/incoming/{batch_id}/{field}.xlsx",
    )


async def new_batch(conn: asyncpg.Connection, *, files: list[BatchFile] | None = None) -> batches.Batch:
    tenant = tenant_id()
    await create_tenant(conn, tenant, "Test tenant")
    batch_id = uuid.uuid4()
    return await insert_batch(
        conn,
        batch_id=batch_id,
        tenant_id=tenant,
        kind=BatchKind.EXCEL,
        files=files if files is not None else [a_file("fec", b"x", tenant, batch_id)],
        auto_load=False,
        created_by="alice",
    )


async def batch_in(conn: asyncpg.Connection, status: BatchStatus) -> batches.Batch:
    batch = await new_batch(conn)
    for step in PATH[status]:
        moved = await transition(conn, batch.id, step, stage=f"to-{step.value.lower()}", progress=0.5)
        assert moved is not None
    current = await get_batch(conn, batch.id)
    assert current is not None
    assert current.status is status
    assert current.status_seq == len(PATH[status])
    return current


def test_the_specified_table_never_goes_backwards_and_final_states_are_final() -> None:
    for source, target in ALLOWED:
        assert target is S.FAILED or ORDER.index(target) >= ORDER.index(source)
        assert not source.is_final
    assert {t for s, t in ALLOWED if s is S.COMPLETED or s is S.FAILED} == set()


@pytest.mark.parametrize(
    ("source", "target"), list(itertools.product(S, S)), ids=lambda s: s.value if isinstance(s, S) else str(s)
)
async def test_transition(pool: asyncpg.Pool, source: BatchStatus, target: BatchStatus) -> None:
    async with pool.acquire() as conn:
        before = await batch_in(conn, source)
        moved = await transition(
            conn,
            before.id,
            target,
            stage="next-stage",
            progress=0.75,
            period=(date(2024, 1, 1), date(2024, 12, 31)),
            errors=[{"code": "X", "message": "m"}],
            stats={"rows": 12},
        )
        after = await get_batch(conn, before.id)
    assert after is not None
    if (source, target) in ALLOWED:
        assert moved is not None
        assert (moved.status, moved.stage, moved.progress, moved.status_seq) == (
            target,
            "next-stage",
            0.75,
            before.status_seq + 1,
        )
        assert (after.status, after.status_seq, after.period_start, after.period_end) == (
            target,
            before.status_seq + 1,
            date(2024, 1, 1),
            date(2024, 12, 31),
        )
        assert (after.errors, after.stats, after.warnings) == ([{"code": "X", "message": "m"}], {"rows": 12}, [])
        assert after.updated_at >= before.updated_at
    else:
        assert moved is None
        assert after == before  # not a single column changed, not even updated_at or status_seq


async def test_transition_of_an_unknown_batch_is_none(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await transition(conn, uuid.uuid4(), S.VALIDATING, stage="x", progress=0) is None


async def test_transition_keeps_period_errors_and_stats_it_is_not_given(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        batch = await batch_in(conn, S.VALIDATING)
        await transition(
            conn, batch.id, S.VALIDATED, stage="validated", progress=1, period=(date(2024, 1, 1), date(2024, 3, 31))
        )
        loaded = await transition(conn, batch.id, S.PROCESSING, stage="loading", progress=0)
    assert loaded is not None
    assert (loaded.period_start, loaded.period_end, loaded.errors, loaded.stats) == (
        date(2024, 1, 1),
        date(2024, 3, 31),
        [],
        {},
    )


async def test_of_two_concurrent_final_transitions_only_the_first_committed_applies(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        batch = await batch_in(conn, S.PROCESSING)
    async with pool.acquire() as a, pool.acquire() as b:
        transaction = a.transaction()
        await transaction.start()
        completed = await transition(a, batch.id, S.COMPLETED, stage="loaded", progress=1)
        # The second worker's guarded UPDATE waits for the row lock, then re-checks the status.
        failing = asyncio.create_task(transition(b, batch.id, S.FAILED, stage="failed", progress=0))
        await blocked_by(pool, b, a)
        assert not failing.done()
        await transaction.commit()
        failed = await asyncio.wait_for(failing, 5)
        final = await get_batch(a, batch.id)
    assert completed is not None
    assert failed is None
    assert final is not None
    assert (final.status, final.stage, final.status_seq) == (S.COMPLETED, "loaded", batch.status_seq + 1)


async def test_record_progress_never_decreases_and_bumps_the_sequence(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        batch = await batch_in(conn, S.VALIDATING)
        seqs = [
            await record_progress(conn, batch.id, expect=S.VALIDATING, stage=stage, progress=progress)
            for stage, progress in [("reading", 0.4), ("checking", 0.2), ("balancing", 0.9)]
        ]
        after_two = await get_batch(conn, batch.id)
    assert seqs == [batch.status_seq + 1, batch.status_seq + 2, batch.status_seq + 3]
    assert after_two is not None
    assert (after_two.stage, after_two.progress, after_two.status, after_two.status_seq) == (
        "balancing",
        0.9,
        S.VALIDATING,
        batch.status_seq + 3,
    )


async def test_record_progress_keeps_the_highest_progress_seen(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        batch = await batch_in(conn, S.PROCESSING)
        await record_progress(conn, batch.id, expect=S.PROCESSING, stage="loading", progress=0.8)
        await record_progress(conn, batch.id, expect=S.PROCESSING, stage="indexing", progress=0.3)
        after = await get_batch(conn, batch.id)
    assert after is not None
    assert (after.stage, after.progress) == ("indexing", 0.8)


@pytest.mark.parametrize("actual", [S.PENDING, S.VALIDATED, S.COMPLETED, S.FAILED])
async def test_record_progress_is_ignored_when_the_batch_moved_on(pool: asyncpg.Pool, actual: BatchStatus) -> None:
    async with pool.acquire() as conn:
        batch = await batch_in(conn, actual)
        seq = await record_progress(conn, batch.id, expect=S.VALIDATING, stage="late", progress=1.0)
        after = await get_batch(conn, batch.id)
    assert seq is None
    assert after == batch


async def test_insert_batch_stores_its_files_and_get_batch_returns_them(pool: asyncpg.Pool) -> None:
    tenant, batch_id = tenant_id(), uuid.uuid4()
    files = [
        a_file(field, content, tenant, batch_id)
        for field, content in [("plan_tiers", b"tiers"), ("code_journal", b"journaux"), ("plan_comptes", b"pcg")]
    ]
    async with pool.acquire() as conn:
        await create_tenant(conn, tenant, "ACME SARL")
        inserted = await insert_batch(
            conn,
            batch_id=batch_id,
            tenant_id=tenant,
            kind=BatchKind.EXCEL,
            files=files,
            auto_load=True,
            created_by="alice",
            options={"separator": ";"},
        )
        fetched = await get_batch(conn, batch_id)
    assert fetched is not None
    assert (inserted.status, inserted.stage, inserted.progress, inserted.status_seq) == (S.PENDING, "uploaded", 0.0, 0)
    assert inserted.files == tuple(files)  # as given
    assert fetched.files == tuple(sorted(files, key=lambda f: f.field))  # ordered by field
    assert fetched.files[0] == BatchFile(
        field="code_journal",
        filename="code_journal.xlsx",
        size=8,
        sha256=hashlib.sha256(b"journaux").hexdigest(),
        object_key=f"{tenant}/incoming/{batch_id}/code_journal.xlsx",
    )
    assert (fetched.tenant_id, fetched.kind, fetched.auto_load, fetched.created_by, fetched.options) == (
        tenant,
        BatchKind.EXCEL,
        True,
        "alice",
        {"separator": ";"},
    )
    assert (fetched.period_start, fetched.period_end, fetched.errors, fetched.warnings, fetched.stats) == (
        None,
        None,
        [],
        [],
        {},
    )
    assert dataclasses.replace(fetched, files=()) == dataclasses.replace(inserted, files=())


async def test_get_batch_of_an_unknown_id_is_none(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await get_batch(conn, uuid.uuid4()) is None


async def test_a_batch_and_its_files_are_inserted_atomically(pool: asyncpg.Pool) -> None:
    tenant, batch_id = tenant_id(), uuid.uuid4()
    bad = BatchFile(field="fec", filename="fec.txt", size=0, sha256="0" * 64, object_key="k")  # size must be > 0
    async with pool.acquire() as conn:
        await create_tenant(conn, tenant, "T")
        with pytest.raises(asyncpg.CheckViolationError):
            async with conn.transaction():
                await insert_batch(
                    conn,
                    batch_id=batch_id,
                    tenant_id=tenant,
                    kind=BatchKind.FEC,
                    files=[bad],
                    auto_load=False,
                    created_by=None,
                )
        assert await get_batch(conn, batch_id) is None


async def test_list_batches_pages_newest_first_with_their_files(pool: asyncpg.Pool) -> None:
    tenant, other = tenant_id(), tenant_id()
    async with pool.acquire() as conn:
        await create_tenant(conn, tenant, "T")
        await create_tenant(conn, other, "O")
        created: list[batches.Batch] = []
        for i in range(5):
            batch_id = uuid.uuid4()
            created.append(
                await insert_batch(
                    conn,
                    batch_id=batch_id,
                    tenant_id=tenant,
                    kind=BatchKind.FEC,
                    files=[a_file("fec", f"content {i}".encode(), tenant, batch_id)],
                    auto_load=False,
                    created_by=None,
                )
            )
        # Two batches created in one transaction share created_at: the id breaks the tie.
        async with conn.transaction():
            for _ in range(2):
                created.append(
                    await insert_batch(
                        conn,
                        batch_id=uuid.uuid4(),
                        tenant_id=tenant,
                        kind=BatchKind.EXCEL,
                        files=[],
                        auto_load=False,
                        created_by=None,
                    )
                )
        await insert_batch(
            conn, batch_id=uuid.uuid4(), tenant_id=other, kind=BatchKind.FEC, files=[], auto_load=False, created_by=None
        )

        pages: list[list[batches.Batch]] = []
        before = None
        while page := await list_batches(conn, tenant, limit=3, before=before):
            pages.append(page)
            before = (page[-1].created_at, page[-1].id)

    expected = sorted(created, key=lambda b: (b.created_at, b.id), reverse=True)
    assert [len(p) for p in pages] == [3, 3, 1]
    listed = [b for p in pages for b in p]
    assert [b.id for b in listed] == [b.id for b in expected]
    assert {b.id: b.files for b in listed} == {b.id: b.files for b in created}
    assert all(b.tenant_id == tenant for b in listed)


async def test_tenants_create_get_list_and_duplicate(pool: asyncpg.Pool) -> None:
    first, second = sorted([tenant_id(), tenant_id()])
    async with pool.acquire() as conn:
        created = await create_tenant(conn, first, "ACME SARL")
        await create_tenant(conn, second, "Other SAS")
        with pytest.raises(TenantExistsError, match=first):
            await create_tenant(conn, first, "Again")
        fetched = await get_tenant(conn, first)
        missing = await get_tenant(conn, tenant_id())
        only = await list_tenants(conn, [second, first, "not-there"])
        everyone = await list_tenants(conn, None)
    assert fetched == created
    assert (created.id, created.name) == (first, "ACME SARL")
    assert missing is None
    assert [(t.id, t.name) for t in only] == [(first, "ACME SARL"), (second, "Other SAS")]
    assert {first, second} <= {t.id for t in everyone}
    assert [t.id for t in everyone] == sorted(t.id for t in everyone)
