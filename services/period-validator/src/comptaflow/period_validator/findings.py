"""What validation found: errors block a batch, warnings do not.

Codes are the public ones of the API (docs/api.md, Validation codes); each finding names the file (upload field)
and the 1-based spreadsheet row or text line where that applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

import polars as pl


class FileKind(StrEnum):
    """The five Excel exports of a period, named as the upload fields."""

    GRAND_LIVRE_COMPTES = "grand_livre_comptes"
    GRAND_LIVRE_TIERS = "grand_livre_tiers"
    PLAN_COMPTES = "plan_comptes"
    PLAN_TIERS = "plan_tiers"
    CODE_JOURNAL = "code_journal"


class Code(StrEnum):
    """Public error and warning codes (docs/api.md, Validation codes)."""

    MISSING_FILE = "MISSING_FILE"
    NOT_EXCEL = "NOT_EXCEL"
    NOT_FEC = "NOT_FEC"
    HEADER_NOT_FOUND = "HEADER_NOT_FOUND"
    PERIOD_NOT_FOUND = "PERIOD_NOT_FOUND"
    PERIOD_MISMATCH = "PERIOD_MISMATCH"
    PERIOD_INVALID = "PERIOD_INVALID"
    PERIOD_OVERLAP = "PERIOD_OVERLAP"
    ENTRY_OUTSIDE_PERIOD = "ENTRY_OUTSIDE_PERIOD"
    UNBALANCED = "UNBALANCED"
    TOTAL_MISMATCH = "TOTAL_MISMATCH"
    FEC_COLUMNS = "FEC_COLUMNS"
    FEC_FORMAT = "FEC_FORMAT"
    FILE_TOO_COMPLEX = "FILE_TOO_COMPLEX"  # over a parsing limit (memory, time, cells, inflated size); names it
    INVALID_VALUE = "INVALID_VALUE"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # warnings
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    UNKNOWN_JOURNAL = "UNKNOWN_JOURNAL"
    UNKNOWN_TIERS = "UNKNOWN_TIERS"
    SKIPPED_ROWS = "SKIPPED_ROWS"
    # FEC warnings: rules of article A47 A-1 that real files break routinely (see period_validator.fec)
    MISSING_VALID_DATE = "MISSING_VALID_DATE"
    ENTRIES_NOT_NUMBERED = "ENTRIES_NOT_NUMBERED"
    UNBALANCED_PIECES = "UNBALANCED_PIECES"
    INCOMPLETE_FIELDS = "INCOMPLETE_FIELDS"


@dataclass(frozen=True, slots=True)
class Finding:
    code: Code
    message: str
    file: str | None = None
    row: int | None = None
    details: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.file is not None:
            out["file"] = self.file
        if self.row is not None:
            out["row"] = self.row
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(Code(data["code"]), data["message"], data.get("file"), data.get("row"), data.get("details"))


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date


@dataclass(slots=True)
class ValidationResult:
    """Outcome of validating one batch.

    `tables` holds the normalised tables, keyed by FileKind value (Excel) — see
    comptaflow.period_validator.excel.schemas for their columns. They are written as Parquet for the
    loader only when `errors` is empty.
    """

    period: Period | None = None
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors
