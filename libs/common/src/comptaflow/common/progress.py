"""Progress of a batch: recorded on its row, published on `comptaflow.status`.

The row is the source of truth (`GET /batches/{id}`); the event is its live echo. A status event that
cannot be published is logged, never fatal: the work itself goes on.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import structlog

from comptaflow.common import batches
from comptaflow.common.bus import Bus
from comptaflow.common.contracts import BatchStatus, StatusEvent
from comptaflow.common.errors import DependencyUnavailable
from comptaflow.common.metrics import BATCHES

log = structlog.get_logger("comptaflow.progress")


class BatchReporter:
    def __init__(self, *, pool: asyncpg.Pool, bus: Bus, service: str, tenant_id: str, batch_id: uuid.UUID) -> None:
        self._pool = pool
        self._bus = bus
        self._service = service
        self._tenant_id = tenant_id
        self._batch_id = batch_id

    async def stage(self, stage: str, progress: float, *, status: BatchStatus, message: str = "") -> None:
        """Record and announce a stage while the batch is in `status`; ignored if it moved on."""
        async with self._pool.acquire() as conn:
            seq = await batches.record_progress(conn, self._batch_id, expect=status, stage=stage, progress=progress)
        if seq is not None:
            await self.announce(status=status.value, stage=stage, progress=progress, message=message, seq=seq)

    async def announce(self, *, status: str, stage: str, progress: float, message: str, seq: int) -> None:
        event = StatusEvent(
            tenant_id=self._tenant_id,
            batch_id=self._batch_id,
            service=self._service,
            stage=stage,
            status=status,
            progress=min(1.0, max(0.0, progress)),
            message=message,
            seq=seq,
        )
        try:
            await self._bus.publish_status(event)
        except DependencyUnavailable as exc:
            log.warning("status_event_not_published", stage=stage, error=str(exc))

    async def announce_batch(self, batch: batches.Batch, message: str = "") -> None:
        await self.announce(
            status=batch.status.value, stage=batch.stage, progress=batch.progress, message=message, seq=batch.status_seq
        )


async def mark_failed(
    *, pool: asyncpg.Pool, bus: Bus, service: str, batch_id: uuid.UUID, error: dict[str, Any]
) -> None:
    """Mark a batch FAILED with `error` and announce it, when its message is about to be dead-lettered.

    Best effort: a batch already final is left alone, and a failure here is logged, never raised.
    """
    try:
        async with pool.acquire() as conn:
            done = await batches.transition(
                conn, batch_id, BatchStatus.FAILED, stage="failed", progress=1.0, errors=[error]
            )
        if done is not None:
            BATCHES.labels(done.kind.value, BatchStatus.FAILED.value).inc()
            reporter = BatchReporter(pool=pool, bus=bus, service=service, tenant_id=done.tenant_id, batch_id=done.id)
            await reporter.announce_batch(done, str(error.get("message", "")))
    except Exception:
        log.exception("batch_not_marked_failed", batch_id=str(batch_id))
