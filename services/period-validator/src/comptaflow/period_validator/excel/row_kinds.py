"""What a ledger row that is not an entry is (docs/api.md, Excel exports: "Rows that are not entries").

Only rows without an entry go through here (usually a few percent of a ledger), still as polars
expressions. Their kinds, in order of precedence:

- `header`: a repeated header row (at least three known labels);
- `invalid_date`: a date cell that is not a date, on a row with a journal and an amount (an entry
  whose date cannot be read — INVALID_VALUE);
- `total_account`, `total_general`, `subtotal`, `carry_forward`, `balance`, `cumul`: the label (or the
  first non-empty cell) starts with Total…, Sous-total, Report, À reporter, Solde…, Cumul…;
- `missing_date`: no date but a journal and an amount (INVALID_VALUE);
- `group`: the first non-empty cell opens an account (`401000 - Fournisseurs`, `Compte : C0001 Léa`,
  `FORANGE Orange`, or the code alone with the label in the next cell) — codes are upper-case letters
  and digits (a code without digits only left of the label column, where a wrapped label is not);
  a group row counts only when an entry follows it before any repeated header (see `ledger`), so a
  repeated company name (`ACME SARL`) in a page-break preamble is not taken for one;
- `preamble`: anything else (repeated company name, title, period, page number…).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from comptaflow.period_validator.excel import cells
from comptaflow.period_validator.excel.headers import KNOWN_LABELS, MIN_LABELS
from comptaflow.period_validator.excel.labels import known_label_counts, normalised
from comptaflow.period_validator.findings import FileKind

SKIP_REASONS = (
    "blank",
    "header",
    "preamble",
    "total_account",
    "total_general",
    "subtotal",
    "carry_forward",
    "balance",
    "cumul",
)
"""Reasons counted in SKIPPED_ROWS, in this order."""

_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("total_general", r"^(?:total general|totaux generaux|total grand livre|total balance|total fichier)\b"),
    (
        "subtotal",
        r"^(?:sous total|total classe|total journal|total mois|total periode|total page|total rubrique"
        r"|total jour|total date|total piece)\b",
    ),
    ("total", r"^(?:total|totaux)\b"),
    ("balance", r"^(?:solde|report a nouveau|a nouveau|anouveau)\b"),
    ("carry_forward", r"^(?:a reporter|report|reporte|reports)\b"),
    ("cumul", r"^cumuls?\b"),
)
_OPENING = r"^(?:solde anterieur|solde precedent|solde ouverture|solde initial|solde debut|report a nouveau|a nouveau)"
_TOTAL_CODE = (
    r"^\s*(?i:total)\s+(?:(?i:du)\s+)?(?:(?i:compte|tiers|auxiliaire)\s*)?:?\s*([0-9A-Z][0-9A-Z_]+|\d)(?:\s|$|\s*[-:])"
)
_TOTAL_WITHOUT_CODE = r"^total (?:compte|tiers|auxiliaire)$"
_GROUP = (
    r"^(?:(?i:compte|tiers|client|fournisseur|auxiliaire)(?:\s+(?i:g[ée]n[ée]ral|auxiliaire|tiers|collectif))?"
    r"\s*(?:(?i:n)\s?[°o]\.?\s*)?[:\-]?\s*)?([0-9A-Z][0-9A-Z_]*)(?:\s*[\-\u2013:]\s*|\s+|$)(.*)$"
)
_CONTINUED = r"\s*\((?i:suite|suite et fin|fin|cont\.?)\)\s*$"
_MIN_BARE_CODE = 3


def _keyword(text: pl.Expr) -> pl.Expr:
    """The first keyword class whose pattern matches (null when none does)."""
    return pl.coalesce(pl.when(text.str.contains(pattern)).then(pl.lit(name)) for name, pattern in _KEYWORDS)


def _second_filled(cols: Sequence[pl.Expr]) -> pl.Expr:
    """The second non-empty cell of the row (the label beside a bare account code)."""
    if len(cols) < 2:
        return pl.lit(None, dtype=pl.String)
    return pl.coalesce(
        pl.when(col.is_not_null()).then(pl.coalesce(cols[position + 1 :])) for position, col in enumerate(cols[:-1])
    )


def classify(
    others: pl.DataFrame, kind: FileKind, grid_columns: Sequence[str], columns: dict[str, str]
) -> pl.DataFrame:
    """Add `kind`, `opening`, `group_code`, `group_label`, `total_code` and `text` to non-entry rows.

    `others` holds the grid columns plus `date` (parsed), `debit_c` / `credit_c` (cents, null when not
    an amount), `journal_present` and `amount_present`.
    """
    cols = [pl.col(name) for name in grid_columns]
    label_col = pl.col(columns["label"]) if "label" in columns else pl.lit(None, dtype=pl.String)
    account_col = pl.col(columns["account"]) if "account" in columns else pl.lit(None, dtype=pl.String)
    date_cell = pl.col(columns["date"])
    # Staged: every derived column is computed once (eager polars does not share sub-expressions).
    frame = others.with_columns(
        _first=pl.coalesce(cols),
        _second=_second_filled(cols),
        _filled=pl.sum_horizontal(col.is_not_null().cast(pl.Int32) for col in cols),
        _first_at=pl.coalesce(pl.when(col.is_not_null()).then(pl.lit(i)) for i, col in enumerate(cols)),
        _label_norm=normalised(label_col),
    ).with_columns(_first_norm=normalised(pl.col("_first")))
    # A header row has at least three cells, and its Débit / Crédit cells are labels, not amounts.
    header_like = (pl.col("_filled") >= MIN_LABELS) & (pl.col("debit_c").is_null() | pl.col("credit_c").is_null())
    frame = frame.with_columns(
        _labels=known_label_counts(frame, grid_columns, KNOWN_LABELS[kind], candidates=header_like),
        _keyword=pl.coalesce(_keyword(pl.col("_label_norm")), _keyword(pl.col("_first_norm"))),
        _key_text=pl.coalesce("_label_norm", "_first_norm"),
        _raw_key=pl.coalesce(label_col, pl.col("_first")),
    )
    frame = cells.with_dates(frame, {"_first_date": pl.col("_first")})
    total_code = pl.coalesce(
        pl.col("_raw_key").str.extract(_TOTAL_CODE, 1),
        cells.code(account_col),
    )
    frame = frame.with_columns(
        _total_code=total_code,
        _group=pl.col("_first").str.extract_groups(_GROUP),
    )
    group_code = pl.col("_group").struct.field("1")
    group_label = pl.col("_group").struct.field("2").str.strip_chars()
    with_digit = group_code.str.contains(r"\d")
    bare_code = with_digit & (group_code.str.len_chars() >= _MIN_BARE_CODE)
    # In the label column, an upper-case word is more likely a wrapped label than an account.
    label_at = grid_columns.index(columns["label"]) if "label" in columns else len(grid_columns)
    is_group = (
        group_code.is_not_null()
        & pl.col("date").is_null()
        & pl.col("_first_date").is_null()
        & ((group_label.str.len_chars() > 0) | pl.col("_second").is_not_null() | bare_code)
        & ((pl.col("_first_at") < label_at) | with_digit)
    )
    entry_like = pl.col("journal_present") & pl.col("amount_present")
    keyword = pl.col("_keyword")
    total_kind = (
        pl.when(pl.col("_total_code").is_not_null() | pl.col("_key_text").str.contains(_TOTAL_WITHOUT_CODE))
        .then(pl.lit("total_account"))
        .otherwise(pl.lit("subtotal"))
    )
    row_kind = (
        pl.when(pl.col("_labels") >= MIN_LABELS)
        .then(pl.lit("header"))
        .when(date_cell.is_not_null() & pl.col("date").is_null() & entry_like)
        .then(pl.lit("invalid_date"))
        .when(keyword == "total")
        .then(total_kind)
        .when(keyword.is_not_null())
        .then(keyword)
        .when(entry_like & pl.col("date").is_null())
        .then(pl.lit("missing_date"))
        .when(is_group)
        .then(pl.lit("group"))
        .otherwise(pl.lit("preamble"))
    )
    label_fallback = pl.when(group_label.str.len_chars() > 0).then(group_label).otherwise(pl.col("_second"))
    grouped = pl.col("kind") == "group"
    return (
        frame.with_columns(kind=row_kind)
        .with_columns(
            opening=pl.col("_key_text").str.contains(_OPENING).fill_null(False),
            group_code=pl.when(grouped).then(group_code),
            group_label=pl.when(grouped).then(label_fallback.str.replace(_CONTINUED, "")),
            total_code=pl.when(pl.col("kind").is_in(["total_account", "total_general"])).then(pl.col("_total_code")),
            text=pl.col("_raw_key"),
        )
        .drop(
            "_first",
            "_second",
            "_filled",
            "_first_at",
            "_label_norm",
            "_first_norm",
            "_labels",
            "_keyword",
            "_key_text",
            "_raw_key",
            "_total_code",
            "_group",
            "_first_date",
        )
    )
