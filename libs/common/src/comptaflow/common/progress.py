"""Progress of a batch or a job: recorded on its row, published on `comptaflow.status`.

The row is the source of truth (`GET /batches/{id}`, `GET /jobs/{id}`); the event is its live echo,
whose `seq` is the row's `status_seq`. A status event that cannot be published is logged, never fatal:
the work itself goes on.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import structlog

from comptaflow.common import batches, jobs
from comptaflow.common.bus import Bus
from comptaflow.common.contracts import BatchStatus, JobStatus, StatusEvent
from comptaflow.common.errors import DependencyUnavailable
from comptaflow.common.metrics import BATCHES

log = structlog.get_logger("comptaflow.progress")


async def _publish(bus: Bus, event: StatusEvent) -> None:
    """Publish a status event; one that cannot be published is logged, never fatal."""
    try:
        await bus.publish_status(event)
    except DependencyUnavailable as exc:
        log.warning("status_event_not_published", stage=event.stage, error=str(exc))


class _Reporter:
    """What both reporters share: the announcement of a recorded change of their subject (`batch_id` or
    `job_id`), with the row's sequence number, its progress clamped to 0-1."""

    def __init__(
        self, *, pool: asyncpg.Pool, bus: Bus, service: str, tenant_id: str, subject: dict[str, uuid.UUID]
    ) -> None:
        self._pool = pool
        self._bus = bus
        self._service = service
        self._tenant_id = tenant_id
        self._subject = subject

    async def announce(self, *, status: str, stage: str, progress: float, message: str, seq: int) -> None:
        event = StatusEvent.model_validate(
            {
                **self._subject,
                "tenant_id": self._tenant_id,
                "service": self._service,
                "stage": stage,
                "status": status,
                "progress": min(1.0, max(0.0, progress)),
                "message": message,
                "seq": seq,
            }
        )
        await _publish(self._bus, event)


class BatchReporter(_Reporter):
    def __init__(self, *, pool: asyncpg.Pool, bus: Bus, service: str, tenant_id: str, batch_id: uuid.UUID) -> None:
        super().__init__(pool=pool, bus=bus, service=service, tenant_id=tenant_id, subject={"batch_id": batch_id})
        self._batch_id = batch_id

    async def stage(self, stage: str, progress: float, *, status: BatchStatus, message: str = "") -> None:
        """Record and announce a stage while the batch is in `status`; ignored if it moved on."""
        async with self._pool.acquire() as conn:
            seq = await batches.record_progress(conn, self._batch_id, expect=status, stage=stage, progress=progress)
        if seq is not None:
            await self.announce(status=status.value, stage=stage, progress=progress, message=message, seq=seq)

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


class JobReporter(_Reporter):
    """Moves a job through its states (`comptaflow.common.jobs`) and announces each recorded change.

    Every method acts on the row first and announces only what was recorded: a change refused because
    the job moved on (a redelivered message, another worker) announces nothing and returns None.
    """

    def __init__(self, *, pool: asyncpg.Pool, bus: Bus, service: str, tenant_id: str, job_id: uuid.UUID) -> None:
        super().__init__(pool=pool, bus=bus, service=service, tenant_id=tenant_id, subject={"job_id": job_id})
        self._job_id = job_id

    async def claim(self, *, stage: str, progress: float, limit: int, message: str | None = None) -> jobs.Job | None:
        """`jobs.claim`, announced. When the job ran out of attempts, announces its failure and re-raises
        `JobAttemptsExhausted` (a permanent error: the message is dead-lettered)."""
        try:
            async with self._pool.acquire() as conn:
                claimed = await jobs.claim(
                    conn, self._job_id, stage=stage, progress=progress, limit=limit, message=message
                )
        except jobs.JobAttemptsExhausted as exc:
            await self.announce_job(exc.job)
            raise
        if claimed is not None:
            await self.announce_job(claimed)
        return claimed

    async def stage(
        self, stage: str, progress: float, *, message: str = "", status: JobStatus = JobStatus.RUNNING
    ) -> int | None:
        """Record and announce a stage while the job is in `status`; ignored (None) if it moved on."""
        async with self._pool.acquire() as conn:
            seq = await jobs.record_progress(
                conn, self._job_id, expect=status, stage=stage, progress=progress, message=message
            )
        if seq is not None:
            await self.announce(status=status.value, stage=stage, progress=progress, message=message, seq=seq)
        return seq

    async def finish(
        self,
        status: JobStatus,
        *,
        stats: dict[str, Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
        message: str | None = None,
    ) -> jobs.Job | None:
        """`jobs.finish`, announced with its final status."""
        async with self._pool.acquire() as conn:
            done = await jobs.finish(conn, self._job_id, status, stats=stats, errors=errors, message=message)
        if done is not None:
            await self.announce_job(done)
        return done

    async def announce_job(self, job: jobs.Job, message: str | None = None) -> None:
        """Announce the job as its row stands (its own message unless another is given)."""
        await self.announce(
            status=job.status.value,
            stage=job.stage,
            progress=job.progress,
            message=job.message if message is None else message,
            seq=job.status_seq,
        )


async def mark_job_failed(
    *, pool: asyncpg.Pool, bus: Bus, service: str, job_id: uuid.UUID, error: dict[str, Any]
) -> None:
    """Mark a job FAILED with `error` and announce it, when its message is about to be dead-lettered.

    Best effort: a job already finished is left alone, and a failure here is logged, never raised.
    """
    try:
        async with pool.acquire() as conn:
            done = await jobs.finish(
                conn, job_id, JobStatus.FAILED, errors=[error], message=str(error.get("message", ""))
            )
        if done is not None:
            reporter = JobReporter(pool=pool, bus=bus, service=service, tenant_id=done.tenant_id, job_id=done.id)
            await reporter.announce_job(done)
    except Exception:
        log.exception("job_not_marked_failed", job_id=str(job_id))
