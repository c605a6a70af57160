"""Opening an uploaded workbook safely and reading its first sheet with data as a grid of strings.

The content decides, not the file name: an OOXML zip (`.xlsx`, `.xlsm`, `.xlsb`), an OpenDocument
spreadsheet or an OLE2 `.xls`. Before fastexcel sees a zip, its central directory is inspected: more
than `MAX_DECLARED_BYTES` declared, or a compression ratio above `MAX_RATIO`, is refused as a zip bomb;
so is a worksheet whose `<dimension>` declares more than `MAX_DECLARED_CELLS` cells. Those are claims; then
`inspection` measures what the parts really hold (inflated bytes, cells, the farthest cell, DOCTYPEs) and
refuses over its limits, `.xls` included. This happens before fastexcel is given the file, whatever its size
(the inspection streams a sheet about as fast as it inflates, a fraction of the reader's time), so the reader
only ever sees a workbook within the limits; it still runs in a capped child (`comptaflow.common.sandbox`).
Everything fastexcel raises is translated here into `NotExcel`; nothing else sees its exceptions.

The grid keeps the sheet's geometry: grid row i is sheet row i + 1 (leading empty rows included;
leading empty columns are dropped, which changes nothing for the reader), columns are named c0, c1, …
and hold strings (see `cells` for how numbers and dates are rendered); whitespace-only cells are null.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastexcel
import polars as pl

from comptaflow.period_validator.excel import inspection

MAX_DECLARED_BYTES = 2 * 1024**3
MAX_RATIO = 200
RATIO_MIN_BYTES = 16 * 1024**2
"""The ratio test applies once the declared size exceeds this (tiny parts compress very well)."""
MAX_MEMBERS = 10_000
MAX_DECLARED_CELLS = 50_000_000
"""A worksheet whose `<dimension>` spans more cells is refused: the reader allocates the whole
rectangle (about 32 bytes a cell), so two far-apart cells would otherwise cost gigabytes."""

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SHEET_PART = re.compile(r"^xl/worksheets/[^/]+\.xml$", re.IGNORECASE)
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\s+ref="\$?([A-Z]{1,3})\$?(\d+)(?::\$?([A-Z]{1,3})\$?(\d+))?"')
_WORKBOOK_PARTS = ("xl/workbook.xml", "xl/workbook.bin", "content.xml")
_OTHER_DOCUMENTS = {
    "word/document.xml": "a Word document",
    "ppt/presentation.xml": "a PowerPoint presentation",
}


class NotExcel(Exception):
    """The file is not a workbook fastexcel can read (or must not be given to it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TooComplex(NotExcel):
    """The workbook is over a documented parsing limit (FILE_TOO_COMPLEX)."""


@dataclass(frozen=True, slots=True)
class Grid:
    frame: pl.DataFrame
    sheet: str

    @property
    def height(self) -> int:
        return self.frame.height


def _check_zip(path: Path) -> list[zipfile.ZipInfo]:
    try:
        members = inspection.directory(path)
    except inspection.Malformed as exc:
        raise NotExcel(exc.message) from exc
    if len(members) > MAX_MEMBERS:
        raise NotExcel(f"refused: the archive holds {len(members)} parts (zip bomb?)")
    declared = sum(member.file_size for member in members)
    compressed = sum(member.compress_size for member in members)
    if declared > MAX_DECLARED_BYTES:
        raise NotExcel(f"refused: the archive declares {declared:,} bytes once uncompressed (zip bomb?)")
    if declared > RATIO_MIN_BYTES and declared > MAX_RATIO * max(compressed, 1):
        raise NotExcel(
            f"refused: compression ratio {declared // max(compressed, 1)}:1 exceeds {MAX_RATIO}:1 (zip bomb?)"
        )
    _check_dimensions(path, members)
    names = {member.filename.lower() for member in members}
    if not any(part in names for part in _WORKBOOK_PARTS):
        other = next((what for part, what in _OTHER_DOCUMENTS.items() if part in names), "a zip archive")
        raise NotExcel(f"not a workbook: the file is {other} without a spreadsheet")
    return members


def _column_number(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - ord("A") + 1
    return number


def _check_dimensions(path: Path, members: list[zipfile.ZipInfo]) -> None:
    """Refuse a worksheet declaring an absurd cell rectangle (read from its first kilobytes only)."""
    sheets = [m for m in members if _SHEET_PART.match(m.filename)]
    with zipfile.ZipFile(path) as archive:
        for member in sheets:
            try:
                with archive.open(member) as part:
                    head = part.read(4096)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as exc:
                raise NotExcel(f"corrupt workbook part {member.filename}: {exc}") from exc
            found = _DIMENSION.search(head)
            if found is None:
                continue
            first_col, first_row, last_col, last_row = found.groups()
            if last_col is None:
                continue
            width = abs(_column_number(last_col.decode()) - _column_number(first_col.decode())) + 1
            height = abs(int(last_row) - int(first_row)) + 1
            if width * height > MAX_DECLARED_CELLS:
                raise NotExcel(
                    f"refused: sheet {member.filename} spans {height:,} rows by {width:,} columns "
                    f"({width * height:,} cells, more than {MAX_DECLARED_CELLS:,})"
                )


def _describe_other(head: bytes) -> str:
    text = head.lstrip(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<table")):
        return "an HTML page saved with a spreadsheet extension"
    if text.startswith(b"<?xml"):
        return "an XML file that is not an .xlsx workbook"
    if text.startswith(b"%pdf"):
        return "a PDF document"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "neither an .xlsx nor an .xls workbook"
    return "a text file (CSV?) rather than an Excel workbook"


def check_container(path: Path) -> list[zipfile.ZipInfo] | None:
    """Refuse anything that is not a plausible workbook by its claims; a zip's parts, or None for an OLE2 file."""
    with path.open("rb") as handle:
        head = handle.read(2048)
    if not head:
        raise NotExcel("the file is empty")
    if head.startswith(_ZIP_MAGIC):
        return _check_zip(path)
    if not head.startswith(_OLE_MAGIC):
        if b"<!DOCTYPE" in head.upper() and head.lstrip(b"\xef\xbb\xbf").lstrip().startswith(b"<"):
            raise NotExcel(
                "refused: the file is XML with a DOCTYPE (entity declarations are not allowed), not an Excel workbook"
            )
        raise NotExcel(f"not an Excel workbook: {_describe_other(head)}")
    return None


def _inspect(path: Path, members: list[zipfile.ZipInfo] | None) -> None:
    try:
        if members is None:
            inspection.inspect_ole(path)
        else:
            inspection.inspect_zip(path, members)
    except inspection.TooComplex as exc:
        raise TooComplex(exc.message) from exc
    except inspection.InspectionRefused as exc:
        raise NotExcel(exc.message) from exc


def _fastexcel_failure(exc: BaseException) -> NotExcel:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return NotExcel(f"the workbook cannot be read: {first_line}")


def _load(reader: Any, index: int) -> pl.DataFrame:
    sheet = reader.load_sheet(index, header_row=None, skip_rows=0, dtypes="string", whitespace_as_null=True)
    frame: pl.DataFrame = sheet.to_polars()
    return frame.rename({old: f"c{position}" for position, old in enumerate(frame.columns)})


def _has_data(frame: pl.DataFrame) -> bool:
    if frame.height == 0 or frame.width == 0:
        return False
    filled = pl.any_horizontal(pl.all().is_not_null()).any()
    return bool(frame.head(1000).select(filled).item()) or bool(frame.select(filled).item())


def read_grid(path: Path) -> Grid:
    """The first sheet holding data, or an empty grid when there is none (see the module's docstring)."""
    _inspect(path, check_container(path))
    return _read(path)


def _read(path: Path) -> Grid:
    try:
        reader = fastexcel.read_excel(path.read_bytes())
        names: list[str] = list(reader.sheet_names)
        for index in range(len(names)):
            frame = _load(reader, index)
            if _has_data(frame):
                return Grid(frame, names[index])
    except fastexcel.FastExcelError as exc:
        raise _fastexcel_failure(exc) from exc
    except BaseException as exc:
        # Rust panics surface as pyo3's PanicException, a BaseException; anything else propagates.
        if type(exc).__name__ != "PanicException":
            raise
        raise _fastexcel_failure(exc) from exc
    return Grid(pl.DataFrame(), names[0] if names else "")
