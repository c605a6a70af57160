"""Attempts: every claim of a batch is counted with it, and a batch claimed `limit` times is abandoned.

A worker killed mid-way leaves its count behind, which is what bounds a file that kills the process
(the in-process bus forgets its delivery counts at a restart, and a broker may not count a dead consumer).
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from comptaflow.common import batches
from comptaflow.common.batches import AttemptsExhausted, abandon_exhausted, claim, transition
from comptaflow.common.contracts import BatchKind, BatchStatus, BatchUploaded
from comptaflow.common.db import Conn
from comptaflow.common.errors import PermanentError
from comptaflow.common.outbox import reannounce_unfinished
from comptaflow.common.tenants import create_tenant

from .support import tenant_id

pytestmark = pytest.mark.infra

S = BatchStatus
LIMIT = 3


async def new_batch(conn: Conn, tenant: str | None = None) -> uuid.UUID:
    if tenant is None:
        tenant = tenant_id()
        await create_tenant(conn, tenant, "Test tenant")
    batch_id = uuid.uuid4()
    await batches.insert_batch(
        conn, batch_id=batch_id, tenant_id=tenant, kind=BatchKind.FEC, files=[], auto_load=False, created_by=None
    )
    return batch_id


async def attempts(conn: Conn, batch_id: uuid.UUID) -> int:
    value: int = await conn.fetchval("SELECT attempts FROM batches WHERE id = $1", batch_id)
    return value


async def validate(conn: Conn, batch_id: uuid.UUID) -> batches.Batch | None:
    return await claim(conn, batch_id, S.VALIDATING, stage="download", progress=0.01, limit=LIMIT)


async def test_each_claim_counts_one_attempt_and_claims_the_batch(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        batch_id = await new_batch(conn)
        assert await attempts(conn, batch_id) == 0
        first = await validate(conn, batch_id)
        assert await attempts(conn, batch_id) == 1
        # The predecessor died: the redelivered message takes the batch over, and that counts too.
        again = await validate(conn, batch_id)
        assert await attempts(conn, batch_id) == 2
    assert first is not None
    assert again is not None
    assert (first.status, first.stage, first.progress, first.status_seq) == (S.VALIDATING, "download", 0.01, 1)
    assert (again.status, again.status_seq) == (S.VALIDATING, 2)


async def test_the_count_survives_the_claiming_connection_dying(pool: asyncpg.Pool, pg_dsn: str) -> None:
    async with pool.acquire() as conn:
        batch_id = await new_batch(conn)
    worker = await asyncpg.connect(pg_dsn)
    assert await validate(worker, batch_id) is not None
    worker.terminate()  # the process is killed: no commit, no cleanup, the socket just closes
    async with pool.acquire() as conn:
        assert await attempts(conn, batch_id) == 1
        assert await validate(conn, batch_id) is not None
        assert await attempts(conn, batch_id) == 2


async def test_a_claim_past_the_limit_raises_with_the_reason_and_changes_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        batch_id = await new_batch(conn)
        for _ in range(LIMIT):
            assert await validate(conn, batch_id) is not None
        before = await batches.get_batch(conn, batch_id)
        with pytest.raises(AttemptsExhausted) as raised:
            await validate(conn, batch_id)
        after = await batches.get_batch(conn, batch_id)
        assert await attempts(conn, batch_id) == LIMIT
    assert isinstance(raised.value, PermanentError)  # dead-lettered, never retried
    assert str(raised.value) == (
        "validation was started 3 times without finishing (the worker stopped each time); the batch is abandoned"
    )
    assert after == before  # the caller fails it (or_give_up), with its status event


@pytest.mark.parametrize("status", [S.VALIDATED, S.COMPLETED, S.FAILED])
async def test_a_batch_past_the_step_is_not_claimed_whatever_its_count(pool: asyncpg.Pool, status: S) -> None:
    async with pool.acquire() as conn:
        batch_id = await new_batch(conn)
        await conn.execute("UPDATE batches SET status = $2, attempts = $3 WHERE id = $1", batch_id, status.value, LIMIT)
        before = await batches.get_batch(conn, batch_id)
        assert await validate(conn, batch_id) is None
        assert await batches.get_batch(conn, batch_id) == before
        assert await validate(conn, uuid.uuid4()) is None  # no such batch


async def test_loading_counts_from_zero_after_a_validation_that_took_every_attempt(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        auto_loaded, requested = await new_batch(conn), await new_batch(conn)
        for batch_id in (auto_loaded, requested):
            for _ in range(LIMIT):
                await validate(conn, batch_id)
            assert await transition(conn, batch_id, S.VALIDATED, stage="validated", progress=1) is not None
            assert await attempts(conn, batch_id) == 0
        # POST /load moves the batch to PROCESSING itself (stage "queued"); auto_load leaves it VALIDATED.
        assert await transition(conn, requested, S.PROCESSING, stage="queued", progress=0) is not None
        for batch_id in (auto_loaded, requested):
            for attempt in range(1, LIMIT + 1):
                loading = await claim(conn, batch_id, S.PROCESSING, stage="claim", progress=0.02, limit=LIMIT)
                assert loading is not None
                assert (loading.status, await attempts(conn, batch_id)) == (S.PROCESSING, attempt)
            with pytest.raises(AttemptsExhausted, match=r"^loading was started 3 times without finishing"):
                await claim(conn, batch_id, S.PROCESSING, stage="claim", progress=0.02, limit=LIMIT)


async def test_exhausted_batches_are_failed_with_the_reason_and_the_others_kept(private_pool: asyncpg.Pool) -> None:
    async with private_pool.acquire() as conn:
        exhausted, over, below, pending = [await new_batch(conn) for _ in range(4)]
        for batch_id, claims in [(exhausted, LIMIT), (below, LIMIT - 1)]:
            for _ in range(claims):
                await validate(conn, batch_id)
        # Claimed 4 times under an earlier, higher limit: the reason gives the count as it is.
        await conn.execute("UPDATE batches SET status = 'VALIDATING', attempts = 4 WHERE id = $1", over)
        async with conn.transaction():
            failed = await abandon_exhausted(conn, S.VALIDATING, limit=LIMIT)
        kept = {b: await batches.get_batch(conn, b) for b in (below, pending)}
    assert [(b.id, b.status, b.stage, b.progress) for b in failed] == [
        (exhausted, S.FAILED, "failed", 1.0),
        (over, S.FAILED, "failed", 1.0),
    ]
    assert [b.errors for b in failed] == [
        [
            {
                "code": "INTERNAL_ERROR",
                "message": f"validation was started {n} times without finishing"
                " (the worker stopped each time); the batch is abandoned",
            }
        ]
        for n in (3, 4)
    ]
    assert {b: (k.status if k else None) for b, k in kept.items()} == {below: S.VALIDATING, pending: S.PENDING}


async def test_a_start_fails_exhausted_batches_instead_of_announcing_them(private_pool: asyncpg.Pool) -> None:
    async with private_pool.acquire() as conn:
        tenant = tenant_id()
        await create_tenant(conn, tenant, "T")
        exhausted, below = await new_batch(conn, tenant), await new_batch(conn, tenant)
        for batch_id, claims in [(exhausted, LIMIT), (below, LIMIT - 1)]:
            for _ in range(claims):
                await validate(conn, batch_id)

    assert await reannounce_unfinished(private_pool, limit=LIMIT) == 1
    assert await reannounce_unfinished(private_pool, limit=LIMIT) == 0  # its event is pending now

    async with private_pool.acquire() as conn:
        announced = [BatchUploaded.model_validate_json(r["body"]) for r in await conn.fetch("SELECT body FROM outbox")]
        failed = await batches.get_batch(conn, exhausted)
        assert await attempts(conn, below) == LIMIT - 1
        assert await attempts(conn, exhausted) == LIMIT  # a final status keeps its count
    assert [e.batch_id for e in announced] == [below]
    assert failed is not None
    assert (failed.status, failed.errors) == (
        S.FAILED,
        [
            {
                "code": "INTERNAL_ERROR",
                "message": "validation was started 3 times without finishing (the worker stopped each time);"
                " the batch is abandoned",
            }
        ],
    )
