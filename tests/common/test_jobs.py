"""The job state machine and the `jobs` table, on a real PostgreSQL; the reporter that announces jobs."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from comptaflow.common import jobs
from comptaflow.common.batches import AttemptsExhausted
from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.contracts import JobStatus, StatusEvent
from comptaflow.common.db import Conn
from comptaflow.common.errors import PermanentError
from comptaflow.common.jobs import JobAttemptsExhausted, claim, create_job, finish, get_job, list_jobs, record_progress
from comptaflow.common.progress import JobReporter, mark_job_failed
from comptaflow.common.tenants import create_tenant

from .support import blocked_by, tenant_id

pytestmark = pytest.mark.infra

S = JobStatus
LIMIT = 3
SYNC = "pennylane.sync"

# Written out from the specification (docs/api.md, Jobs), not derived from the module's own table:
# PENDING → RUNNING → SUCCEEDED, FAILED from PENDING or RUNNING, and RUNNING again so that a worker
# can take over a job whose previous worker died. Everything else is refused.
ALLOWED: set[tuple[JobStatus, JobStatus]] = {
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.FAILED),
    (S.RUNNING, S.RUNNING),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
}
ABANDONED = (
    "the pennylane.sync job was started 3 times without finishing (the worker stopped each time); the job is abandoned"
)


async def new_tenant(conn: Conn) -> str:
    tenant = tenant_id()
    await create_tenant(conn, tenant, "Test tenant")
    return tenant


async def new_job(conn: Conn, tenant: str | None = None, kind: str = SYNC) -> jobs.Job:
    job, created = await create_job(conn, tenant or await new_tenant(conn), kind, {"mode": "full"})
    assert created
    return job


async def move(conn: Conn, job_id: uuid.UUID, target: JobStatus) -> jobs.Job | None:
    """Ask for `target` the way a worker does: `claim` for RUNNING, `finish` for a final status."""
    if target is S.RUNNING:
        return await claim(conn, job_id, stage="started", progress=0.1, limit=LIMIT)
    return await finish(conn, job_id, target, stats={"rows": 7}, errors=[{"code": "X", "message": "m"}], message="end")


async def job_in(conn: Conn, status: JobStatus) -> jobs.Job:
    job = await new_job(conn)
    path = {S.PENDING: [], S.RUNNING: [S.RUNNING], S.SUCCEEDED: [S.RUNNING, S.SUCCEEDED], S.FAILED: [S.FAILED]}
    for step in path[status]:
        assert await move(conn, job.id, step) is not None
    current = await get_job(conn, job.id)
    assert current is not None
    assert (current.status, current.status_seq) == (status, len(path[status]))
    return current


def test_the_specified_table_never_goes_backwards_and_final_states_are_final() -> None:
    order = [S.PENDING, S.RUNNING, S.SUCCEEDED]
    for source, target in ALLOWED:
        assert target is S.FAILED or order.index(target) >= order.index(source)
        assert not source.is_final
    assert {(s, t) for s, targets in jobs.TRANSITIONS.items() for t in targets} == ALLOWED


async def test_a_new_job_is_pending_with_its_params(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        tenant = await new_tenant(conn)
        job, created = await create_job(conn, tenant, "payroll.import", {"period": "2025-01", "trigger": "manual"})
        fetched = await get_job(conn, job.id)
    assert created is True
    assert fetched == job
    assert (job.tenant_id, job.kind, job.status, job.stage, job.progress, job.message) == (
        tenant,
        "payroll.import",
        S.PENDING,
        "queued",
        0.0,
        "",
    )
    assert (job.params, job.stats, job.errors, job.attempts, job.status_seq, job.idempotency_key) == (
        {"period": "2025-01", "trigger": "manual"},
        {},
        [],
        0,
        0,
        None,
    )
    assert (job.started_at, job.finished_at) == (None, None)
    assert job.updated_at == job.created_at


async def test_get_job_of_an_unknown_id_is_none(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await get_job(conn, uuid.uuid4()) is None


async def test_a_job_of_an_unknown_tenant_or_kind_is_refused(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await create_job(conn, tenant_id(), SYNC, {})
        tenant = await new_tenant(conn)
        with pytest.raises(asyncpg.CheckViolationError):
            await create_job(conn, tenant, "Pennylane Sync", {})


@pytest.mark.parametrize(
    ("source", "target"),
    list(itertools.product(S, [S.RUNNING, S.SUCCEEDED, S.FAILED])),
    ids=lambda s: s.value if isinstance(s, S) else str(s),
)
async def test_transition(pool: asyncpg.Pool, source: JobStatus, target: JobStatus) -> None:
    async with pool.acquire() as conn:
        before = await job_in(conn, source)
        moved = await move(conn, before.id, target)
        after = await get_job(conn, before.id)
    assert after is not None
    if (source, target) not in ALLOWED:
        assert moved is None
        assert after == before  # not a single column changed, not even updated_at or status_seq
        return
    assert moved == after
    assert (after.status, after.status_seq) == (target, before.status_seq + 1)
    assert after.updated_at >= before.updated_at
    if target is S.RUNNING:
        assert (after.stage, after.progress, after.attempts) == ("started", 0.1, before.attempts + 1)
        assert after.started_at is not None
        assert after.finished_at is None
    else:
        assert (after.stage, after.progress, after.message) == (target.value.lower(), 1.0, "end")
        assert (after.stats, after.errors) == ({"rows": 7}, [{"code": "X", "message": "m"}])
        assert after.finished_at is not None
        assert after.attempts == before.attempts  # a final status keeps the count


@pytest.mark.parametrize("target", [S.SUCCEEDED, S.FAILED])
async def test_a_finish_applied_twice_is_a_no_op_the_second_time(pool: asyncpg.Pool, target: JobStatus) -> None:
    async with pool.acquire() as conn:
        job = await job_in(conn, S.RUNNING)
        first = await finish(conn, job.id, target, stats={"rows": 1}, message="first")
        again = await finish(conn, job.id, target, stats={"rows": 2}, message="redelivered")
        after = await get_job(conn, job.id)
    assert first is not None
    assert again is None
    assert after == first
    assert (after.stats, after.message, after.status_seq) == ({"rows": 1}, "first", job.status_seq + 1)


async def test_finish_keeps_what_it_is_not_given(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        job = await job_in(conn, S.RUNNING)
        await record_progress(conn, job.id, expect=S.RUNNING, stage="customers", progress=0.5, message="customers")
        done = await finish(conn, job.id, S.SUCCEEDED)
    assert done is not None
    assert (done.status, done.stage, done.progress, done.message, done.stats, done.errors) == (
        S.SUCCEEDED,
        "succeeded",
        1.0,
        "customers",
        {},
        [],
    )


@pytest.mark.parametrize("status", [S.PENDING, S.RUNNING])
async def test_finish_only_finishes(pool: asyncpg.Pool, status: JobStatus) -> None:
    async with pool.acquire() as conn:
        job = await job_in(conn, S.RUNNING)
        with pytest.raises(ValueError, match=f"not {status.value}"):
            await finish(conn, job.id, status)
        assert await get_job(conn, job.id) == job


async def test_transitions_of_an_unknown_job_are_none(pool: asyncpg.Pool) -> None:
    unknown = uuid.uuid4()
    async with pool.acquire() as conn:
        assert await claim(conn, unknown, stage="x", progress=0, limit=LIMIT) is None
        assert await finish(conn, unknown, S.FAILED) is None
        assert await record_progress(conn, unknown, expect=S.RUNNING, stage="x", progress=0) is None


@pytest.mark.parametrize(
    ("source", "target"), list(itertools.product(S, S)), ids=lambda s: s.value if isinstance(s, S) else str(s)
)
async def test_the_table_itself_refuses_a_status_going_backwards(
    pool: asyncpg.Pool, source: JobStatus, target: JobStatus
) -> None:
    """Whoever writes the row (another module, an operator's UPDATE), the trigger keeps the machine."""
    async with pool.acquire() as conn:
        job = await job_in(conn, source)
        update = "UPDATE jobs SET status = $2, status_seq = status_seq + 1 WHERE id = $1"
        if (source, target) in ALLOWED or source is target:
            await conn.execute(update, job.id, target.value)
            after = await get_job(conn, job.id)
            assert after is not None
            assert after.status is target
        else:
            with pytest.raises(asyncpg.CheckViolationError, match=f"from {source.value} to {target.value}"):
                await conn.execute(update, job.id, target.value)
            assert await get_job(conn, job.id) == job


async def test_the_table_refuses_a_sequence_going_backwards(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        job = await job_in(conn, S.RUNNING)
        with pytest.raises(asyncpg.CheckViolationError, match="status_seq may not decrease"):
            await conn.execute("UPDATE jobs SET status_seq = 0 WHERE id = $1", job.id)
        assert await get_job(conn, job.id) == job


async def test_of_two_concurrent_finishes_only_the_first_committed_applies(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        job = await job_in(conn, S.RUNNING)
    async with pool.acquire() as a, pool.acquire() as b:
        transaction = a.transaction()
        await transaction.start()
        succeeded = await finish(a, job.id, S.SUCCEEDED, message="done")
        # The second worker's guarded UPDATE waits for the row lock, then re-checks the status.
        failing = asyncio.create_task(finish(b, job.id, S.FAILED, message="too late"))
        await blocked_by(pool, b, a)
        assert not failing.done()
        await transaction.commit()
        failed = await asyncio.wait_for(failing, 5)
        final = await get_job(a, job.id)
    assert succeeded is not None
    assert failed is None
    assert final is not None
    assert (final.status, final.message, final.status_seq) == (S.SUCCEEDED, "done", job.status_seq + 1)


async def test_each_claim_counts_an_attempt_and_a_take_over_keeps_the_start(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        job = await new_job(conn)
        first = await claim(conn, job.id, stage="started", progress=0.05, limit=LIMIT)
        await asyncio.sleep(0.01)
        # The first worker died: the redelivered message takes the job over, and that counts too.
        again = await claim(conn, job.id, stage="restarted", progress=0.02, limit=LIMIT)
    assert first is not None
    assert again is not None
    assert (first.status, first.stage, first.progress, first.attempts, first.status_seq) == (
        S.RUNNING,
        "started",
        0.05,
        1,
        1,
    )
    assert (again.status, again.stage, again.progress, again.attempts, again.status_seq) == (
        S.RUNNING,
        "restarted",
        0.02,
        2,
        2,
    )
    assert first.started_at is not None
    assert again.started_at == first.started_at
    assert again.updated_at > first.updated_at


async def test_the_count_survives_the_claiming_connection_dying(pool: asyncpg.Pool, pg_dsn: str) -> None:
    async with pool.acquire() as conn:
        job = await new_job(conn)
    worker = await asyncpg.connect(pg_dsn)
    await worker.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    claimed = await claim(worker, job.id, stage="started", progress=0.1, limit=LIMIT)
    assert claimed is not None
    assert claimed.attempts == 1
    worker.terminate()  # the process is killed: no cleanup, the socket just closes
    async with pool.acquire() as conn:
        again = await claim(conn, job.id, stage="restarted", progress=0, limit=LIMIT)
    assert again is not None
    assert again.attempts == 2


async def test_a_claim_past_the_limit_fails_the_job_with_the_reason(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        job = await new_job(conn)
        for _ in range(LIMIT):
            assert await claim(conn, job.id, stage="started", progress=0.1, limit=LIMIT) is not None
        with pytest.raises(JobAttemptsExhausted) as raised:
            await claim(conn, job.id, stage="started", progress=0.1, limit=LIMIT)
        after = await get_job(conn, job.id)
        # Redelivered once more: the job is finished, nothing to claim and nothing raised.
        assert await claim(conn, job.id, stage="started", progress=0.1, limit=LIMIT) is None
        assert await get_job(conn, job.id) == after
    assert isinstance(raised.value, AttemptsExhausted)  # handled like a batch's
    assert isinstance(raised.value, PermanentError)  # dead-lettered, never retried
    assert str(raised.value) == ABANDONED
    assert raised.value.job == after
    assert after is not None
    assert (after.status, after.stage, after.progress, after.attempts, after.status_seq) == (
        S.FAILED,
        "failed",
        1.0,
        LIMIT,
        LIMIT + 1,
    )
    assert (after.message, after.errors) == (ABANDONED, [{"code": "INTERNAL_ERROR", "message": ABANDONED}])
    assert after.finished_at is not None


async def test_record_progress_never_decreases_and_bumps_the_sequence(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        job = await job_in(conn, S.RUNNING)
        seqs = [
            await record_progress(conn, job.id, expect=S.RUNNING, stage=stage, progress=progress, message=message)
            for stage, progress, message in [
                ("customers", 0.4, "customers: 120 rows"),
                ("invoices", 0.2, None),
                ("ledger", 0.9, "ledger entry lines"),
            ]
        ]
        after = await get_job(conn, job.id)
    assert seqs == [job.status_seq + 1, job.status_seq + 2, job.status_seq + 3]
    assert after is not None
    assert (after.status, after.stage, after.progress, after.message, after.status_seq) == (
        S.RUNNING,
        "ledger",
        0.9,
        "ledger entry lines",
        job.status_seq + 3,
    )


async def test_record_progress_keeps_the_highest_progress_and_the_message_it_is_not_given(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        job = await job_in(conn, S.RUNNING)
        await record_progress(conn, job.id, expect=S.RUNNING, stage="customers", progress=0.8, message="customers")
        await record_progress(conn, job.id, expect=S.RUNNING, stage="invoices", progress=0.3)
        after = await get_job(conn, job.id)
    assert after is not None
    assert (after.stage, after.progress, after.message) == ("invoices", 0.8, "customers")


@pytest.mark.parametrize("actual", [S.PENDING, S.SUCCEEDED, S.FAILED])
async def test_record_progress_is_ignored_when_the_job_moved_on(pool: asyncpg.Pool, actual: JobStatus) -> None:
    async with pool.acquire() as conn:
        job = await job_in(conn, actual)
        seq = await record_progress(conn, job.id, expect=S.RUNNING, stage="late", progress=1.0, message="late")
        after = await get_job(conn, job.id)
    assert seq is None
    assert after == job


@pytest.mark.parametrize("expect", [S.SUCCEEDED, S.FAILED])
async def test_a_finished_job_records_no_progress(pool: asyncpg.Pool, expect: JobStatus) -> None:
    async with pool.acquire() as conn:
        job = await job_in(conn, expect)
        with pytest.raises(ValueError, match="a finished job records no progress"):
            await record_progress(conn, job.id, expect=expect, stage="late", progress=1.0)
        assert await get_job(conn, job.id) == job


async def test_the_same_idempotency_key_gives_the_same_job(pool: asyncpg.Pool) -> None:
    key = "schedule:2025-01-31T02:00"
    async with pool.acquire() as conn:
        tenant, other = await new_tenant(conn), await new_tenant(conn)
        first, first_created = await create_job(conn, tenant, SYNC, {"mode": "incremental"}, idempotency_key=key)
        assert await claim(conn, first.id, stage="started", progress=0.1, limit=LIMIT) is not None
        # Asked again, even with other params and while it runs: the same job, as it stands.
        again, again_created = await create_job(conn, tenant, SYNC, {"mode": "full"}, idempotency_key=key)
        other_kind, other_kind_created = await create_job(conn, tenant, "payroll.import", {}, idempotency_key=key)
        other_tenant, other_tenant_created = await create_job(conn, other, SYNC, {}, idempotency_key=key)
        keyless = [await create_job(conn, tenant, SYNC, {}) for _ in range(2)]
        count = await conn.fetchval("SELECT count(*) FROM jobs WHERE tenant_id = $1", tenant)
    assert (first_created, again_created, other_kind_created, other_tenant_created) == (True, False, True, True)
    assert again.id == first.id
    assert (again.status, again.params, again.idempotency_key) == (S.RUNNING, {"mode": "incremental"}, key)
    assert len({first.id, other_kind.id, other_tenant.id, keyless[0][0].id, keyless[1][0].id}) == 5
    assert [created for _, created in keyless] == [True, True]
    assert count == 4


async def test_two_schedulers_asking_at_once_get_one_job(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        tenant = await new_tenant(conn)
    async with pool.acquire() as a, pool.acquire() as b:
        transaction = a.transaction()
        await transaction.start()
        first = await create_job(a, tenant, SYNC, {}, idempotency_key="nightly")
        # The second insert waits for the first transaction, then finds the key taken.
        second = asyncio.create_task(create_job(b, tenant, SYNC, {}, idempotency_key="nightly"))
        await blocked_by(pool, b, a)
        assert not second.done()
        await transaction.commit()
        found = await asyncio.wait_for(second, 5)
    assert (first[1], found[1]) == (True, False)
    assert found[0] == first[0]


async def test_list_jobs_filters_and_pages_newest_first(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        tenant, other = await new_tenant(conn), await new_tenant(conn)
        created = [await new_job(conn, tenant, kind) for kind in [SYNC, "payroll.import", SYNC, SYNC]]
        # Two jobs created in one transaction share created_at: the id breaks the tie.
        async with conn.transaction():
            created += [await new_job(conn, tenant, "payroll.import") for _ in range(2)]
        await new_job(conn, other)
        sync_ids = [j.id for j in created if j.kind == SYNC]
        assert await claim(conn, sync_ids[0], stage="started", progress=0.1, limit=LIMIT) is not None
        assert await finish(conn, sync_ids[1], S.FAILED) is not None

        async def pages(**filters: Any) -> list[list[uuid.UUID]]:
            found: list[list[uuid.UUID]] = []
            after: tuple[datetime, uuid.UUID] | None = None
            while page := await list_jobs(conn, tenant, limit=2, after=after, **filters):
                found.append([j.id for j in page])
                after = (page[-1].created_at, page[-1].id)
            return found

        everything = await pages()
        syncs = await pages(kind=SYNC)
        pending = await pages(status=S.PENDING)
        pending_syncs = await pages(kind=SYNC, status=S.PENDING)
        running = await list_jobs(conn, tenant, status=S.RUNNING, limit=10)
        nothing = await list_jobs(conn, tenant, kind="refresh", limit=10)
    newest_first = [j.id for j in sorted(created, key=lambda j: (j.created_at, j.id), reverse=True)]
    assert everything == [newest_first[0:2], newest_first[2:4], newest_first[4:6]]
    assert syncs == [[sync_ids[2], sync_ids[1]], [sync_ids[0]]]
    assert [i for p in pending for i in p] == [i for i in newest_first if i not in (sync_ids[0], sync_ids[1])]
    assert pending_syncs == [[sync_ids[2]]]
    assert [(j.id, j.status) for j in running] == [(sync_ids[0], S.RUNNING)]
    assert nothing == []


class RecordingBus(MemoryBus):
    """The in-process bus, keeping every status event it is handed."""

    def __init__(self) -> None:
        super().__init__(service="test")
        self.statuses: list[StatusEvent] = []

    async def publish_status(self, event: StatusEvent) -> None:
        await super().publish_status(event)
        self.statuses.append(event)


@pytest.fixture
async def bus() -> AsyncIterator[RecordingBus]:
    the_bus = RecordingBus()
    await the_bus.connect()
    yield the_bus
    await the_bus.close()


def seen(bus: RecordingBus) -> list[tuple[str, str, float, str, int]]:
    return [(e.status, e.stage, e.progress, e.message, e.seq) for e in bus.statuses]


async def test_the_reporter_announces_each_recorded_change_with_the_rows_seq(
    pool: asyncpg.Pool, bus: RecordingBus
) -> None:
    async with pool.acquire() as conn:
        job = await new_job(conn)
    reporter = JobReporter(pool=pool, bus=bus, service="pennylane-sync", tenant_id=job.tenant_id, job_id=job.id)
    claimed = await reporter.claim(stage="started", progress=0.05, limit=LIMIT, message="sync started")
    assert await reporter.stage("customers", 0.5, message="customers: 12 rows") == 2
    done = await reporter.finish(S.SUCCEEDED, stats={"rows": 12}, message="12 rows synced")
    # Redelivered: nothing is recorded, so nothing is announced.
    assert await reporter.finish(S.SUCCEEDED, message="again") is None
    assert await reporter.stage("late", 0.9) is None
    assert await reporter.claim(stage="started", progress=0.05, limit=LIMIT) is None
    assert claimed is not None
    assert claimed.message == "sync started"  # recorded on the row, as announced
    assert done is not None
    assert seen(bus) == [
        ("RUNNING", "started", 0.05, "sync started", 1),
        ("RUNNING", "customers", 0.5, "customers: 12 rows", 2),
        ("SUCCEEDED", "succeeded", 1.0, "12 rows synced", 3),
    ]
    assert {(e.tenant_id, e.job_id, e.batch_id, e.service) for e in bus.statuses} == {
        (job.tenant_id, job.id, None, "pennylane-sync")
    }
    assert bus.statuses[0].routing_key == f"status.{job.tenant_id}.{job.id}"
    assert bus.statuses[-1].wire()["job_id"] == str(job.id)
    assert "batch_id" not in bus.statuses[-1].wire()


async def test_the_reporter_announces_a_job_abandoned_at_its_claim(pool: asyncpg.Pool, bus: RecordingBus) -> None:
    async with pool.acquire() as conn:
        job = await new_job(conn)
    reporter = JobReporter(pool=pool, bus=bus, service="pennylane-sync", tenant_id=job.tenant_id, job_id=job.id)
    for _ in range(LIMIT):
        assert await reporter.claim(stage="started", progress=0.05, limit=LIMIT) is not None
    with pytest.raises(JobAttemptsExhausted) as raised:
        await reporter.claim(stage="started", progress=0.05, limit=LIMIT)
    assert str(raised.value) == ABANDONED
    assert seen(bus)[-1] == ("FAILED", "failed", 1.0, ABANDONED, LIMIT + 1)


async def test_mark_job_failed_fails_and_announces_once(pool: asyncpg.Pool, bus: RecordingBus) -> None:
    async with pool.acquire() as conn:
        job = await job_in(conn, S.RUNNING)
    error = {"code": "PENNYLANE_UNAUTHORIZED", "message": "the Pennylane token was refused"}
    for _ in range(2):
        await mark_job_failed(pool=pool, bus=bus, service="pennylane-sync", job_id=job.id, error=error)
    await mark_job_failed(pool=pool, bus=bus, service="pennylane-sync", job_id=uuid.uuid4(), error=error)
    async with pool.acquire() as conn:
        after = await get_job(conn, job.id)
    assert after is not None
    assert (after.status, after.errors, after.message) == (S.FAILED, [error], "the Pennylane token was refused")
    assert seen(bus) == [("FAILED", "failed", 1.0, "the Pennylane token was refused", job.status_seq + 1)]


async def test_an_event_that_cannot_be_published_does_not_stop_the_work(pool: asyncpg.Pool) -> None:
    closed = RecordingBus()  # never connected: publishing raises DependencyUnavailable
    async with pool.acquire() as conn:
        job = await new_job(conn)
    reporter = JobReporter(pool=pool, bus=closed, service="pennylane-sync", tenant_id=job.tenant_id, job_id=job.id)
    assert await reporter.claim(stage="started", progress=0.05, limit=LIMIT) is not None
    assert await reporter.stage("customers", 0.5) == 2
    done = await reporter.finish(S.SUCCEEDED)
    assert done is not None
    assert (done.status, done.status_seq, closed.statuses) == (S.SUCCEEDED, 3, [])
