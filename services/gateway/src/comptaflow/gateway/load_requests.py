"""Asking the loader for a load or a restore (docs/api.md, Loading), one PostgreSQL transaction each.

Both take a transaction-scoped advisory lock on the tenant first, so two requests of one tenant
are decided one after the other: the second sees the first one's PROCESSING batch and is refused
(`PERIOD_BUSY`) instead of both being accepted. The state change and the `LoadRequested` event are
committed together (transactional outbox); the relay publishes the event afterwards.

    request_load     VALIDATED → PROCESSING (stage "queued") + LoadRequested(batch)
    request_restore  LoadRequested(backup's batch, backup_id); the loader swaps the period's load

Refusals are `LoadRefused` with an error code: `BATCH_NOT_VALIDATED` or `PERIOD_BUSY`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from comptaflow.common import batches, loads, outbox
from comptaflow.common.contracts import BatchStatus, LoadRequested
from comptaflow.common.db import Conn
from comptaflow.common.locks import Namespace, advisory_xact_lock
from comptaflow.gateway.errors import Refusal


class LoadRefused(Refusal):
    """The request conflicts with the batch's state or with a load in progress (answered 409)."""


@dataclass(frozen=True, slots=True)
class LoadTicket:
    """What was asked of the loader: the batch whose data becomes current."""

    tenant_id: str
    batch_id: uuid.UUID
    backup_id: uuid.UUID | None = None
    period: tuple[date, date] | None = field(default=None)


async def lock_tenant_loads(conn: Conn, tenant_id: str) -> None:
    """Serialise load decisions of one tenant until the end of the current transaction."""
    await advisory_xact_lock(conn, Namespace.LOAD_REQUESTS, tenant_id)


def _period_busy(other: uuid.UUID, start: date, end: date) -> LoadRefused:
    return LoadRefused(
        "PERIOD_BUSY",
        "another batch of this tenant with an overlapping period is being loaded; retry when it has finished",
        {"batch_id": str(other), "period_start": start.isoformat(), "period_end": end.isoformat()},
    )


async def request_load(conn: Conn, batch: batches.Batch) -> LoadTicket:
    """Move a VALIDATED batch to PROCESSING and enqueue its `LoadRequested` (call inside a transaction)."""
    await lock_tenant_loads(conn, batch.tenant_id)
    # Read again under the lock: the status may have changed since the caller read it.
    state = await batches.lock_status(conn, batch.id)
    assert state is not None  # batches are never deleted
    status, start, end = state
    if status is not BatchStatus.VALIDATED or start is None or end is None:
        raise LoadRefused(
            "BATCH_NOT_VALIDATED",
            f"only a VALIDATED batch can be loaded; this one is {status.value}",
            {"status": status.value},
        )
    other = await batches.processing_overlap(conn, batch.tenant_id, start, end, excluding=batch.id)
    if other is not None:
        raise _period_busy(other, start, end)
    moved = await batches.transition(conn, batch.id, BatchStatus.PROCESSING, stage="queued", progress=0.0)
    assert moved is not None  # guarded by the row lock taken above
    await outbox.enqueue(conn, LoadRequested(tenant_id=batch.tenant_id, batch_id=batch.id))
    return LoadTicket(tenant_id=batch.tenant_id, batch_id=batch.id, period=(start, end))


async def request_restore(conn: Conn, backup_id: uuid.UUID) -> LoadTicket | None:
    """Enqueue the restore of a backup (call inside a transaction); None if the backup no longer exists.

    Refused (`PERIOD_BUSY`) while a batch of an overlapping period of the tenant is loading.
    """
    backup = await loads.get_backup(conn, backup_id)
    if backup is None:
        return None
    await lock_tenant_loads(conn, backup.tenant_id)
    # Read again under the lock: a restore decided meanwhile may have consumed the backup.
    backup = await loads.get_backup(conn, backup_id)
    if backup is None:
        return None
    start, end = backup.period_start, backup.period_end
    other = await batches.processing_overlap(conn, backup.tenant_id, start, end)
    if other is not None:
        raise _period_busy(other, start, end)
    await outbox.enqueue(conn, LoadRequested(tenant_id=backup.tenant_id, batch_id=backup.batch_id, backup_id=backup.id))
    return LoadTicket(tenant_id=backup.tenant_id, batch_id=backup.batch_id, backup_id=backup.id, period=(start, end))
