"""Files that are not valid Excel exports, for the validator's failure corpus."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Any

import xlsxwriter

_CENTRAL_HEADER = b"PK\x01\x02"
_UNCOMPRESSED_SIZE_OFFSET = 24


def truncated_copy(source: Path, target: Path, *, keep: float = 0.5) -> Path:
    """The first `keep` fraction of `source`'s bytes (a download cut short)."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def corrupt_copy(source: Path, target: Path, *, member: str = "xl/worksheets/sheet1.xml") -> Path:
    """`source` with garbage over the compressed bytes of `member` (its CRC no longer matches)."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = archive.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 8
    for offset in range(start, min(start + 64, start + info.compress_size)):
        data[offset] ^= 0x5A
    target.write_bytes(bytes(data))
    return target


def write_zip_bomb(path: Path, *, declared_bytes: int = 3 * 1024**3) -> Path:
    """A tiny xlsx-looking zip whose central directory declares a huge uncompressed sheet."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    data = bytearray(path.read_bytes())
    position = data.rfind(_CENTRAL_HEADER)
    declared = min(declared_bytes, 0xFFFFFFFE)
    struct.pack_into("<I", data, position + _UNCOMPRESSED_SIZE_OFFSET, declared)
    path.write_bytes(bytes(data))
    return path


def write_high_ratio_zip(path: Path, *, size: int = 64 * 1024**2) -> Path:
    """An xlsx-looking zip holding `size` bytes of zeros (honestly declared, ratio ~1000:1)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(size // len(chunk)):
                member.write(chunk)
    return path


def write_docx_like(path: Path) -> Path:
    """A zip shaped like a Word document (no workbook part)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return path


def write_text(path: Path, text: str) -> Path:
    """Plain text under any name (a CSV or an HTML page saved as .xlsx / .xls)."""
    path.write_text(text, encoding="utf-8")
    return path


def write_sparse_sheet(path: Path, *, last_cell: tuple[int, int] = (599_999, 99)) -> Path:
    """A tiny xlsx with cells at A1 and at `last_cell` (0-based row, column): a huge rectangle."""
    book: Any = xlsxwriter.Workbook(str(path))
    sheet: Any = book.add_worksheet()
    sheet.write_string(0, 0, "Date")
    sheet.write_string(*last_cell, "x")
    book.close()
    return path
