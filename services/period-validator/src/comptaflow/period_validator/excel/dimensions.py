"""Reading the reference files: plan comptable, plan tiers and codes journaux.

A data row is a row whose code cell holds a code (letters, digits, `_ . - /`, no spaces); blank rows,
repeated headers and anything else (titles, footers such as `Nombre de comptes : 17`) are skipped and
counted. The first occurrence of a code wins.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from comptaflow.period_validator.excel import cells
from comptaflow.period_validator.excel.headers import KNOWN_LABELS, MIN_LABELS, find_header
from comptaflow.period_validator.excel.labels import known_label_counts, normalised
from comptaflow.period_validator.excel.schemas import CODE_JOURNAL, PLAN_COMPTES, PLAN_TIERS
from comptaflow.period_validator.excel.workbook import Grid
from comptaflow.period_validator.findings import Code, FileKind, Finding

_CODE = r"^[0-9A-Za-z][0-9A-Za-z_.\-/]*$"
_TIERS_TYPES: tuple[tuple[str, str], ...] = (
    (r"^cli", "client"),
    (r"^(?:fou|frn)", "fournisseur"),
    (r"^(?:sal|empl)", "salarie"),
    (r"^aut", "autre"),
)

_KEYS = {FileKind.PLAN_COMPTES: "account", FileKind.PLAN_TIERS: "code", FileKind.CODE_JOURNAL: "code"}
_SCHEMAS = {FileKind.PLAN_COMPTES: PLAN_COMPTES, FileKind.PLAN_TIERS: PLAN_TIERS, FileKind.CODE_JOURNAL: CODE_JOURNAL}
_CODES = {"account", "code", "collectif"}


@dataclass(slots=True)
class Reference:
    table: pl.DataFrame
    warnings: list[Finding] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def _tiers_type(value: pl.Expr) -> pl.Expr:
    folded = normalised(value)
    known = (pl.when(folded.str.contains(pattern)).then(pl.lit(canonical)) for pattern, canonical in _TIERS_TYPES)
    return pl.coalesce(*known, cells.text(value))


def _column(name: str, columns: dict[str, str]) -> pl.Expr:
    raw = pl.col(columns[name]) if name in columns else pl.lit(None, dtype=pl.String)
    if name in _CODES:
        return cells.code(raw)
    if name == "tiers_type":
        return _tiers_type(raw)
    return cells.text(raw)


def read_reference(kind: FileKind, grid: Grid) -> Reference:
    """Parse plan_comptes, plan_tiers or code_journal; raises HeaderNotFound."""
    header = find_header(kind, grid.frame)
    columns = dict(header.columns)
    schema = _SCHEMAS[kind]
    key = _KEYS[kind]
    names = grid.frame.columns
    data = grid.frame.slice(header.index + 1).with_row_index("row", offset=header.index + 2)
    data = data.with_columns(
        blank=pl.all_horizontal(pl.col(name).is_null() for name in names),
        labels=known_label_counts(data, names, KNOWN_LABELS[kind]),
        **{name: _column(name, columns) for name in schema.names()},
    )
    reason = (
        pl.when(pl.col("blank"))
        .then(pl.lit("blank"))
        .when(pl.col("labels") >= min(MIN_LABELS, len(columns)))
        .then(pl.lit("header"))
        .when(pl.col(key).is_null() | ~pl.col(key).str.contains(_CODE))
        .then(pl.lit("other"))
    )
    data = data.with_columns(reason=reason)
    rows = data.filter(pl.col("reason").is_null())
    table = rows.unique(subset=[key], keep="first", maintain_order=True).select(schema.names()).cast(schema)
    if "name" in schema.names():
        table = table.with_columns(pl.col("name").fill_null(""))
    if "label" in schema.names():
        table = table.with_columns(pl.col("label").fill_null(""))
    skipped = {str(reason): count for reason, count in data.group_by("reason").len().iter_rows() if reason is not None}
    reference = Reference(table)
    reference.stats = {
        "sheet": grid.sheet,
        "rows": grid.height,
        "header_row": header.sheet_row,
        "columns": dict(header.labels),
        "records": table.height,
        "duplicates": rows.height - table.height,
        "skipped": dict(sorted(Counter(skipped).items())),
    }
    if skipped:
        total = sum(skipped.values())
        parts = ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))
        reference.warnings.append(
            Finding(
                Code.SKIPPED_ROWS,
                f"{total} rows that are not records were skipped ({parts})",
                file=kind.value,
                details={"total": total, "by_reason": dict(sorted(skipped.items()))},
            )
        )
    return reference
