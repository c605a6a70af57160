"""A token's request budget, shared by processes through PostgreSQL: paced under the limit, 429s obeyed."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from comptaflow.common import db
from comptaflow.common.pennylane.budget import PostgresBudget, Rate

RATE = Rate(limit=10, window_s=1.0)


@pytest.mark.infra
async def test_two_processes_on_one_token_stay_under_the_limit_together_and_near_it(pg_dsn: str) -> None:
    key = uuid.uuid4().hex + uuid.uuid4().hex
    pools = [await db.create_pool(pg_dsn, max_size=4) for _ in range(2)]  # two processes' pools
    stamps: list[float] = []
    try:
        budgets = [PostgresBudget(p, key, RATE) for p in pools]

        async def spend(budget: PostgresBudget, n: int) -> None:
            for _ in range(n):
                await budget.acquire()
                stamps.append(time.monotonic())

        # Three concurrent requesters per process, 40 requests in all.
        await asyncio.gather(*(spend(b, 7 if i % 2 else 6) for i, b in enumerate(budgets * 3)))
    finally:
        for p in pools:
            await p.close()
    stamps.sort()
    assert len(stamps) == 39
    # In any window of the limit's length, at most `limit` requests: the slots are that far apart; the
    # stamps are taken when the sleeps end, so a window 0.1 s shorter absorbs the event loop's wake-up jitter.
    span = RATE.window_s - 0.1
    worst = max(sum(1 for t in stamps if start <= t < start + span) for start in stamps)
    assert worst <= RATE.limit
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert rate >= 0.9 * RATE.limit / RATE.window_s


@pytest.mark.infra
async def test_a_429_makes_every_holder_of_the_budget_wait_its_retry_after(pg_dsn: str) -> None:
    key = uuid.uuid4().hex + uuid.uuid4().hex
    pools = [await db.create_pool(pg_dsn, max_size=2) for _ in range(2)]
    try:
        first, second = (PostgresBudget(p, key, RATE) for p in pools)
        await first.acquire()
        await first.throttled(1.0)
        started = time.monotonic()
        await second.acquire()  # the other process waits too
        assert time.monotonic() - started >= 0.9
        async with pools[0].acquire() as conn:
            assert await conn.fetchval("SELECT throttled FROM pennylane_budgets WHERE budget_key = $1", key) == 1
    finally:
        for p in pools:
            await p.close()


@pytest.mark.infra
async def test_a_budget_spent_by_someone_else_waits_for_the_announced_reset(pg_dsn: str) -> None:
    key = uuid.uuid4().hex + uuid.uuid4().hex
    the_pool = await db.create_pool(pg_dsn, max_size=2)
    try:
        budget = PostgresBudget(the_pool, key, RATE)
        await budget.acquire()
        # Remaining 0 and the reset 2 s away: more than our pacing explains.
        await budget.observe(remaining=0, reset_at=time.time() + 2.0)
        started = time.monotonic()
        await budget.acquire()
        assert time.monotonic() - started >= 1.5
        # Remaining 0 with the reset within one interval: our own pacing, no extra wait.
        await budget.observe(remaining=0, reset_at=time.time() + 0.05)
        started = time.monotonic()
        await budget.acquire()
        assert time.monotonic() - started < 0.5
    finally:
        await the_pool.close()


@pytest.mark.infra
async def test_a_slot_woken_up_late_is_given_up_for_the_next_one(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from comptaflow.common.pennylane import budget as budget_module

    key = uuid.uuid4().hex + uuid.uuid4().hex
    the_pool = await db.create_pool(pg_dsn, max_size=2)
    real_sleep = asyncio.sleep
    late = [0.2]  # the first wake-up comes 0.2 s late (a busy event loop), the next ones on time

    async def sleepy(delay: float) -> None:
        await real_sleep(delay + (late.pop() if late else 0.0))

    monkeypatch.setattr(budget_module.asyncio, "sleep", sleepy)
    try:
        budget = PostgresBudget(the_pool, key, RATE)
        taken: list[float] = []
        original = budget._take

        async def counting() -> float:
            wait = await original()
            taken.append(wait)
            return wait

        monkeypatch.setattr(budget, "_take", counting)
        await budget.acquire()
        assert len(taken) == 2  # the late slot was given up, the next one kept
    finally:
        await the_pool.close()
