"""A large grand livre (100,000 lines, page breaks, totals) comes through whole and exact.

How fast is measured in `bench/validate_grand_livre.py` (figures in docs/benchmarks.md), never
asserted here: timing assertions fail on a busy machine and prove nothing on a quiet one.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from comptaflow.period_validator.excel import validate_excel
from comptaflow.period_validator.findings import FileKind
from comptaflow.testkit.excel import write_grand_livre_rows, write_period

LINES = 100_000


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_line_of_a_large_ledger_is_read_exactly(tmp_path: Path) -> None:
    export = write_period(tmp_path / "period")
    path = tmp_path / "gl.xlsx"
    expected = write_grand_livre_rows(path, LINES, account_totals=True, page_size=5_000)
    paths = {FileKind(k): p for k, p in export.paths.items()}
    paths[FileKind.GRAND_LIVRE_COMPTES] = path

    result = validate_excel(paths)

    assert result.errors == []
    gl = result.tables["grand_livre_comptes"]
    assert gl.height == expected.entry_lines == LINES
    totals = gl.group_by("account").agg(pl.col("debit").sum(), pl.col("credit").sum())
    sums = {row["account"]: (row["debit"], row["credit"]) for row in totals.iter_rows(named=True)}
    assert sums == expected.per_account
    assert result.stats["grand_livre_comptes"]["skipped"] == expected.skipped
