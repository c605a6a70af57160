"""Backup retention: a period keeps its `COMPTAFLOW_BACKUPS_KEEP` newest backups; older ones go.

After a load or a restore switched a period, the backup rows beyond the newest N are deleted in one
PostgreSQL transaction (from then on they are neither listed nor restorable), then their rows are deleted
from the warehouse and their copied files from S3. A failure in that cleanup leaves only invisible
garbage (rows of a load no pointer names, files no backup row lists); it is logged, never raised, so a
finished load never fails because of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import PurePosixPath

import structlog

from comptaflow.common import batches, loads
from comptaflow.common.db import Conn
from comptaflow.common.infra import Infra
from comptaflow.common.warehouse import Warehouse
from comptaflow.common.warehouse.schema import LOAD_TABLES

log = structlog.get_logger("comptaflow.loader")


async def prune(infra: Infra, warehouse: Warehouse, tenant_id: str, start: date, end: date) -> list[loads.Backup]:
    """Apply the retention to one period; never raises (a finished load stays finished)."""
    try:
        return await _prune(infra, warehouse, tenant_id, start, end)
    except Exception as exc:
        log.warning("backup_pruning_failed", error=f"{type(exc).__name__}: {exc}")
        return []


async def _prune(infra: Infra, warehouse: Warehouse, tenant_id: str, start: date, end: date) -> list[loads.Backup]:
    keep = infra.settings.backups_keep
    async with infra.db.acquire() as conn, conn.transaction():
        pruned = await loads.prune_backups(conn, tenant_id, start, end, keep=keep)
        files = {backup.id: await _backup_files(conn, backup) for backup in pruned}
    for backup in pruned:
        try:
            await delete_load_rows(warehouse, tenant_id, backup.batch_id)
            if files[backup.id]:
                await infra.storage.delete_keys(files[backup.id])
        except Exception as exc:
            log.warning("backup_cleanup_failed", backup_id=str(backup.id), error=f"{type(exc).__name__}: {exc}")
            continue
        log.info("backup_pruned", backup_id=str(backup.id), load_id=str(backup.batch_id), files=len(files[backup.id]))
    return pruned


async def _backup_files(conn: Conn, backup: loads.Backup) -> list[str]:
    """The files copied for this backup that nothing else references."""
    batch = await batches.get_batch(conn, backup.batch_id)
    if batch is None:
        return []
    keys = {backup.s3_prefix + PurePosixPath(file.object_key).name for file in batch.files}
    keys |= {file.object_key for file in batch.files if file.object_key.startswith(backup.s3_prefix)}
    shared = await batches.keys_of_other_batches(conn, sorted(keys), excluding=backup.batch_id)
    if await loads.backup_folder_shared(conn, backup.s3_prefix, excluding=backup.batch_id):
        return []  # two backups in the same folder (same second): keep the folder's files
    return sorted(keys - shared)


async def delete_load_rows(
    warehouse: Warehouse, tenant_id: str, load_id: uuid.UUID, *, tables: Sequence[str] = LOAD_TABLES
) -> None:
    """Delete the warehouse rows of one load (never a current one: callers check the pointer first)."""
    for table in tables:
        await warehouse.command(
            f"DELETE FROM {warehouse.database}.{table} WHERE tenant_id = {{t:String}} AND load_id = {{l:UUID}}",  # noqa: S608 — identifiers from code
            {"t": tenant_id, "l": load_id},
        )
