"""Validating the five Excel files of a period: read each, then check them against each other."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl

from comptaflow.period_validator.excel import checks
from comptaflow.period_validator.excel.dimensions import Reference, read_reference
from comptaflow.period_validator.excel.headers import HeaderNotFound
from comptaflow.period_validator.excel.ledger import Ledger, read_ledger
from comptaflow.period_validator.excel.period import compare
from comptaflow.period_validator.excel.schemas import empty_table
from comptaflow.period_validator.excel.totals import euros
from comptaflow.period_validator.excel.workbook import Grid, NotExcel, TooComplex, read_grid
from comptaflow.period_validator.findings import Code, FileKind, Finding, ValidationResult

Progress = Callable[[str, float], None]

READ_THREADS = 3
"""Files are read concurrently (fastexcel releases the GIL) and parsed in order on the caller's thread."""

_LEDGERS = (FileKind.GRAND_LIVRE_COMPTES, FileKind.GRAND_LIVRE_TIERS)
_ORDER = (*_LEDGERS, FileKind.PLAN_COMPTES, FileKind.PLAN_TIERS, FileKind.CODE_JOURNAL)
_DONE_AFTER = {
    FileKind.GRAND_LIVRE_COMPTES: 0.55,
    FileKind.GRAND_LIVRE_TIERS: 0.8,
    FileKind.PLAN_COMPTES: 0.85,
    FileKind.PLAN_TIERS: 0.9,
    FileKind.CODE_JOURNAL: 0.95,
}


def _ignore_progress(_stage: str, _fraction: float) -> None:
    return None


def _read_grid(kind: FileKind, path: Path | None) -> Grid | Finding:
    """The file's grid, or why there is none (runs in a worker thread: fastexcel releases the GIL)."""
    if path is None or not path.is_file():
        missing = "is missing" if path is None else "cannot be found"
        return Finding(Code.MISSING_FILE, f"the file {kind.value} {missing}", file=kind.value)
    try:
        return read_grid(path)
    except TooComplex as exc:
        return Finding(Code.FILE_TOO_COMPLEX, exc.message, file=kind.value)
    except NotExcel as exc:
        return Finding(Code.NOT_EXCEL, exc.message, file=kind.value)


def _parse(kind: FileKind, grid: Grid | Finding, result: ValidationResult) -> Ledger | Reference | None:
    if isinstance(grid, Finding):
        result.errors.append(grid)
        return None
    try:
        if grid.height == 0:
            raise HeaderNotFound("the sheet is empty: no sheet of the workbook holds any cell")
        return read_ledger(kind, grid) if kind in _LEDGERS else read_reference(kind, grid)
    except HeaderNotFound as exc:
        result.errors.append(exc.finding(kind))
    return None


def _period_checks(ledgers: dict[FileKind, Ledger], result: ValidationResult) -> None:
    comptes = ledgers.get(FileKind.GRAND_LIVRE_COMPTES)
    tiers = ledgers.get(FileKind.GRAND_LIVRE_TIERS)
    if comptes is not None and tiers is not None and comptes.period and tiers.period:
        mismatch = compare(comptes.period, tiers.period)
        if mismatch is not None:
            result.errors.append(mismatch)
    result.period = (comptes.period if comptes else None) or (tiers.period if tiers else None)
    for kind, ledger in ledgers.items():
        if ledger.period is not None:
            finding = checks.outside_period(kind, ledger.table, ledger.period)
            if finding is not None:
                result.errors.append(finding)


