"""Where a batch's files live in object storage.

{tenant}/incoming/{batch_id}/{field}…                       as uploaded (gateway)
{tenant}/staging/{batch_id}/{table}.parquet                 normalised tables for the loader
{tenant}/declaration/{year}/periode-{start}-{end}/{YYYYMMDD}_{Type}_{TenantName}
                                                            the validated files, named as the firm expects
{tenant}/declaration/{year}/periode-{start}-{end}/backup/{YYYYMMDD_HHMMSS}/…
                                                            earlier files of the same names, kept before a replacement
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import date, datetime

from comptaflow.period_validator.findings import FileKind

DECLARED_NAMES: dict[FileKind, str] = {
    FileKind.GRAND_LIVRE_COMPTES: "GrandLivre",
    FileKind.GRAND_LIVRE_TIERS: "GrandLivreTiers",
    FileKind.PLAN_COMPTES: "PlanComptes",
    FileKind.PLAN_TIERS: "PlanTiers",
    FileKind.CODE_JOURNAL: "CodeJournal",
}


def tenant_file_name(name: str) -> str:
    """`ACME SARL` → `ACME_SARL`; accents dropped, anything but letters, digits, `-` and `_` folded to `_`."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_name).strip("_")
    return cleaned or "tenant"


def period_prefix(tenant_id: str, start: date, end: date) -> str:
    return f"{tenant_id}/declaration/{end.year}/periode-{start:%Y%m%d}-{end:%Y%m%d}/"


def declared_key(tenant_id: str, tenant_name: str, start: date, end: date, *, kind: FileKind, day: date) -> str:
    return f"{period_prefix(tenant_id, start, end)}{day:%Y%m%d}_{DECLARED_NAMES[kind]}_{tenant_file_name(tenant_name)}"


def backup_prefix(tenant_id: str, start: date, end: date, at: datetime) -> str:
    return f"{period_prefix(tenant_id, start, end)}backup/{at:%Y%m%d_%H%M%S}/"


def staging_key(tenant_id: str, batch_id: uuid.UUID, table: str) -> str:
    return f"{tenant_id}/staging/{batch_id}/{table}.parquet"
