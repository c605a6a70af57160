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
from typing import Final

STAGED_TAGS: Final = ("tenant_id", "load_id")
"""The leading columns of every staged table: the tenant and the batch id (UUID as text) that tag each
warehouse row. The validator stages a table insert-ready — these, then the warehouse table's columns in its
order (`warehouse.schema.DIMENSIONS`, `FACTS`) — and the loader forwards its bytes without decoding them."""

STAGED_ROW_GROUP_ROWS: Final = 1_048_576
"""Rows per Parquet row group of a staged table (the warehouse's insert block): one part per million rows."""


def period_prefix(tenant_id: str, start: date, end: date) -> str:
    return f"{tenant_id}/declaration/{end.year}/periode-{start:%Y%m%d}-{end:%Y%m%d}/"


def backup_prefix(tenant_id: str, start: date, end: date, at: datetime) -> str:
    return f"{period_prefix(tenant_id, start, end)}backup/{at:%Y%m%d_%H%M%S}/"


def staging_key(tenant_id: str, batch_id: uuid.UUID, table: str) -> str:
    return f"{staging_prefix(tenant_id, batch_id)}{table}.parquet"


def incoming_prefix(tenant_id: str, batch_id: uuid.UUID) -> str:
    """Where the gateway streams a batch's uploaded files (`{prefix}{field}{ext}`)."""
    return f"{tenant_id}/incoming/{batch_id}/"


def staging_prefix(tenant_id: str, batch_id: uuid.UUID) -> str:
    """Every staged table of a batch (`staging_key`) lies under this prefix."""
    return f"{tenant_id}/staging/{batch_id}/"
