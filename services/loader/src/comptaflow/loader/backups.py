"""Backups of replaced loads: their declared files copied to a `backup/` folder, and restores.

A restore makes a backup's load the current one again in ONE PostgreSQL transaction (pointer, backup row
consumed, a new backup row for the load it replaces); the warehouse is untouched since the rows of both
loads are there. A restore whose backup is gone while the pointer already names its batch was done.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import PurePosixPath

import asyncpg
import structlog

from comptaflow.common import batches, loads
from comptaflow.common.contracts import BatchStatus, LoadRequested
from comptaflow.common.errors import InvalidMessage, NotFound
from comptaflow.common.infra import Infra
from comptaflow.common.layout import backup_prefix
from comptaflow.common.progress import BatchReporter
from comptaflow.common.storage import Storage

log = structlog.get_logger("comptaflow.loader")


async def copy_files(storage: Storage, replaced: batches.Batch, tenant_id: str, start: date, end: date) -> str:
    """Copy the declared files of `replaced` under a new backup folder of the period; return its prefix."""
    prefix = backup_prefix(tenant_id, start, end, datetime.now(UTC))
    for file in replaced.files:
        target = prefix + PurePosixPath(file.object_key).name
        # A same-day re-upload had the validator move this file aside already, possibly to this very
        # folder (same second): then it is its own backup.
        if file.object_key != target:
            await storage.copy(file.object_key, target)
    log.info("replaced_files_backed_up", prefix=prefix, files=len(replaced.files), replaced=str(replaced.id))
    return prefix


async def restore_backup(infra: Infra, event: LoadRequested, *, service: str) -> None:
    assert event.backup_id is not None
    pool = infra.db
    async with pool.acquire() as conn:
        backup = await loads.get_backup(conn, event.backup_id)
        if backup is None:
            if await loads.is_current(conn, event.tenant_id, event.batch_id):
                log.info("backup_already_restored", backup_id=str(event.backup_id))
                return
            raise NotFound(f"backup {event.backup_id} does not exist")
        if backup.tenant_id != event.tenant_id or backup.batch_id != event.batch_id:
            raise InvalidMessage("the message names another tenant or batch than the backup's")
        restored = await batches.get_batch(conn, backup.batch_id)
        current = await loads.current_load(conn, backup.tenant_id, backup.period_start, backup.period_end)
        current_batch = await batches.get_batch(conn, current) if current and current != backup.batch_id else None
    if restored is None:
        raise NotFound(f"batch {backup.batch_id} of backup {backup.id} does not exist")
    reporter = BatchReporter(
        pool=pool, bus=infra.bus, service=service, tenant_id=backup.tenant_id, batch_id=restored.id
    )
    await _announce(
        reporter, pool, restored.id, status="PROCESSING", progress=0.5, message=f"restoring backup {backup.id}"
    )
    prefix = ""
    if current_batch is not None:
        prefix = await copy_files(
            infra.storage, current_batch, backup.tenant_id, backup.period_start, backup.period_end
        )
    async with pool.acquire() as conn, conn.transaction():
        outcome = await loads.restore(conn, backup, kind=restored.kind.value, backup_prefix=prefix)
    await _announce(
        reporter, pool, restored.id, status="COMPLETED", progress=1.0, message=f"backup {backup.id} restored"
    )
    log.info("backup_restored", backup_id=str(backup.id), replaced=str(outcome.replaced) if outcome.replaced else None)


async def _announce(
    reporter: BatchReporter, pool: asyncpg.Pool, batch_id: uuid.UUID, *, status: str, progress: float, message: str
) -> None:
    """A status event of a restore: the batch stays COMPLETED (final); only its event sequence moves on."""
    async with pool.acquire() as conn:
        seq = await batches.record_progress(
            conn, batch_id, expect=BatchStatus.COMPLETED, stage="completed", progress=1.0
        )
    if seq is not None:
        await reporter.announce(status=status, stage="restore", progress=progress, message=message, seq=seq)
