"""Throughput: validating a large grand livre costs little more than fastexcel reading it."""

from __future__ import annotations

import time
from pathlib import Path

import fastexcel
import pytest

from comptaflow.period_validator.excel import validate_excel
from comptaflow.period_validator.findings import FileKind
from comptaflow.testkit.excel import write_grand_livre_rows, write_period

LINES = 100_000
MAX_RATIO = 1.6
"""The requirement is ~1.5x on a quiet machine; a little slack for shared CI runners."""


def _best_of(runs: int, action: object) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_validation_costs_at_most_about_half_a_read_more(tmp_path: Path) -> None:
    export = write_period(tmp_path / "period")
    path = tmp_path / "gl.xlsx"
    expected = write_grand_livre_rows(path, LINES, account_totals=True, page_size=5_000)
    paths = {FileKind(k): p for k, p in export.paths.items()}
    paths[FileKind.GRAND_LIVRE_COMPTES] = path

    def read() -> None:
        reader = fastexcel.read_excel(path)
        reader.load_sheet(0, header_row=None, skip_rows=0, dtypes="string", whitespace_as_null=True).to_polars()

    floor = _best_of(3, read)
    full = _best_of(3, lambda: validate_excel(paths))
    result = validate_excel(paths)
    assert result.errors == []
    assert result.tables["grand_livre_comptes"].height == expected.entry_lines == LINES
    assert full <= MAX_RATIO * floor, f"validate_excel {full:.2f}s vs fastexcel {floor:.2f}s"
