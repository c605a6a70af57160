"""Shared helpers for the period-validator Excel tests: generate a period, validate it, compare."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from comptaflow.period_validator.excel import validate_excel
from comptaflow.period_validator.excel.schemas import LEDGER
from comptaflow.period_validator.findings import Code, FileKind, Period, ValidationResult
from comptaflow.testkit.entries import Line
from comptaflow.testkit.excel import ExportSpec, PeriodExport, RenderedPeriod, write_period, write_rendered


@dataclass
class Outcome:
    """A generated period and what validate_excel made of it (returned by the `run` fixture)."""

    export: PeriodExport
    result: ValidationResult

    @property
    def paths(self) -> dict[FileKind, Path]:
        return paths_of(self.export)

    def codes(self) -> list[Code]:
        return [finding.code for finding in self.result.errors]

    def assert_matches_export(self) -> None:
        assert_matches_export(self)


def paths_of(export: PeriodExport) -> dict[FileKind, Path]:
    return {FileKind(kind): path for kind, path in export.paths.items()}


def account_sums(table: pl.DataFrame) -> dict[str, tuple[Decimal, Decimal]]:
    grouped = table.group_by("account").agg(pl.col("debit").sum(), pl.col("credit").sum())
    return {account: (debit, credit) for account, debit, credit in grouped.iter_rows()}


def assert_matches_export(outcome: Outcome) -> None:
    """Everything the generator knows independently must be found, to the cent."""
    export, result = outcome.export, outcome.result
    assert result.errors == []
    assert result.period == Period(export.period_start, export.period_end)
    assert [w.code for w in result.warnings if w.code != Code.SKIPPED_ROWS] == []
    for kind, expected in export.ledgers.items():
        table = result.tables[kind]
        assert table.schema == LEDGER
        assert table.height == expected.entry_lines
        assert account_sums(table) == expected.per_account
        assert result.stats[kind]["skipped"] == {k: v for k, v in expected.skipped.items() if v}
        assert result.stats[kind]["header_row"] == expected.header_row
        assert table["row"].to_list() == [row for row, _line in expected.entry_rows]
        assert not any(code.endswith(".0") for code in table["account"].to_list())
        _assert_lines(kind, table, expected.entry_rows, "due_date" in expected.columns)
    for kind, count in export.reference_counts.items():
        assert result.tables[kind].height == count


def _assert_lines(kind: str, table: pl.DataFrame, entry_rows: list[tuple[int, Line]], with_due: bool) -> None:
    for record, (row, line) in zip(table.iter_rows(named=True), entry_rows, strict=True):
        assert record["row"] == row
        assert record["date"] == line.date
        assert record["journal"] == line.journal
        assert record["label"] == line.label
        assert record["debit"] == Decimal(line.debit).scaleb(-2)
        assert record["credit"] == Decimal(line.credit).scaleb(-2)
        account = line.tiers if kind == "grand_livre_tiers" else line.account
        assert record["account"] == account
        if kind == "grand_livre_tiers":
            assert record["collectif"] == line.account
        else:
            assert record["collectif"] is None
        if with_due:
            assert record["due_date"] == line.due_date
            assert record["lettrage"] == line.lettrage
            assert record["piece"] == line.piece


@pytest.fixture
def run(tmp_path: Path) -> Callable[..., Outcome]:
    """Write the period described by `spec` (or a rendered one, possibly altered) and validate it."""
    counter = iter(range(10_000))

    def _run(spec: ExportSpec | RenderedPeriod | None = None) -> Outcome:
        directory = tmp_path / f"period{next(counter)}"
        if isinstance(spec, RenderedPeriod):
            export = write_rendered(directory, spec)
        else:
            export = write_period(directory, spec or ExportSpec())
        return Outcome(export, validate_excel(paths_of(export)))

    return _run
