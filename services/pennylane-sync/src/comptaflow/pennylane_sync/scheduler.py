"""The sync schedule: an incremental sync of every enabled tenant every `interval`, a full one each night.

Run by one replica at a time: each replica's scheduler tries the session lock `Namespace.SCHEDULER`
("pennylane-sync") every `standby_s`, and the one holding it ticks every `tick_s`. A replica that dies
releases it with its connection; another takes over at its next try.

Each tenant has its slots, spread by a hash of its id so that 500 tenants do not start at once:
incremental slots every `interval` shifted by up to `interval`; the full slot daily at `full_at` in
`timezone` (03:00 Europe/Paris) shifted by up to `spread`. At each tick a tenant with no sync job
pending or running (a RUNNING job counts while its tenant's sync lock is held: one whose process died
does not block the schedule) gets:

- a full sync if no full sync of it was asked for since its last full slot (a manual one counts);
- else an incremental one if no sync at all was asked for since its last incremental slot.

So a slot missed while no replica ran (a restart, an outage) is caught up at the first tick after, once,
not once per missed slot. The job and its message are written in one transaction (the outbox), with an
idempotency key naming the slot: two schedulers deciding at once still ask once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from comptaflow.common import jobs, outbox
from comptaflow.common.background import BackgroundTask
from comptaflow.common.contracts import PennylaneSyncRequested, SyncMode
from comptaflow.common.db import DATABASE_ERRORS, Conn
from comptaflow.common.errors import TransientError
from comptaflow.common.locks import Namespace, key
from comptaflow.common.logging import get_logger

log = get_logger("comptaflow.pennylane_sync.scheduler")

KIND = "pennylane.sync"
LEADER = "pennylane-sync"


@dataclass(frozen=True, slots=True)
class Schedule:
    interval: timedelta = timedelta(hours=2)
    full_at: time = time(3, 0)
    timezone: str = "Europe/Paris"
    spread: timedelta = timedelta(hours=1)

    def _fraction(self, tenant_id: str, salt: str) -> float:
        digest = hashlib.sha256(f"{salt}\0{tenant_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def incremental_slot(self, tenant_id: str, now: datetime) -> datetime:
        """The tenant's latest incremental slot at or before `now`."""
        period = self.interval.total_seconds()
        offset = self._fraction(tenant_id, "incremental") * period
        epoch = now.timestamp() - offset
        return datetime.fromtimestamp(epoch - epoch % period + offset, UTC)

    def full_slot(self, tenant_id: str, now: datetime) -> datetime:
        """The tenant's latest full slot at or before `now` (in `timezone`, daylight saving included)."""
        zone = ZoneInfo(self.timezone)
        shift = timedelta(seconds=self._fraction(tenant_id, "full") * self.spread.total_seconds())
        local_day = now.astimezone(zone).date()
        for day in (local_day, local_day - timedelta(days=1), local_day - timedelta(days=2)):
            slot = (datetime.combine(day, self.full_at, tzinfo=zone) + shift).astimezone(UTC)
            if slot <= now:
                return slot
        raise AssertionError("a full slot lies within two days")


@dataclass(frozen=True, slots=True)
class Due:
    tenant_id: str
    mode: SyncMode
    slot: datetime

    @property
    def idempotency_key(self) -> str:
        return f"{self.mode.value}:{self.slot.strftime('%Y-%m-%dT%H:%M:%SZ')}"


