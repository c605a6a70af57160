"""Writing rows of cells to an `.xlsx` (xlsxwriter) or `.xls` (xlwt) workbook.

A cell is `None` (blank), `str` (a text cell, even when it looks like a number), `int`/`float`/
`Decimal` (a numeric cell) or `date`/`datetime` (an Excel date cell, formatted dd/mm/yyyy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol

import xlsxwriter
import xlwt

Cell = str | int | float | Decimal | date | None
Row = Sequence[Cell]
Format = Literal["xlsx", "xls"]

XLS_MAX_ROWS = 65_536
XLSX_MAX_ROWS = 1_048_576


class SheetWriter(Protocol):
    def write_row(self, row_index: int, row: Row) -> None: ...

    def close(self) -> None: ...


class XlsxSheet:
    """One worksheet written with xlsxwriter; `constant_memory` streams rows in order."""

    def __init__(self, path: Path, *, empty_sheets_before: int = 0, constant_memory: bool = False) -> None:
        self._book: Any = xlsxwriter.Workbook(str(path), {"constant_memory": constant_memory})
        for number in range(empty_sheets_before):
            self._book.add_worksheet(f"Vide{number + 1}")
        self._sheet: Any = self._book.add_worksheet("Grand livre" if empty_sheets_before else "Feuil1")
        self._date = self._book.add_format({"num_format": "dd/mm/yyyy"})
        self._number = self._book.add_format({"num_format": "#,##0.00"})

    def write_row(self, row_index: int, row: Row) -> None:
        if row_index >= XLSX_MAX_ROWS:  # xlsxwriter would silently drop the row
            raise ValueError(f"an .xlsx sheet holds at most {XLSX_MAX_ROWS} rows")
        for column, cell in enumerate(row):
            if cell is None:
                continue
            if isinstance(cell, str):
                self._sheet.write_string(row_index, column, cell)
            elif isinstance(cell, date):
                moment = cell if isinstance(cell, datetime) else datetime(cell.year, cell.month, cell.day)
                self._sheet.write_datetime(row_index, column, moment, self._date)
            elif isinstance(cell, int):
                self._sheet.write_number(row_index, column, cell)
            else:
                self._sheet.write_number(row_index, column, float(cell), self._number)

    def close(self) -> None:
        self._book.close()


class XlsSheet:
    """One worksheet written with xlwt (BIFF8, at most 65,536 rows)."""

    def __init__(self, path: Path, *, empty_sheets_before: int = 0) -> None:
        self._path = path
        self._book: Any = xlwt.Workbook(encoding="utf-8")
        for number in range(empty_sheets_before):
            self._book.add_sheet(f"Vide{number + 1}")
        self._sheet: Any = self._book.add_sheet("Grand livre" if empty_sheets_before else "Feuil1")
        self._date = xlwt.easyxf(num_format_str="DD/MM/YYYY")
        self._number = xlwt.easyxf(num_format_str="#,##0.00")

    def write_row(self, row_index: int, row: Row) -> None:
        if row_index >= XLS_MAX_ROWS:
            raise ValueError(f"an .xls sheet holds at most {XLS_MAX_ROWS} rows")
        for column, cell in enumerate(row):
            if cell is None:
                continue
            if isinstance(cell, str):
                self._sheet.write(row_index, column, cell)
            elif isinstance(cell, date):
                self._sheet.write(row_index, column, cell, self._date)
            elif isinstance(cell, int):
                self._sheet.write(row_index, column, cell)
            else:
                self._sheet.write(row_index, column, float(cell), self._number)

    def close(self) -> None:
        self._book.save(str(self._path))


def format_of(path: Path) -> Format:
    return "xls" if path.suffix.lower() == ".xls" else "xlsx"


def open_writer(path: Path, *, empty_sheets_before: int = 0, constant_memory: bool = False) -> SheetWriter:
    """A writer for the data sheet of a new workbook; the format follows the file suffix."""
    if format_of(path) == "xls":
        return XlsSheet(path, empty_sheets_before=empty_sheets_before)
    return XlsxSheet(path, empty_sheets_before=empty_sheets_before, constant_memory=constant_memory)


def write_sheet(path: Path, rows: Iterable[Row], *, empty_sheets_before: int = 0) -> Path:
    """Write `rows` (row 1 first) to the data sheet of a new workbook (format from the suffix)."""
    writer = open_writer(path, empty_sheets_before=empty_sheets_before)
    for index, row in enumerate(rows):
        writer.write_row(index, row)
    writer.close()
    return path