def _reference_checks(
    ledgers: dict[FileKind, Ledger], references: dict[FileKind, Reference], result: ValidationResult
) -> None:
    comptes = ledgers.get(FileKind.GRAND_LIVRE_COMPTES)
    tiers = ledgers.get(FileKind.GRAND_LIVRE_TIERS)
    plan = references.get(FileKind.PLAN_COMPTES)
    plan_tiers = references.get(FileKind.PLAN_TIERS)
    journals = references.get(FileKind.CODE_JOURNAL)
    if comptes is not None and plan is not None:
        result.warnings += checks.unknown_codes(
            Code.UNKNOWN_ACCOUNT,
            FileKind.GRAND_LIVRE_COMPTES,
            comptes.table.select("row", code=pl.col("account")),
            plan.table["account"],
            what="account",
            reference=FileKind.PLAN_COMPTES,
        )
    if tiers is not None and plan_tiers is not None:
        result.warnings += checks.unknown_codes(
            Code.UNKNOWN_TIERS,
            FileKind.GRAND_LIVRE_TIERS,
            tiers.table.select("row", code=pl.col("account")),
            plan_tiers.table["code"],
            what="third party",
            reference=FileKind.PLAN_TIERS,
        )
        tiers.table = _with_collectif(tiers.table, plan_tiers.table)
    if journals is not None:
        for kind, ledger in ledgers.items():
            result.warnings += checks.unknown_codes(
                Code.UNKNOWN_JOURNAL,
                kind,
                ledger.table.select("row", code=pl.col("journal")),
                journals.table["code"],
                what="journal",
                reference=FileKind.CODE_JOURNAL,
                fold_case=True,
            )


def _with_collectif(table: pl.DataFrame, plan_tiers: pl.DataFrame) -> pl.DataFrame:
    """Fill the third-party ledger's missing `collectif` from the plan tiers."""
    if table.is_empty() or table["collectif"].null_count() == 0:
        return table
    known = plan_tiers.select(pl.col("code").alias("account"), pl.col("collectif").alias("_plan_collectif"))
    return (
        table.join(known, on="account", how="left", maintain_order="left")
        .with_columns(collectif=pl.coalesce("collectif", "_plan_collectif"))
        .drop("_plan_collectif")
    )


def _stats(ledgers: dict[FileKind, Ledger], references: dict[FileKind, Reference]) -> dict[str, Any]:
    stats: dict[str, Any] = {kind.value: ledger.stats for kind, ledger in ledgers.items()}
    stats.update({kind.value: reference.stats for kind, reference in references.items()})
    comptes = ledgers.get(FileKind.GRAND_LIVRE_COMPTES)
    if comptes is not None:
        stats["total_debit"] = euros(comptes.debit_cents)
        stats["total_credit"] = euros(comptes.credit_cents)
        stats["entries"] = comptes.table.height
    return stats


def validate_excel(paths: Mapping[FileKind, Path], *, on_progress: Progress | None = None) -> ValidationResult:
    """Read and check the five files of a period (pure: no network, no database).

    `on_progress(stage, fraction)` is called on the caller's thread before and after each file
    (`parse:<kind>`, `parsed:<kind>`), then for the cross-file checks (`checks`) and at the end
    (`done`, 1.0); fractions never decrease.
    """
    progress = on_progress or _ignore_progress
    result = ValidationResult()
    ledgers: dict[FileKind, Ledger] = {}
    references: dict[FileKind, Reference] = {}
    previous = 0.0
    with ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="excel-read") as pool:
        grids = {kind: pool.submit(_read_grid, kind, paths.get(kind)) for kind in _ORDER}
        for kind in _ORDER:
            progress(f"parse:{kind.value}", previous)
            parsed = _parse(kind, grids.pop(kind).result(), result)
            if isinstance(parsed, Ledger):
                ledgers[kind] = parsed
                result.errors += parsed.errors
                result.warnings += parsed.warnings
            elif isinstance(parsed, Reference):
                references[kind] = parsed
                result.warnings += parsed.warnings
            previous = _DONE_AFTER[kind]
            progress(f"parsed:{kind.value}", previous)
    progress("checks", previous)
    comptes = ledgers.get(FileKind.GRAND_LIVRE_COMPTES)
    if comptes is not None:
        unbalanced = checks.balance(comptes.debit_cents, comptes.credit_cents, comptes.table.height)
        if unbalanced is not None:
            result.errors.append(unbalanced)
    _period_checks(ledgers, result)
    _reference_checks(ledgers, references, result)
    for kind in _ORDER:
        parsed_table = (
            ledgers[kind].table if kind in ledgers else references[kind].table if kind in references else None
        )
        result.tables[kind.value] = parsed_table if parsed_table is not None else empty_table(kind)
    result.stats = _stats(ledgers, references)
    progress("done", 1.0)
    return result
