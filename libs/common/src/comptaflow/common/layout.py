"""Where a batch's objects live in S3 — shared by the services that write and read them.

{tenant}/incoming/{batch_id}/{field}.{ext}                    as uploaded (gateway)
{tenant}/staging/{batch_id}/{table}.parquet                   normalised tables (validator → loader)
{tenant}/declaration/{year}/periode-{start}-{end}/…           the validated files (validator)
{tenant}/declaration/{year}/periode-{start}-{end}/backup/{YYYYMMDD_HHMMSS}/…
                                                              files of a replaced load (validator, loader)
"""

from __future__ import annotations

import uuid
from datetime import date, datetime


def period_prefix(tenant_id: str, start: date, end: date) -> str:
    return f"{tenant_id}/declaration/{end.year}/periode-{start:%Y%m%d}-{end:%Y%m%d}/"


def backup_prefix(tenant_id: str, start: date, end: date, at: datetime) -> str:
    return f"{period_prefix(tenant_id, start, end)}backup/{at:%Y%m%d_%H%M%S}/"


def staging_key(tenant_id: str, batch_id: uuid.UUID, table: str) -> str:
    return f"{tenant_id}/staging/{batch_id}/{table}.parquet"
