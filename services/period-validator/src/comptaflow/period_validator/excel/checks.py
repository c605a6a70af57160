"""Checks across files once each file is read: balance, period, references (docs/api.md, Excel exports).

Errors: UNBALANCED (the general ledger's debits and credits differ), ENTRY_OUTSIDE_PERIOD (one finding
per ledger: the first offending row, the count and the first rows in `details`). Warnings, one per
distinct code (first row and number of lines, capped): UNKNOWN_ACCOUNT, UNKNOWN_JOURNAL, UNKNOWN_TIERS.
"""

from __future__ import annotations

import polars as pl

from comptaflow.period_validator.excel.totals import euros
from comptaflow.period_validator.findings import Code, FileKind, Finding, Period

MAX_LISTED_ROWS = 20
MAX_UNKNOWN = 50


def balance(debit_cents: int, credit_cents: int, lines: int) -> Finding | None:
    if debit_cents == credit_cents:
        return None
    return Finding(
        Code.UNBALANCED,
        (
            f"the general ledger does not balance: debits {euros(debit_cents)} ≠ credits {euros(credit_cents)} "
            f"(difference {euros(debit_cents - credit_cents)}) over {lines} lines"
        ),
        file=FileKind.GRAND_LIVRE_COMPTES.value,
        details={
            "total_debit": euros(debit_cents),
            "total_credit": euros(credit_cents),
            "difference": euros(debit_cents - credit_cents),
        },
    )


def outside_period(kind: FileKind, table: pl.DataFrame, period: Period) -> Finding | None:
    outside = table.filter((pl.col("date") < period.start) | (pl.col("date") > period.end)).select("row", "date")
    if outside.is_empty():
        return None
    first = outside.head(MAX_LISTED_ROWS)
    rows = first["row"].to_list()
    listed = ", ".join(f"row {row} ({day:%d/%m/%Y})" for row, day in first.iter_rows())
    return Finding(
        Code.ENTRY_OUTSIDE_PERIOD,
        (
            f"{outside.height} entries fall outside the period {period.start:%d/%m/%Y} to {period.end:%d/%m/%Y}: "
            f"{listed}{' …' if outside.height > MAX_LISTED_ROWS else ''}"
        ),
        file=kind.value,
        row=rows[0],
        details={
            "count": outside.height,
            "rows": rows,
            "dates": [day.isoformat() for day in first["date"].to_list()],
        },
    )


def unknown_codes(
    code: Code,
    kind: FileKind,
    used: pl.DataFrame,
    known: pl.Series,
    *,
    what: str,
    reference: FileKind,
    fold_case: bool = False,
) -> list[Finding]:
    """One warning per code of `used` (columns `code`, `row`) that is not in `known`."""
    key = pl.col("code").str.to_uppercase() if fold_case else pl.col("code")
    known_keys = known.str.to_uppercase() if fold_case else known
    missing = (
        used.filter(pl.col("code").is_not_null())
        .group_by("code")
        .agg(first_row=pl.col("row").min(), lines=pl.len())
        .filter(~key.is_in(known_keys.implode()))
        .sort("first_row")
    )
    findings = [
        Finding(
            code,
            f"{what} {value!r} ({lines} line(s), first at row {first_row}) is not in {reference.value}",
            file=kind.value,
            row=first_row,
            details={"code": value, "lines": lines},
        )
        for value, first_row, lines in missing.head(MAX_UNKNOWN).iter_rows()
    ]
    if missing.height > MAX_UNKNOWN:
        findings.append(
            Finding(
                code,
                f"{missing.height - MAX_UNKNOWN} more unknown {what}s in {kind.value}",
                file=kind.value,
                details={"count": missing.height},
            )
        )
    return findings
