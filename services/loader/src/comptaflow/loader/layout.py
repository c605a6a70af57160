"""Object keys the loader reads and writes (same layout as the period validator's, CONTRACT §4).

{tenant}/staging/{batch_id}/{table}.parquet                                   normalised tables (input)
{tenant}/declaration/{year}/periode-{start}-{end}/backup/{YYYYMMDD_HHMMSS}/…   files of a replaced load
"""

from __future__ import annotations

import uuid
from datetime import date, datetime


def staging_key(tenant_id: str, batch_id: uuid.UUID, table: str) -> str:
    return f"{tenant_id}/staging/{batch_id}/{table}.parquet"


def backup_prefix(tenant_id: str, start: date, end: date, at: datetime) -> str:
    return f"{tenant_id}/declaration/{end.year}/periode-{start:%Y%m%d}-{end:%Y%m%d}/backup/{at:%Y%m%d_%H%M%S}/"
