"""`etl_metadata`: one row per load attempt (running → success | failed), as in the seed's schema.

The table is a ReplacingMergeTree on `updated_at`: writing the same attempt again replaces its state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from comptaflow.common.warehouse import Warehouse

_INSERT = (
    "INSERT INTO {db}.etl_metadata (tenant_id, batch_id, attempt_id, period_start, period_end,"
    " processing_start, processing_end, status, records_inserted, error_message, updated_at)"
    " VALUES ({{tenant:String}}, {{batch:UUID}}, {{attempt:UUID}}, {{start:Date}}, {{end:Date}},"
    " {{started:DateTime64(3, 'UTC')}}, {{ended:Nullable(DateTime64(3, 'UTC'))}}, {{status:String}},"
    " {{records:UInt64}}, {{error:Nullable(String)}}, now64(3, 'UTC'))"
)


@dataclass(frozen=True, slots=True)
class Attempt:
    tenant_id: str
    batch_id: uuid.UUID
    period_start: date
    period_end: date
    attempt_id: uuid.UUID
    started: datetime


async def running(warehouse: Warehouse, *, tenant_id: str, batch_id: uuid.UUID, start: date, end: date) -> Attempt:
    attempt = Attempt(tenant_id, batch_id, start, end, uuid.uuid4(), datetime.now(UTC))
    await _write(warehouse, attempt, status="running", records=0, error=None, ended=None)
    return attempt


async def finished(warehouse: Warehouse, attempt: Attempt, *, records: int, error: str | None = None) -> None:
    status = "failed" if error is not None else "success"
    await _write(warehouse, attempt, status=status, records=records, error=error, ended=datetime.now(UTC))


async def _write(
    warehouse: Warehouse, attempt: Attempt, *, status: str, records: int, error: str | None, ended: datetime | None
) -> None:
    await warehouse.command(
        _INSERT.format(db=warehouse.database),
        {
            "tenant": attempt.tenant_id,
            "batch": attempt.batch_id,
            "attempt": attempt.attempt_id,
            "start": attempt.period_start,
            "end": attempt.period_end,
            "started": attempt.started.replace(tzinfo=None),
            "ended": ended.replace(tzinfo=None) if ended else None,
            "status": status,
            "records": records,
            "error": error[:2000] if error else None,
        },
    )
