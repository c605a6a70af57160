"""Request budgets: 25 requests per 5 seconds per token (docs/pennylane.md), shared by every process.

A budget is a GCRA row in `pennylane_budgets`: each request takes the next slot, `interval` after the
previous one, with one `UPDATE … RETURNING` on PostgreSQL's clock, so replicas and processes that share
a token (tenants that share it included) pace themselves together, never in bursts. The interval leaves
a margin under the limit (`SAFETY`): 25 requests span 4.9 s, and network jitter of a tenth of a second
does not make a 26th land in the same 5 s.

What the API says is taken into account too, for whoever else spends the token's budget: a 429 moves
the next slot to after its `retry-after`; `ratelimit-remaining: 0` with a reset further away than our
pacing explains moves it to the reset.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import asyncpg

LIMIT = 25
WINDOW_S = 5.0
SAFETY = 0.98
"""Fraction of the documented rate used: 4.9 requests/s for 25 per 5 s."""
LATE_S = 0.05
"""A slot woken up for later than this is given up for the next one (see `PostgresBudget.acquire`)."""
LATE_RETRIES = 3


class Budget(Protocol):
    async def acquire(self) -> None:
        """Wait for this request's slot."""

    async def observe(self, *, remaining: int | None, reset_at: float | None) -> None:
        """The `ratelimit-remaining` and `ratelimit-reset` (Unix time) of a response."""

    async def throttled(self, retry_after: float) -> None:
        """The API answered 429: nobody on this budget sends before `retry_after` seconds."""


@dataclass(frozen=True, slots=True)
class Rate:
    limit: int = LIMIT
    window_s: float = WINDOW_S

    @property
    def interval_s(self) -> float:
        return self.window_s / (self.limit * SAFETY)


class PostgresBudget:
    """The budget of one token (`key`, `connections.budget_key`) on the platform database."""

    def __init__(self, pool: asyncpg.Pool, key: str, rate: Rate | None = None) -> None:
        self._pool = pool
        self._key = key
        self._rate = rate or Rate()

    async def acquire(self) -> None:
        # A slot is kept only if this task wakes up on time for it: a send that leaves late lands next to
        # the following slot's, and a window of the API could then count one request too many. A late slot
        # is given up (unused) for the next one, a few times at most.
        loop = asyncio.get_running_loop()
        for _ in range(LATE_RETRIES):
            due = loop.time() + await self._take()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if loop.time() - due <= LATE_S:
                return

    async def _take(self) -> float:
        """Take the next slot: the seconds until it."""
        async with self._pool.acquire() as conn:
            wait: float = await conn.fetchval(
                """
                INSERT INTO pennylane_budgets AS b (budget_key, next_at)
                VALUES ($1, clock_timestamp() + make_interval(secs => $2))
                ON CONFLICT (budget_key) DO UPDATE
                    SET next_at = greatest(b.next_at, clock_timestamp()) + make_interval(secs => $2)
                RETURNING extract(epoch FROM b.next_at - make_interval(secs => $2) - clock_timestamp())::float8
                """,
                self._key,
                self._rate.interval_s,
            )
        return wait

    async def observe(self, *, remaining: int | None, reset_at: float | None) -> None:
        if remaining is None or remaining > 0 or reset_at is None:
            return
        # Spent: if our own pacing explains it, the next slot is soon anyway; if the reset is further away
        # than a second beyond one interval, someone else spends this token: wait for the reset.
        async with self._pool.acquire() as conn:
            await conn.execute(
                """
                UPDATE pennylane_budgets SET next_at = to_timestamp($2)
                WHERE budget_key = $1 AND to_timestamp($2) > greatest(next_at, clock_timestamp())
                  AND to_timestamp($2) > clock_timestamp() + make_interval(secs => $3)
                """,
                self._key,
                reset_at,
                self._rate.interval_s + 1.0,
            )

    async def throttled(self, retry_after: float) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                """
                UPDATE pennylane_budgets
                SET next_at = greatest(next_at, clock_timestamp() + make_interval(secs => $2)),
                    throttled = throttled + 1
                WHERE budget_key = $1
                """,
                self._key,
                max(retry_after, 0.0),
            )


class LocalBudget:
    """The same pacing within one process (a command run without the database's coordination)."""

    def __init__(self, rate: Rate | None = None) -> None:
        self._rate = rate or Rate()
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._lock:
            now = loop.time()
            slot = max(self._next, now)
            self._next = slot + self._rate.interval_s
        if slot > now:
            await asyncio.sleep(slot - now)

    async def observe(self, *, remaining: int | None, reset_at: float | None) -> None:
        return None

    async def throttled(self, retry_after: float) -> None:
        loop = asyncio.get_running_loop()
        self._next = max(self._next, loop.time() + retry_after)
