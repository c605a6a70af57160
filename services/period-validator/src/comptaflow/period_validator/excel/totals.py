"""`Total compte …` and `Total général` rows are checks: the lines above must add up to them.

Entries are cut into segments: a new segment starts when the account changes or after an account
total row. An account total row is compared with the segment of the last entry above it (zero when
that segment was already closed by another total); a `Total général` with every entry above it. The
dateless opening rows (`Solde antérieur`, `Report à nouveau`) of a segment may be included in its
total or not: either reading is accepted. Tolerance 0.01; segments holding an unreadable amount are
not checked (INVALID_VALUE already reports them). All of it is polars joins and group-bys.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import polars as pl

from comptaflow.period_validator.findings import Code, FileKind, Finding

TOLERANCE_CENTS = 1
MAX_FINDINGS = 50


def euros(cents: int) -> str:
    return f"{Decimal(cents).scaleb(-2):.2f}"


def _segments(entries: pl.DataFrame, account_totals: pl.DataFrame) -> pl.DataFrame:
    closing = account_totals.select(pl.col("row"), pl.col("row").alias("closed_by"))
    return entries.join_asof(closing, on="row", strategy="backward", check_sortedness=False).with_columns(
        seg=(
            pl.col("account").ne_missing(pl.col("account").shift(1))
            | pl.col("closed_by").ne_missing(pl.col("closed_by").shift(1))
        ).cum_sum()
    )


def _within(actual: pl.Expr, expected: pl.Expr) -> pl.Expr:
    return (actual - expected).abs() <= TOLERANCE_CENTS


def _matches(prefix: str) -> pl.Expr:
    return _within(pl.col("debit_c"), pl.col(f"{prefix}_d")) & _within(pl.col("credit_c"), pl.col(f"{prefix}_c"))


def _mismatches(checked: pl.DataFrame) -> pl.DataFrame:
    return checked.filter(pl.col("readable") & ~_matches("exp") & ~_matches("alt")).select(
        "row", "kind", "text", "total_code", "debit_c", "credit_c", "exp_d", "exp_c", pl.col("lines").cast(pl.Int64)
    )


def _account_checks(entries: pl.DataFrame, totals: pl.DataFrame, openings: pl.DataFrame) -> pl.DataFrame:
    account_totals = totals.filter(pl.col("kind") == "total_account")
    if account_totals.is_empty():
        return pl.DataFrame()
    segmented = _segments(entries, account_totals)
    sums = segmented.group_by("seg").agg(
        sum_d=pl.col("debit_c").sum(),
        sum_c=pl.col("credit_c").sum(),
        lines=pl.len(),
        readable=pl.col("amount_ok").all(),
        seg_account=pl.col("account").first(),
    )
    opened = (
        openings.join_asof(segmented.select("row", "seg"), on="row", strategy="forward", check_sortedness=False)
        .group_by("seg")
        .agg(open_d=pl.col("debit_c").sum(), open_c=pl.col("credit_c").sum())
    )
    checked = (
        account_totals.join_asof(segmented.select("row", "seg"), on="row", strategy="backward", check_sortedness=False)
        .with_columns(seg=pl.when(pl.col("seg").is_first_distinct()).then(pl.col("seg")))
        .join(sums, on="seg", how="left")
        .join(opened, on="seg", how="left")
        .with_columns(
            pl.col("sum_d", "sum_c", "open_d", "open_c", "lines").fill_null(0),
            pl.col("readable").fill_null(True),
        )
        .with_columns(
            exp_d=pl.col("sum_d"),
            exp_c=pl.col("sum_c"),
            # `Total FOURNISSEURS` may total a whole category: checked only when it names the segment.
            readable=pl.col("readable")
            & (
                pl.col("total_code").is_null()
                | pl.col("total_code").str.contains(r"\d")
                | (pl.col("total_code") == pl.col("seg_account")).fill_null(False)
            ),
        )
        .with_columns(alt_d=pl.col("sum_d") + pl.col("open_d"), alt_c=pl.col("sum_c") + pl.col("open_c"))
    )
    return _mismatches(checked)


def _general_checks(entries: pl.DataFrame, totals: pl.DataFrame, openings: pl.DataFrame) -> pl.DataFrame:
    general = totals.filter(pl.col("kind") == "total_general")
    if general.is_empty():
        return pl.DataFrame()
    running = entries.select(
        "row",
        exp_d=pl.col("debit_c").cum_sum(),
        exp_c=pl.col("credit_c").cum_sum(),
        lines=pl.int_range(1, pl.len() + 1),
        readable=pl.col("amount_ok").cum_min(),
    )
    opened = openings.select("row", open_d=pl.col("debit_c").cum_sum(), open_c=pl.col("credit_c").cum_sum())
    checked = (
        general.join_asof(running, on="row", strategy="backward", check_sortedness=False)
        .join_asof(opened, on="row", strategy="backward", check_sortedness=False)
        .with_columns(
            pl.col("exp_d", "exp_c", "open_d", "open_c", "lines").fill_null(0),
            pl.col("readable").fill_null(True),
        )
        .with_columns(alt_d=pl.col("exp_d") + pl.col("open_d"), alt_c=pl.col("exp_c") + pl.col("open_c"))
    )
    return _mismatches(checked)


def check_totals(kind: FileKind, entries: pl.DataFrame, others: pl.DataFrame) -> list[Finding]:
    """TOTAL_MISMATCH findings of one ledger.

    `entries`: row, account, debit_c, credit_c (cents, 0 when unreadable), amount_ok — in row order.
    `others`: the classified non-entry rows (row_kinds) with debit_c/credit_c, amount_present, text.
    """
    readable = pl.col("debit_c").is_not_null() & pl.col("credit_c").is_not_null()
    totals = others.filter(
        pl.col("kind").is_in(["total_account", "total_general"]) & pl.col("amount_present") & readable
    ).select("row", "kind", "text", "total_code", "debit_c", "credit_c")
    if totals.is_empty():
        return []
    openings = others.filter(pl.col("opening") & readable).select("row", "debit_c", "credit_c")
    parts = [_account_checks(entries, totals, openings), _general_checks(entries, totals, openings)]
    bad = [part for part in parts if not part.is_empty()]
    if not bad:
        return []
    rows = pl.concat(bad).sort("row").head(MAX_FINDINGS)
    return [_finding(kind, row) for row in rows.iter_rows(named=True)]


def _finding(kind: FileKind, row: dict[str, Any]) -> Finding:
    debit, credit, exp_d, exp_c = int(row["debit_c"]), int(row["credit_c"]), int(row["exp_d"]), int(row["exp_c"])
    label = str(row["text"] or ("Total général" if row["kind"] == "total_general" else "Total compte"))
    return Finding(
        Code.TOTAL_MISMATCH,
        (
            f"{label!r} shows debit {euros(debit)} / credit {euros(credit)} but the {row['lines']} line(s) "
            f"above add up to {euros(exp_d)} / {euros(exp_c)} "
            f"(difference {euros(debit - exp_d)} / {euros(credit - exp_c)})"
        ),
        file=kind.value,
        row=int(row["row"]),
        details={
            "total": row["kind"],
            "account": row["total_code"],
            "debit": euros(debit),
            "credit": euros(credit),
            "expected_debit": euros(exp_d),
            "expected_credit": euros(exp_c),
        },
    )
