"""Housekeeping: removing the stored objects a batch no longer needs.

What a batch stores, and how long:

    {tenant}/incoming/{batch}/…   the uploaded files. A VALIDATED batch's are copied to the declaration
                                  layout and deleted by the validator; a FAILED batch's stay, so that the
                                  firm (or an operator) can see what was sent, for COMPTAFLOW_FAILED_RETENTION_DAYS
                                  (default 30) after the failure, then `sweep_failed` removes them.
    {tenant}/staging/{batch}/…    the normalised Parquet tables the validator writes for the loader. The loader
                                  reads them once, to insert the batch's rows; `remove_staged` deletes them as
                                  soon as the batch is COMPLETED. A FAILED batch's (a load that failed) go
                                  with its incoming files.
    {tenant}/declaration/…        the validated files, filed for the firm, and the backups' copies: never
                                  removed here (backup retention is the loader's `pruning`).

Why staged tables can go at COMPLETED: nothing reads them afterwards. COMPLETED is final, so the batch is
never loaded again (a redelivered load request finds it COMPLETED and does nothing), and a restore
(`POST /api/v1/backups/{id}/restore`) does not read staged tables at all: the warehouse rows of every
backed-up load stay in the warehouse under its load id, and a restore only moves the period's pointer
back to them (comptaflow.loader.backups). Until COMPLETED they are kept: a load taken over after a crash
downloads them again.

A swept FAILED batch stays readable (`GET /api/v1/batches/{id}`) with its errors and its list of files;
`stats.files_removed` says what went and when:

    {"at": "…Z", "failed_at": "…Z", "retention_days": 30, "fields": ["grand_livre_comptes", …], "objects": 7}

`fields` are the listed files whose content was removed (files filed elsewhere, e.g. in the declaration
layout by a batch that failed while loading, are kept and not named); `objects` counts every object
deleted, staged tables included. The note is also what makes a sweep idempotent: a batch that has it is
never swept again.

Errors: `remove_staged` never raises (a finished load stays finished; the failure is logged).
`sweep_failed` raises `DependencyUnavailable` when the database or the store cannot be reached; each
batch is swept in its own transaction, so what was done before is kept and the rest waits for the next
call.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from comptaflow.common import batches
from comptaflow.common.background import BackgroundTask
from comptaflow.common.errors import DependencyUnavailable
from comptaflow.common.layout import incoming_prefix, staging_prefix
from comptaflow.common.storage import Storage

log = structlog.get_logger("comptaflow.housekeeping")

SWEEP_LIMIT = 100
"""Batches swept by one `sweep_failed` call at most: a backlog is worked off over several calls."""


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def remove_staged(storage: Storage, tenant_id: str, batch_id: uuid.UUID) -> int:
    """Delete the staged Parquet tables of a batch; the number of objects deleted (0 on failure, logged)."""
    try:
        removed = await storage.delete_prefix(staging_prefix(tenant_id, batch_id))
    except Exception as exc:
        log.warning("staged_tables_not_removed", batch_id=str(batch_id), error=f"{type(exc).__name__}: {exc}")
        return 0
    log.info("staged_tables_removed", batch_id=str(batch_id), objects=removed)
    return removed


async def sweep_failed(
    pool: asyncpg.Pool,
    storage: Storage,
    *,
    retention_days: int,
    now: datetime | None = None,
    limit: int = SWEEP_LIMIT,
) -> int:
    """Remove the incoming files and staged tables of batches FAILED more than `retention_days` days before
    `now` (default: the current time), at most `limit` batches; the number of batches swept.

    A batch that failed exactly `retention_days` days before `now` is kept until the next call.
    """
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    failed_before = now - timedelta(days=retention_days)
    async with pool.acquire() as conn:
        candidates = await batches.failed_with_files(conn, failed_before=failed_before, limit=limit)
    swept = 0
    for batch_id in candidates:
        if await _sweep_one(pool, storage, batch_id, now=now, retention_days=retention_days):
            swept += 1
    if candidates:
        log.info("failed_batches_swept", batches=swept, retention_days=retention_days)
    return swept


async def _sweep_one(
    pool: asyncpg.Pool, storage: Storage, batch_id: uuid.UUID, *, now: datetime, retention_days: int
) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        batch = await batches.lock_failed_with_files(conn, batch_id)
        if batch is None:  # swept meanwhile, or being swept by another process
            return False
        incoming = incoming_prefix(batch.tenant_id, batch.id)
        removed = await storage.delete_prefix(incoming)
        removed += await storage.delete_prefix(staging_prefix(batch.tenant_id, batch.id))
        note: dict[str, Any] = {
            "at": _timestamp(now),
            "failed_at": _timestamp(batch.updated_at),
            "retention_days": retention_days,
            "fields": [file.field for file in batch.files if file.object_key.startswith(incoming)],
            "objects": removed,
        }
        await batches.record_files_removed(conn, batch.id, note)
    log.info("failed_batch_files_removed", tenant_id=batch.tenant_id, batch_id=str(batch.id), objects=removed)
    return True


SWEEP_INTERVAL_S = 3600.0
"""How often a running gateway sweeps (`Sweeper`): retention is counted in days, an hour late is on time."""


class Sweeper(BackgroundTask):
    """Runs `sweep_failed` at start and then every `interval` seconds until stopped (the gateway's lifespan
    owns one). A pass that fails is logged and the next one tries again; several gateways may sweep side by
    side (each batch is taken under a row lock)."""

    task_name = "housekeeping-sweeper"

    def __init__(
        self, pool: asyncpg.Pool, storage: Storage, *, retention_days: int, interval: float = SWEEP_INTERVAL_S
    ) -> None:
        self._pool = pool
        self._storage = storage
        self._retention_days = retention_days
        self._interval = interval
        self.passes = 0

    async def _run(self) -> None:
        while True:
            try:
                while await sweep_failed(self._pool, self._storage, retention_days=self._retention_days) >= SWEEP_LIMIT:
                    pass  # a backlog: the next hundred at once
            except DependencyUnavailable as exc:
                log.warning("housekeeping_pass_failed", error=str(exc))
            self.passes += 1
            await asyncio.sleep(self._interval)
