"""The fixture generator itself: deterministic, balanced, and its streaming writer reads back exactly."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from comptaflow.period_validator.excel import validate_excel
from comptaflow.period_validator.findings import FileKind
from comptaflow.testkit.excel import ExportSpec, render_period, write_grand_livre_rows, write_period


def test_generation_is_deterministic() -> None:
    spec = ExportSpec(layout="grouped", page_size=8, amount_style="nbsp")
    assert render_period(spec).rows == render_period(spec).rows
    assert render_period(spec).rows != render_period(ExportSpec(seed=8, layout="grouped")).rows


def test_generated_ledger_is_balanced_and_tiers_consistent() -> None:
    rendered = render_period(ExportSpec(n_pieces=200))
    comptes = rendered.ledgers["grand_livre_comptes"]
    assert comptes.total_debit == comptes.total_credit
    tiers_lines = [line for line in rendered.lines if line.tiers is not None]
    assert rendered.ledgers["grand_livre_tiers"].entry_lines == len(tiers_lines)


def test_streamed_grand_livre_reads_back(tmp_path: Path) -> None:
    export = write_period(tmp_path / "period")
    path = tmp_path / "big.xlsx"
    expected = write_grand_livre_rows(path, 3_000, layout="grouped", account_totals=True, page_size=500)
    assert expected.entry_lines == 3_000
    assert expected.total_debit == expected.total_credit
    paths = {FileKind(k): p for k, p in export.paths.items()}
    paths[FileKind.GRAND_LIVRE_COMPTES] = path
    result = validate_excel(paths)
    assert result.errors == []
    table = result.tables["grand_livre_comptes"]
    assert table.height == 3_000
    grouped = table.group_by("account").agg(pl.col("debit").sum(), pl.col("credit").sum())
    assert {a: (d, c) for a, d, c in grouped.iter_rows()} == expected.per_account
    assert result.stats["grand_livre_comptes"]["skipped"] == expected.skipped
