"""Cell readings: amounts, dates and codes, including how fastexcel renders typed cells."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from comptaflow.period_validator.excel import cells
from comptaflow.period_validator.excel.workbook import read_grid
from comptaflow.testkit.sheet import write_sheet

AMOUNTS = [
    ("1234.56", "1234.56"),
    ("-0.5", "-0.50"),
    (None, "0.00"),
    ("-", "0.00"),
    ("0,00", "0.00"),
    ("1 234,56", "1234.56"),
    ("1\u00a0234,56", "1234.56"),
    ("-1\u202f234\u202f567,89", "-1234567.89"),
    ("1.234.567,89", "1234567.89"),
    ("1.234.567", "1234567.00"),
    ("1234,5", "1234.50"),
    ("1 234,56 €", "1234.56"),
    ("(12,00)", "-12.00"),
    ("12,00-", "-12.00"),
    ("+3", "3.00"),
    ("1 234,565", "1234.57"),
    ("1 234,564", "1234.56"),
    ("-0,005", "-0.01"),
    ("9 999 999 999 999 999,99", "9999999999999999.99"),
    ("12345678.904999999", "12345678.91"),  # fastexcel's rendering of the typed number 12345678.905
    ("123456789012.339996338", "123456789012.34"),
    ("0.333333333", "0.33"),
    ("2.675", "2.68"),
    ("0.000000123", "0.00"),
    ("abc", None),
    ("12,34,56", None),
    ("1e3", None),
    ("99999999999999999999", None),
    (" 1234.56 ", "1234.56"),  # spaces around: trimmed on the slow path
    (" -12,00", "-12.00"),
    ("(12,00) ", "-12.00"),
    ("", "0.00"),
]


@pytest.mark.parametrize(("raw", "expected"), AMOUNTS)
def test_amounts_are_exact_cents(raw: str | None, expected: str | None) -> None:
    frame = cells.with_amounts(pl.DataFrame({"raw": [raw]}, schema={"raw": pl.String}), {"cents": pl.col("raw")})
    amount = frame.select(cells.cents_to_amount(pl.col("cents"))).item()
    assert amount == (Decimal(expected) if expected is not None else None)


def test_amounts_fast_and_slow_paths_mix_in_one_column() -> None:
    raws = [raw for raw, _ in AMOUNTS] * 3
    frame = cells.with_amounts(pl.DataFrame({"raw": raws}, schema={"raw": pl.String}), {"cents": pl.col("raw")})
    amounts = frame.select(cells.cents_to_amount(pl.col("cents"))).to_series().to_list()
    assert amounts == [Decimal(e) if e is not None else None for _, e in AMOUNTS] * 3


DATES = [
    ("2024-01-05 00:00:00", date(2024, 1, 5)),  # an Excel date cell as fastexcel renders it
    ("2024-03-01 13:30:00", date(2024, 3, 1)),
    ("05/01/2024", date(2024, 1, 5)),
    ("5/1/24", date(2024, 1, 5)),
    ("05/01/99", date(1999, 1, 5)),
    ("05.01.2024", date(2024, 1, 5)),
    ("05-01-2024", date(2024, 1, 5)),
    ("2024-01-05", date(2024, 1, 5)),
    ("05/01/2024 10:42", date(2024, 1, 5)),
    ("29/02/2024", date(2024, 2, 29)),
    ("29/02/2023", None),
    ("31/02/2024", None),
    ("01/13/2024", None),
    ("1/1/202400", None),
    ("abc", None),
    (None, None),
    (" 05/01/2024 ", date(2024, 1, 5)),  # spaces around: trimmed on the slow path
    ("2024-01-05 00:00:00 ", date(2024, 1, 5)),
    ("", None),
]


@pytest.mark.parametrize(("raw", "expected"), DATES)
def test_dates(raw: str | None, expected: date | None) -> None:
    frame = cells.with_dates(pl.DataFrame({"raw": [raw] * 2}, schema={"raw": pl.String}), {"day": pl.col("raw")})
    assert frame["day"].to_list() == [expected, expected]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("401000", "401000"),
        (" 0401 ", "0401"),
        ("401000.0", "401000"),
        ("401000.00", "401000"),
        (" 411.0 ", "411"),
        ("0.0", "0"),
        ("4010.50", "4010.50"),
        ("A.0", "A.0"),
        ("C0001", "C0001"),
        ("", None),
        (None, None),
    ],
)
def test_codes(raw: str | None, expected: str | None) -> None:
    frame = pl.DataFrame({"raw": [raw]}, schema={"raw": pl.String})
    assert frame.select(cells.code(pl.col("raw"))).item() == expected


@pytest.mark.parametrize("suffix", [".xlsx", ".xls"])
def test_typed_cells_through_fastexcel(tmp_path: Path, suffix: str) -> None:
    """What the reader relies on: numbers without `.0`, dates as ISO datetimes, text untouched."""
    rows = [
        [None],
        [None, "0401", 401000, 12345678.905, datetime(2024, 1, 5), "1 234,56", Decimal("0.10"), 0.1 + 0.2],
    ]
    grid = read_grid(write_sheet(tmp_path / f"cells{suffix}", rows))
    assert grid.height == 2  # leading empty row kept: grid row i is sheet row i + 1
    second = grid.frame.row(1)
    assert second[:2] == ("0401", "401000")
    assert second[3] == "2024-01-05 00:00:00"
    assert second[4] == "1 234,56"
    frame = cells.with_amounts(grid.frame.slice(1), {"a": pl.col("c2"), "b": pl.col("c5"), "c": pl.col("c6")})
    assert frame.select(cells.cents_to_amount(pl.col(name)) for name in "abc").row(0) == (
        Decimal("12345678.91"),
        Decimal("0.10"),
        Decimal("0.30"),
    )
