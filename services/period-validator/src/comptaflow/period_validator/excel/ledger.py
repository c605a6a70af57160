"""Reading a grand livre (general or third-party) into the normalised ledger table.

Whole columns at a time: every row gets its date and amounts parsed; rows with a date and a journal or
an amount are entries; the others (blank, repeated headers and preambles, group rows, totals…) are
classified by `row_kinds` — a few percent of the sheet. Group rows give the account of the entries
below them (an as-of join), totals are checked by `totals`, and unreadable cells become INVALID_VALUE
findings naming the row. Only Python loops over the preamble and over the findings it reports.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from comptaflow.period_validator.excel import cells
from comptaflow.period_validator.excel.headers import Header, HeaderNotFound, find_header
from comptaflow.period_validator.excel.period import PeriodProblem, read_period
from comptaflow.period_validator.excel.row_kinds import SKIP_REASONS, classify
from comptaflow.period_validator.excel.schemas import FEC_ONLY, LEDGER
from comptaflow.period_validator.excel.totals import check_totals, euros
from comptaflow.period_validator.excel.workbook import Grid
from comptaflow.period_validator.findings import Code, FileKind, Finding, Period

MAX_INVALID_FINDINGS = 20

_PROBLEMS = {
    "debit": "unreadable debit amount",
    "credit": "unreadable credit amount",
    "invalid_date": "unreadable date",
    "missing_date": "entry without a date",
    "journal": "entry without a journal code",
    "account": "entry without an account (no account cell and no account group row above it)",
    "total_amount": "unreadable amount on a total row",
}


@dataclass(slots=True)
class Ledger:
    table: pl.DataFrame
    period: Period | None = None
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    debit_cents: int = 0
    credit_cents: int = 0


@dataclass(frozen=True, slots=True)
class _Columns:
    """Grid columns of the header fields, as expressions (null literal when absent)."""

    names: dict[str, str]

    def raw(self, name: str) -> pl.Expr:
        return pl.col(self.names[name]) if name in self.names else pl.lit(None, dtype=pl.String)

    def has(self, name: str) -> bool:
        return name in self.names


def _base(grid: Grid, header: Header, columns: _Columns) -> pl.DataFrame:
    names = grid.frame.columns
    frame = grid.frame.slice(header.index + 1).with_row_index("row", offset=header.index + 2)
    frame = cells.with_dates(frame, {"date": columns.raw("date")})
    frame = cells.with_amounts(frame, {"debit_c": columns.raw("debit"), "credit_c": columns.raw("credit")})
    return frame.with_columns(
        journal_present=columns.raw("journal").is_not_null(),
        amount_present=columns.raw("debit").is_not_null() | columns.raw("credit").is_not_null(),
        blank=pl.all_horizontal(pl.col(name).is_null() for name in names),
    ).with_columns(entry=pl.col("date").is_not_null() & (pl.col("amount_present") | pl.col("journal_present")))


def _real_groups(others: pl.DataFrame, entries: pl.DataFrame) -> pl.DataFrame:
    """Group rows that open the entries below them.

    A candidate followed by an entry before any repeated header is one. A candidate followed by a
    page break (header) before its first entry is one when the same code opens the next page (the
    `(suite)` row), or when its code holds a digit and no other group row comes before that entry;
    otherwise it is a line of a repeated preamble (a company name such as `ACME SARL`).
    """
    groups = others.filter(pl.col("kind") == "group").select("row", "group_code", "group_label")
    if groups.is_empty():
        return groups
    next_entry = entries.select("row", next_entry=pl.col("row"))
    headers = others.filter(pl.col("kind") == "header").select("row")
    after_header = headers.join_asof(
        groups.select("row", after_row=pl.col("row"), after_code=pl.col("group_code")),
        on="row",
        strategy="forward",
        check_sortedness=False,
    ).rename({"row": "next_header"})
    located = (
        groups.join_asof(next_entry, on="row", strategy="forward", check_sortedness=False)
        .join_asof(
            headers.select("row", next_header=pl.col("row")), on="row", strategy="forward", check_sortedness=False
        )
        .join(after_header, on="next_header", how="left", maintain_order="left")
    )
    entry_first = pl.col("next_header").is_null() | (pl.col("next_entry") < pl.col("next_header"))
    continued = (
        (pl.col("after_code") == pl.col("group_code")) & (pl.col("after_row") < pl.col("next_entry"))
    ).fill_null(False)
    lone = pl.col("group_code").str.contains(r"\d") & (
        pl.col("after_row").is_null() | (pl.col("after_row") > pl.col("next_entry"))
    )
    real = pl.col("next_entry").is_not_null() & (entry_first | continued | lone)
    return located.filter(real).select("row", "group_code", "group_label")


def _accounts(
    kind: FileKind, entries: pl.DataFrame, groups: pl.DataFrame, columns: _Columns
) -> tuple[pl.DataFrame, str | None]:
    """Entries with `account`, `account_label`, `collectif`; or a reason why no account can be known."""
    tiers = kind == FileKind.GRAND_LIVRE_TIERS
    account_source = "account"
    collectif = pl.coalesce(cells.code(columns.raw("collectif")), cells.code(columns.raw("general_account")))
    if not columns.has("account") and groups.is_empty():
        if not (tiers and columns.has("general_account")):
            what = "third-party column (Tiers, Compte tiers…)" if tiers else "account column (Compte, N° compte…)"
            return entries, f"no {what} and no account group rows (e.g. '401000 - Fournisseurs')"
        account_source = "general_account"
        collectif = cells.code(columns.raw("collectif"))
    joined = entries.join_asof(groups, on="row", strategy="backward", check_sortedness=False)
    return (
        joined.with_columns(
            account=pl.coalesce(cells.code(columns.raw(account_source)), pl.col("group_code")),
            account_label=pl.coalesce(cells.text(columns.raw("account_label")), pl.col("group_label")),
            collectif=collectif if tiers else pl.lit(None, dtype=pl.String),
        ),
        None,
    )


def _problems(entries: pl.DataFrame, columns: _Columns) -> pl.DataFrame:
    entries = cells.with_dates(entries, {"due_date": columns.raw("due_date")})
    return entries.with_columns(journal=cells.text(columns.raw("journal"))).with_columns(
        problem=pl.when(pl.col("debit_c").is_null())
        .then(pl.lit("debit"))
        .when(pl.col("credit_c").is_null())
        .then(pl.lit("credit"))
        .when(pl.col("journal").is_null())
        .then(pl.lit("journal"))
        .when(pl.col("account").is_null())
        .then(pl.lit("account")),
        amount_ok=pl.col("debit_c").is_not_null() & pl.col("credit_c").is_not_null(),
        bad_due_date=columns.raw("due_date").is_not_null() & pl.col("due_date").is_null(),
    )


def _invalid_findings(kind: FileKind, entries: pl.DataFrame, others: pl.DataFrame, columns: _Columns) -> list[Finding]:
    raw_of = {
        "debit": columns.raw("debit"),
        "credit": columns.raw("credit"),
        "invalid_date": columns.raw("date"),
        "total_amount": pl.coalesce(columns.raw("debit"), columns.raw("credit")),
    }
    value = pl.lit(None, dtype=pl.String)
    for problem, raw in raw_of.items():
        value = pl.when(pl.col("problem") == problem).then(raw).otherwise(value)
    from_entries = entries.filter(pl.col("problem").is_not_null()).select("row", "problem", value=value)
    unreadable_total = pl.col("kind").is_in(["total_account", "total_general"]) & (
        pl.col("debit_c").is_null() | pl.col("credit_c").is_null()
    )
    from_others = (
        others.filter(pl.col("kind").is_in(["invalid_date", "missing_date"]) | unreadable_total)
        .with_columns(problem=pl.when(unreadable_total).then(pl.lit("total_amount")).otherwise(pl.col("kind")))
        .select("row", "problem", value=value)
    )
    invalid = pl.concat([from_entries, from_others]).sort("row")
    if invalid.is_empty():
        return []
    counts = dict(invalid.group_by("problem").len().iter_rows())
    findings = [
        Finding(
            Code.INVALID_VALUE,
            _PROBLEMS[problem] + (f": {cell!r}" if cell is not None else ""),
            file=kind.value,
            row=row,
            details={"problem": problem, "value": cell},
        )
        for row, problem, cell in invalid.head(MAX_INVALID_FINDINGS).iter_rows()
    ]
    if invalid.height > MAX_INVALID_FINDINGS:
        findings.append(
            Finding(
                Code.INVALID_VALUE,
                f"{invalid.height - MAX_INVALID_FINDINGS} more unreadable rows in this file",
                file=kind.value,
                details={"count": invalid.height, "by_problem": counts},
            )
        )
    return findings


def _skipped(blank: int, others: pl.DataFrame) -> dict[str, int]:
    counts: Counter[str] = Counter({"blank": blank})
    counts.update(dict(others.group_by("kind").len().iter_rows()))
    return {reason: counts[reason] for reason in SKIP_REASONS if counts[reason]}


def _skipped_warning(kind: FileKind, skipped: dict[str, int]) -> Finding | None:
    total = sum(skipped.values())
    if not total:
        return None
    parts = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in skipped.items())
    return Finding(
        Code.SKIPPED_ROWS,
        f"{total} rows that are not entries were skipped ({parts})",
        file=kind.value,
        details={"total": total, "by_reason": skipped},
    )


def _due_date_warning(kind: FileKind, entries: pl.DataFrame) -> Finding | None:
    bad = entries.filter(pl.col("bad_due_date"))
    if bad.is_empty():
        return None
    rows = bad["row"].head(MAX_INVALID_FINDINGS).to_list()
    return Finding(
        Code.INVALID_VALUE,
        f"{bad.height} unreadable due date(s) (Échéance) left empty; first rows: {rows}",
        file=kind.value,
        row=rows[0],
        details={"count": bad.height, "rows": rows},
    )


def _table(entries: pl.DataFrame, columns: _Columns) -> pl.DataFrame:
    return (
        entries.filter(pl.col("problem").is_null())
        .select(
            pl.col("row"),
            pl.col("date"),
            pl.col("journal"),
            piece=cells.text(columns.raw("piece")),
            account=pl.col("account"),
            account_label=pl.col("account_label"),
            label=cells.text(columns.raw("label")).fill_null(""),
            debit=cells.cents_to_amount(pl.col("debit_c")),
            credit=cells.cents_to_amount(pl.col("credit_c")),
            lettrage=cells.text(columns.raw("lettrage")),
            due_date=pl.col("due_date"),
            collectif=pl.col("collectif"),
            **{name: pl.lit(None, dtype=LEDGER[name]) for name in FEC_ONLY},
        )
        .cast(LEDGER)
    )


def read_ledger(kind: FileKind, grid: Grid) -> Ledger:
    """Parse one grand livre; raises HeaderNotFound when its columns cannot be identified."""
    header = find_header(kind, grid.frame)
    ledger = Ledger(table=pl.DataFrame(schema=LEDGER))
    try:
        ledger.period = read_period(grid.frame.head(header.index).rows())
    except PeriodProblem as problem:
        ledger.errors.append(problem.finding(kind))
    columns = _Columns(dict(header.columns))
    base = _base(grid, header, columns)
    entries = base.filter(pl.col("entry"))
    others = classify(base.filter(~pl.col("entry") & ~pl.col("blank")), kind, grid.frame.columns, dict(header.columns))
    groups = _real_groups(others, entries)
    others = others.with_columns(
        kind=pl.when((pl.col("kind") == "group") & ~pl.col("row").is_in(groups["row"].implode()))
        .then(pl.lit("preamble"))
        .otherwise(pl.col("kind"))
    )
    entries, missing = _accounts(kind, entries, groups, columns)
    if missing is not None:
        raise HeaderNotFound(f"header row {header.sheet_row}: {missing}", header.sheet_row)
    entries = _problems(entries, columns)
    ledger.errors.extend(_invalid_findings(kind, entries, others, columns))
    ledger.errors.extend(check_totals(kind, entries.with_columns(pl.col("debit_c", "credit_c").fill_null(0)), others))
    ledger.table = _table(entries, columns)
    skipped = _skipped(int(base["blank"].sum()), others)
    for warning in (_skipped_warning(kind, skipped), _due_date_warning(kind, entries)):
        if warning is not None:
            ledger.warnings.append(warning)
    sums = entries.filter(pl.col("problem").is_null()).select(pl.col("debit_c").sum(), pl.col("credit_c").sum())
    ledger.debit_cents, ledger.credit_cents = (int(value or 0) for value in sums.row(0))
    ledger.stats = {
        "sheet": grid.sheet,
        "rows": grid.height,
        "header_row": header.sheet_row,
        "columns": dict(header.labels),
        "entries": ledger.table.height,
        "invalid_rows": entries.height
        - ledger.table.height
        + others.filter(pl.col("kind").is_in(["invalid_date", "missing_date"])).height,
        "group_rows": groups.height,
        "skipped": skipped,
        "total_debit": euros(ledger.debit_cents),
        "total_credit": euros(ledger.credit_cents),
    }
    return ledger
