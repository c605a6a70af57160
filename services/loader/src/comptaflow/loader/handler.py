"""Handling of `batch.load_requested`: load a validated batch, or restore a backup (`backup_id`).

A load, under the tenant's advisory lock (`locks.Namespace.TENANT_LOADS`, held for the whole load):

    claim      VALIDATED → PROCESSING (PROCESSING → PROCESSING: take over after a crash); else ack;
               counted with the batch: one claim past the delivery limit fails it (LOAD_FAILED)
    download   the staged Parquet tables
    dimensions plan_comptes, plan_tiers, code_journal     ─┐ rows tagged load_id = batch id, after
    facts      grand_livre, grand_livre_tiers              ─┘ deleting any rows of this load_id
    verify     count() per table = staged rows (else transient: retried)
    backup     the replaced load's declared files copied under …/backup/{YYYYMMDD_HHMMSS}/
    switch     ONE PostgreSQL transaction: period pointer, backup row, batch COMPLETED
    cleanup    the staged tables deleted, best effort (comptaflow.common.housekeeping)

Until the switch the new rows are invisible (readers follow the pointer), so a crash at any point leaves
the old data current, and a redelivered message redoes the load from scratch: exactly once in effect.
When the last delivery attempt fails, the batch is marked FAILED before the message is dead-lettered.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import structlog

from comptaflow.common import batches, housekeeping, loads
from comptaflow.common.bus import Delivery
from comptaflow.common.contracts import BatchStatus, LoadRequested
from comptaflow.common.errors import InvalidMessage, NotFound, PermanentError, TransientError
from comptaflow.common.infra import Infra
from comptaflow.common.locks import Namespace, advisory_lock
from comptaflow.common.metrics import BATCHES
from comptaflow.common.progress import BatchReporter, mark_failed
from comptaflow.common.warehouse import Warehouse
from comptaflow.common.warehouse.schema import DIMENSIONS, FACTS, LOAD_TABLES
from comptaflow.loader import etl, pruning, staging
from comptaflow.loader.backups import copy_files, restore_backup

SERVICE = "loader"
log = structlog.get_logger("comptaflow.loader")

CLAIMED, DOWNLOADED, DIMENSIONS_DONE, FACTS_DONE, VERIFIED, BACKED_UP = 0.02, 0.15, 0.30, 0.80, 0.88, 0.93


class _MovedOn(Exception):
    """The batch left PROCESSING while we loaded it: roll the switch back."""


class LoadHandler:
    def __init__(self, infra: Infra, warehouse: Warehouse) -> None:
        self._infra = infra
        self._warehouse = warehouse
        self._limit = infra.settings.delivery_limit

    async def handle(self, event: LoadRequested, delivery: Delivery) -> None:
        async with advisory_lock(self._infra.db, Namespace.TENANT_LOADS, event.tenant_id):
            if event.backup_id is not None:
                # A restore swaps a backup for the current load: the number of backups stays the same.
                await restore_backup(self._infra, event, service=SERVICE)
            else:
                await self._load(event)

    async def give_up(self, event: LoadRequested, cause: BaseException, *, permanent: bool) -> None:
        if permanent:
            await self._give_up(event, "LOAD_FAILED", str(cause))
        else:
            # The cause may be any library's exception text: it goes to the log (with the batch id), not
            # to the batch's errors, which API clients read.
            log.error("load_failed", attempts=self._limit, error=repr(cause))
            await self._give_up(event, "INTERNAL_ERROR", f"load failed {self._limit} times; the cause is in the log")

    async def _load(self, event: LoadRequested) -> None:
        pool = self._infra.db
        async with pool.acquire() as conn:
            batch = await batches.get_batch(conn, event.batch_id)
            if batch is None:
                raise NotFound(f"batch {event.batch_id} does not exist")
            if batch.tenant_id != event.tenant_id:
                raise InvalidMessage("the message names another tenant than the batch's")
            # Counts the attempt; one claim too many raises AttemptsExhausted (the batch is then failed).
            claimed = await batches.claim(
                conn, batch.id, BatchStatus.PROCESSING, stage="claim", progress=CLAIMED, limit=self._limit
            )
        if claimed is None:
            log.info("batch_already_handled", status=batch.status.value)
            return
        if batch.period_start is None or batch.period_end is None:
            raise PermanentError("the batch has no validated period")
        start, end = batch.period_start, batch.period_end
        reporter = BatchReporter(
            pool=pool, bus=self._infra.bus, service=SERVICE, tenant_id=batch.tenant_id, batch_id=batch.id
        )
        await reporter.announce_batch(claimed, "load started")
        started = time.perf_counter()
        attempt = await etl.running(self._warehouse, tenant_id=batch.tenant_id, batch_id=batch.id, start=start, end=end)
        try:
            counts = await self._write_rows(batch, reporter)
        except BaseException as exc:
            await _record_failure(self._warehouse, attempt, exc)
            raise
        total = sum(counts.values())

        await reporter.stage("backup", VERIFIED, status=BatchStatus.PROCESSING, message="keeping the replaced load")
        async with pool.acquire() as conn:
            replaced = await loads.current_load(conn, batch.tenant_id, start, end)
            replaced_batch = await batches.get_batch(conn, replaced) if replaced and replaced != batch.id else None
        prefix: str | None = None
        if replaced_batch is not None:
            prefix = await copy_files(self._infra.storage, replaced_batch, batch.tenant_id, start, end)
        await reporter.stage("switch", BACKED_UP, status=BatchStatus.PROCESSING, message="switching the period")
        stats: dict[str, Any] = {
            **batch.stats,
            "loaded": {**counts, "rows": total, "seconds": round(time.perf_counter() - started, 3)},
        }
        try:
            async with pool.acquire() as conn, conn.transaction():
                switched = await loads.switch(
                    conn,
                    tenant_id=batch.tenant_id,
                    start=start,
                    end=end,
                    batch_id=batch.id,
                    kind=batch.kind.value,
                    backup_prefix=prefix,
                )
                done = await batches.transition(
                    conn, batch.id, BatchStatus.COMPLETED, stage="completed", progress=1.0, stats=stats
                )
                if done is None:
                    raise _MovedOn
        except _MovedOn:
            log.warning("batch_moved_on_during_load")
            await etl.finished(self._warehouse, attempt, records=total, error="the batch left PROCESSING")
            return
        await etl.finished(self._warehouse, attempt, records=total)
        BATCHES.labels(batch.kind.value, BatchStatus.COMPLETED.value).inc()
        message = f"{total} rows loaded" + (
            f", previous load {switched.replaced} kept as a backup" if switched.replaced else ""
        )
        await reporter.announce_batch(done, message)
        # Nothing reads the staged tables of a COMPLETED batch again (a restore uses its warehouse rows).
        await housekeeping.remove_staged(self._infra.storage, batch.tenant_id, batch.id)
        log.info("batch_loaded", rows=total, replaced=str(switched.replaced) if switched.replaced else None)
        if switched.replaced:
            await pruning.prune(self._infra, self._warehouse, batch.tenant_id, start, end)

    async def _write_rows(self, batch: batches.Batch, reporter: BatchReporter) -> dict[str, int]:
        """Insert the batch's rows under load_id = batch id (after removing any earlier attempt's)."""
        wh, tenant, load_id = self._warehouse, batch.tenant_id, batch.id
        wanted = {**DIMENSIONS, **FACTS}
        fetched = await asyncio.gather(
            *(
                staging.fetch(
                    self._infra.storage,
                    tenant_id=tenant,
                    batch_id=load_id,
                    table=table,
                    staged_as=staged_as,
                    columns=columns,
                )
                for table, (staged_as, columns) in wanted.items()
            )
        )
        tables = dict(zip(wanted, fetched, strict=True))
        await reporter.stage("download", DOWNLOADED, status=BatchStatus.PROCESSING, message="staged tables downloaded")
        await _forget_load(wh, tenant, load_id)
        for table in DIMENSIONS:
            await wh.insert_parquet(table, tables[table].data, tables[table].columns)
        await reporter.stage("dimensions", DIMENSIONS_DONE, status=BatchStatus.PROCESSING, message="dimensions loaded")
        for table in FACTS:
            await wh.insert_parquet(table, tables[table].data, tables[table].columns)
        await reporter.stage("facts", FACTS_DONE, status=BatchStatus.PROCESSING, message="ledger lines loaded")
        counts = await _counts(wh, tenant, load_id)
        expected = {table: staged.rows for table, staged in tables.items()}
        if counts != expected:
            raise TransientError(f"row counts differ after insert: expected {expected}, found {counts}")
        await reporter.stage("verify", VERIFIED - 0.01, status=BatchStatus.PROCESSING, message="row counts verified")
        return counts

    async def _give_up(self, event: LoadRequested, code: str, reason: str) -> None:
        """Mark the batch FAILED when its message is about to be dead-lettered (best effort)."""
        error = {"code": code, "message": f"the batch could not be loaded: {reason}"}
        infra = self._infra
        await mark_failed(pool=infra.db, bus=infra.bus, service=SERVICE, batch_id=event.batch_id, error=error)


async def _forget_load(wh: Warehouse, tenant_id: str, load_id: uuid.UUID) -> None:
    """Delete the rows an earlier attempt of this load left behind (invisible anyway: never switched)."""
    counts = await _counts(wh, tenant_id, load_id)
    leftover = [table for table, count in counts.items() if count]
    for table in leftover:
        log.info("earlier_attempt_rows_deleted", table=table, rows=counts[table])
    await pruning.delete_load_rows(wh, tenant_id, load_id, tables=leftover)


async def _counts(wh: Warehouse, tenant_id: str, load_id: uuid.UUID) -> dict[str, int]:
    parts = " UNION ALL ".join(
        f"SELECT '{table}', count() FROM {wh.database}.{table} WHERE tenant_id = {{t:String}} AND load_id = {{l:UUID}}"  # noqa: S608 — identifiers from code
        for table in LOAD_TABLES
    )
    rows = await wh.query(parts, {"t": tenant_id, "l": load_id})
    found = {str(name): int(count) for name, count in rows}
    return {table: found.get(table, 0) for table in LOAD_TABLES}


async def _record_failure(wh: Warehouse, attempt: etl.Attempt, exc: BaseException) -> None:
    try:
        await etl.finished(wh, attempt, records=0, error=f"{type(exc).__name__}: {exc}")
    except Exception:
        log.warning("etl_metadata_not_written", exc_info=True)
