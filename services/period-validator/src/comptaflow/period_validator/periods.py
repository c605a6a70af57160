"""Loaded periods of a tenant, as the validator sees them (read from `comptaflow.common.loads`)."""

from __future__ import annotations

from datetime import date

from comptaflow.common import loads
from comptaflow.common.db import Conn
from comptaflow.period_validator.findings import Code, Finding, Period


async def overlap_findings(conn: Conn, tenant_id: str, period: Period) -> list[Finding]:
    """A period equal to a loaded one will replace it; one that partially overlaps is refused."""
    loaded = await loads.overlapping_periods(conn, tenant_id, period.start, period.end)
    return [_overlap(start, end, period) for start, end in loaded]


def _overlap(start: date, end: date, period: Period) -> Finding:
    return Finding(
        Code.PERIOD_OVERLAP,
        f"the period {period.start:%d/%m/%Y}-{period.end:%d/%m/%Y} partially overlaps the loaded period "
        f"{start:%d/%m/%Y}-{end:%d/%m/%Y}; upload exactly that period to replace it",
        details={"loaded_period_start": start.isoformat(), "loaded_period_end": end.isoformat()},
    )
