"""Handling of `pennylane.sync_requested`: one sync of a tenant, as the job the message names.

    claim      PENDING → RUNNING (RUNNING → RUNNING: take over after a crash), counted with the job: one
               claim past the delivery limit fails it; a finished job is acknowledged and left alone
    lock       the tenant's advisory lock (`Namespace.PENNYLANE_SYNC`), held for the whole sync: one sync
               of a tenant at a time, whichever replica runs it
    token      decrypted from the tenant's secrets, sent to Pennylane only; `/me` checks it and its scopes
    sync       `sync.TenantSync`: each unit of tables in its own transaction with its checkpoint, their
               progress announced per table on the job
    finish     SUCCEEDED when every table synced, FAILED with an error per table that did not

A sync killed midway is taken over when its message comes back: the units it had committed are
incremental from their new checkpoints, the others start again from theirs; nothing is applied twice
(upserts) and nothing is lost (a checkpoint only moves with the data it covers).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import asyncpg
import structlog

from comptaflow.common.bus import Bus, Delivery
from comptaflow.common.contracts import JobStatus, PennylaneSyncRequested
from comptaflow.common.errors import InvalidMessage, NotFound, PermanentError
from comptaflow.common.jobs import get_job
from comptaflow.common.locks import Namespace, advisory_lock
from comptaflow.common.pennylane import api, connections
from comptaflow.common.pennylane.budget import PostgresBudget, Rate
from comptaflow.common.pennylane.tables import NAMES
from comptaflow.common.progress import JobReporter, mark_job_failed
from comptaflow.common.secrets import Keyring
from comptaflow.common.settings import Settings
from comptaflow.pennylane_sync.sync import Progress, Report, TableOutcome, TenantSync, error_code, plan

SERVICE = "pennylane-sync"
KIND = "pennylane.sync"
log = structlog.get_logger("comptaflow.pennylane_sync")


class _Announcer(Progress):
    """Per-table progress of a job, on the status exchange (stage = the table), and to `also`."""

    def __init__(self, reporter: JobReporter, total: int, also: Progress | None) -> None:
        self._reporter = reporter
        self._total = max(total, 1)
        self._done = 0
        self._also = also or Progress()
        # Units finish concurrently: one table's stage is recorded (and gets its seq) before the next one's
        # progress is counted, so that the events' progress rises with their seq.
        self._lock = asyncio.Lock()

    async def started(self, table: str) -> None:
        await self._also.started(table)

    async def fetched(self, table: str, items: int) -> None:
        await self._also.fetched(table, items)

    async def finished(self, outcome: TableOutcome) -> None:
        if outcome.ok:
            w = outcome.written
            message = f"{outcome.table}: {w.inserted} inserted, {w.updated} updated, {w.deleted} deleted"
        else:
            message = f"{outcome.table}: {outcome.error}"
        async with self._lock:
            self._done += 1
            await self._reporter.stage(outcome.table, min(0.99, self._done / self._total), message=message)
        await self._also.finished(outcome)


class SyncHandler:
    """The handler (see the module docstring); `progress`, when given, hears each table too (the command line)."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        bus: Bus,
        settings: Settings,
        keyring: Keyring,
        progress: Progress | None = None,
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._keyring = keyring
        self._limit = settings.delivery_limit
        self._rate = Rate(limit=settings.pennylane_rate_limit, window_s=settings.pennylane_rate_window_s)
        self._overlap = timedelta(seconds=settings.pennylane_overlap_s)
        self._concurrency = settings.pennylane_concurrency
        self._progress = progress

    def _reporter(self, event: PennylaneSyncRequested) -> JobReporter:
        return JobReporter(
            pool=self._pool, bus=self._bus, service=SERVICE, tenant_id=event.tenant_id, job_id=event.job_id
        )

    async def handle(self, event: PennylaneSyncRequested, delivery: Delivery | None) -> None:
        structlog.contextvars.bind_contextvars(job_id=str(event.job_id), tenant_id=event.tenant_id)
        pool = self._pool
        async with pool.acquire() as conn:
            job = await get_job(conn, event.job_id)
        if job is None:
            raise NotFound(f"job {event.job_id} does not exist")
        if job.tenant_id != event.tenant_id or job.kind != KIND:
            raise InvalidMessage("the message names another tenant or kind than its job's")
        if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            log.info("job_already_handled", status=job.status.value)
            return
        reporter = self._reporter(event)
        async with advisory_lock(pool, Namespace.PENNYLANE_SYNC, event.tenant_id):
            claimed = await reporter.claim(stage="connect", progress=0.0, limit=self._limit, message="sync started")
            if claimed is None:
                return
            await self._sync(event, reporter)

    async def _sync(self, event: PennylaneSyncRequested, reporter: JobReporter) -> None:
        pool = self._pool
        async with pool.acquire() as conn:
            connection = await connections.get_connection(conn, event.tenant_id)
            token = await connections.token_of(conn, self._keyring, event.tenant_id)
        if connection is None or token is None:
            await self._refuse(reporter, "PENNYLANE_NOT_CONFIGURED", "the tenant has no Pennylane connection")
            return
        if not connection.enabled:
            await self._refuse(reporter, "PENNYLANE_DISABLED", "the tenant's Pennylane sync is disabled")
            return
        unknown = set(event.tables or ()) - set(NAMES)
        if unknown:
            raise InvalidMessage(f"unknown Pennylane table(s): {', '.join(sorted(unknown))}")
        started = time.monotonic()
        budget = PostgresBudget(pool, connection.budget_key, self._rate)
        async with api.PennylaneClient(connection.base_url, token, budget=budget) as client:
            sync = TenantSync(
                pool=pool,
                client=client,
                tenant_id=event.tenant_id,
                mode=event.mode,
                tables=event.tables,
                overlap=self._overlap,
                concurrency=self._concurrency,
                progress=_Announcer(reporter, sum(map(len, plan(event.mode, event.tables))), self._progress),
            )
            try:
                outcomes = await sync.run()
            except (api.Unauthorized, api.Forbidden, api.Unavailable, api.MalformedResponse) as exc:
                # `/me` refused or unreachable: nothing could be synced.
                await self._refuse(reporter, error_code(exc), str(exc))
                return
            report = Report(outcomes, client.stats.requests, client.stats.throttled, time.monotonic() - started)
        status = JobStatus.SUCCEEDED if report.ok else JobStatus.FAILED
        failed = [o.table for o in outcomes if not o.ok]
        message = (
            f"{len(outcomes)} tables synced, {report.requests} requests"
            if report.ok
            else f"{len(failed)} of {len(outcomes)} tables failed: {', '.join(failed)}"
        )
        await reporter.finish(status, stats=report.stats(), errors=report.errors(), message=message)
        log.info("pennylane_synced", mode=event.mode.value, status=status.value, **report.stats() | {"tables": None})

    async def _refuse(self, reporter: JobReporter, code: str, message: str) -> None:
        log.warning("pennylane_sync_refused", code=code, error=message)
        await reporter.finish(JobStatus.FAILED, errors=[{"code": code, "message": message}], message=message)

    async def give_up(self, event: PennylaneSyncRequested, cause: BaseException, *, permanent: bool) -> None:
        if permanent and isinstance(cause, PermanentError):
            error = {"code": "PENNYLANE_SYNC_FAILED", "message": str(cause)}
        else:
            log.error("pennylane_sync_failed", attempts=self._limit, error=repr(cause))
            error = {
                "code": "INTERNAL_ERROR",
                "message": f"the sync failed {self._limit} times; the cause is in the log",
            }
        await mark_job_failed(pool=self._pool, bus=self._bus, service=SERVICE, job_id=event.job_id, error=error)