async def due(conn: Conn, schedule: Schedule, now: datetime) -> list[Due]:
    """The syncs to ask for now (see the module docstring)."""
    rows = await conn.fetch(
        """
        SELECT c.tenant_id,
               max(j.created_at) AS last_any,
               max(j.created_at) FILTER (WHERE j.params->>'mode' = 'full') AS last_full,
               coalesce(bool_or(j.status = 'PENDING'), false) AS pending,
               coalesce(bool_or(j.status = 'RUNNING'), false) AS running
        FROM pennylane_connections c
        LEFT JOIN jobs j ON j.tenant_id = c.tenant_id AND j.kind = $1
        WHERE c.enabled
        GROUP BY c.tenant_id
        ORDER BY c.tenant_id
        """,
        KIND,
    )
    # A RUNNING job is a sync in progress only while its tenant's lock is held: one whose process died
    # (a command-line run killed, a worker whose message waits to be taken over) does not hold it.
    running = [r["tenant_id"] for r in rows if r["running"] and not r["pending"]]
    syncing = await _locked(conn, running)
    out = []
    for row in rows:
        if row["pending"] or row["tenant_id"] in syncing:
            continue
        tenant = row["tenant_id"]
        full = schedule.full_slot(tenant, now)
        incremental = schedule.incremental_slot(tenant, now)
        if row["last_full"] is None or row["last_full"] < full:
            out.append(Due(tenant, SyncMode.FULL, full))
        elif row["last_any"] is None or row["last_any"] < incremental:
            out.append(Due(tenant, SyncMode.INCREMENTAL, incremental))
    return out


async def _locked(conn: Conn, tenant_ids: list[str]) -> set[str]:
    """The tenants among `tenant_ids` whose sync lock some session holds."""
    if not tenant_ids:
        return set()
    keys = {key(Namespace.PENNYLANE_SYNC, t): t for t in tenant_ids}
    # pg_locks shows a bigint advisory key as (classid, objid) = (high, low) 32 bits, objsubid 1.
    rows = await conn.fetch(
        "SELECT (classid::bigint << 32) | objid::bigint AS k FROM pg_locks"
        " WHERE locktype = 'advisory' AND objsubid = 1 AND granted AND database ="
        " (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return {keys[r["k"]] for r in rows if r["k"] in keys}


async def ask(conn: Conn, wanted: Due) -> bool:
    """Create the job of a due sync and enqueue its message, in one transaction; False if it existed."""
    async with conn.transaction():
        job, created = await jobs.create_job(
            conn,
            wanted.tenant_id,
            KIND,
            {"mode": wanted.mode.value, "tables": None, "scheduled": True},
            idempotency_key=wanted.idempotency_key,
        )
        if created:
            await outbox.enqueue(
                conn, PennylaneSyncRequested(tenant_id=wanted.tenant_id, job_id=job.id, mode=wanted.mode)
            )
    return created


async def tick(pool: asyncpg.Pool, schedule: Schedule, now: datetime | None = None) -> list[Due]:
    """Ask for every sync due at `now`; the ones asked for."""
    moment = now or datetime.now(UTC)
    asked = []
    async with pool.acquire() as conn:
        for wanted in await due(conn, schedule, moment):
            if await ask(conn, wanted):
                asked.append(wanted)
    if asked:
        log.info("pennylane_syncs_scheduled", count=len(asked), full=sum(d.mode is SyncMode.FULL for d in asked))
    return asked


class Scheduler(BackgroundTask):
    """The schedule's loop in one replica at a time (see the module docstring)."""

    task_name = "pennylane-scheduler"

    def __init__(
        self, pool: asyncpg.Pool, schedule: Schedule, *, tick_s: float = 60.0, standby_s: float = 30.0
    ) -> None:
        self._pool = pool
        self._schedule = schedule
        self._tick_s = tick_s
        self._standby_s = standby_s
        self.leading = False

    async def _run(self) -> None:
        while True:
            try:
                async with self._pool.acquire() as conn:
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1::bigint)", key(Namespace.SCHEDULER, LEADER)):
                        await self._lead(conn)
            except (TransientError, *DATABASE_ERRORS) as exc:  # type: ignore[misc]
                log.warning("pennylane_scheduler_failed", error=repr(exc))
            self.leading = False
            await asyncio.sleep(self._standby_s)

    async def _lead(self, conn: Conn) -> None:
        """Tick while holding the lock (on `conn`: it is released when the connection closes)."""
        self.leading = True
        log.info("pennylane_scheduler_leading")
        try:
            while True:
                await tick(self._pool, self._schedule)
                await asyncio.sleep(self._tick_s)
        finally:
            with contextlib.suppress(*DATABASE_ERRORS):
                await conn.execute("SELECT pg_advisory_unlock($1::bigint)", key(Namespace.SCHEDULER, LEADER))
