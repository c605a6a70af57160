"""The names of validated files in the firm's declaration layout (ADR 0004).

    {tenant}/declaration/{year}/periode-{start}-{end}/{YYYYMMDD}_{Type}_{TenantName}

The rest of the object layout is shared with the loader: `comptaflow.common.layout`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from comptaflow.common.layout import period_prefix
from comptaflow.period_validator.findings import FileKind

# Keyed by upload field: the five Excel exports, or the single FEC.
DECLARED_NAMES: dict[str, str] = {
    FileKind.GRAND_LIVRE_COMPTES: "GrandLivre",
    FileKind.GRAND_LIVRE_TIERS: "GrandLivreTiers",
    FileKind.PLAN_COMPTES: "PlanComptes",
    FileKind.PLAN_TIERS: "PlanTiers",
    FileKind.CODE_JOURNAL: "CodeJournal",
    "fec": "FEC",
}


def tenant_file_name(name: str) -> str:
    """`ACME SARL` → `ACME_SARL`; accents dropped, anything but letters, digits, `-` and `_` folded to `_`."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_name).strip("_")
    return cleaned or "tenant"


def declared_key(tenant_id: str, tenant_name: str, start: date, end: date, *, kind: str, day: date) -> str:
    return f"{period_prefix(tenant_id, start, end)}{day:%Y%m%d}_{DECLARED_NAMES[kind]}_{tenant_file_name(tenant_name)}"
