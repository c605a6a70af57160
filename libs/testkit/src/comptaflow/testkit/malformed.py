"""Files that are not valid Excel exports, for the validator's failure corpus."""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
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


# Hostile workbooks: each reproduces one way a file attacked the reader (see period_validator.excel.inspection).

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_BOOK_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
_SKELETON = {
    "[Content_Types].xml": (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_BOOK_TYPE}"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_SHEET_TYPE}"/></Types>'
    ),
    "_rels/.rels": (
        f'<Relationships xmlns="{_PKG_REL_NS}"><Relationship Id="rId1" '
        f'Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        f'<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}"><sheets><sheet name="S" sheetId="1" r:id="rId1"/>'
        "</sheets></workbook>"
    ),
    "xl/_rels/workbook.xml.rels": (
        f'<Relationships xmlns="{_PKG_REL_NS}"><Relationship Id="rId1" '
        f'Type="{_REL_NS}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
    ),
}


def sheet_xml(cells: str, *, dimension: str | None = None, prologue: str = "") -> bytes:
    """A worksheet part around `cells` (the `<row>` elements), with an optional `<dimension>`."""
    declared = f'<dimension ref="{dimension}"/>' if dimension else ""
    return f'{prologue}<worksheet xmlns="{_MAIN_NS}">{declared}<sheetData>{cells}</sheetData></worksheet>'.encode()


def write_raw_workbook(path: Path, sheet: bytes, *, extra: dict[str, bytes] | None = None) -> Path:
    """A minimal, well-formed .xlsx whose only sheet is `sheet` (raw XML), plus `extra` parts."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in _SKELETON.items():
            archive.writestr(name, text)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
        for name, data in (extra or {}).items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    return path


def write_corner_cells(
    path: Path, *, last: tuple[int, int] = (1_048_576, 16_384), dimension: str | None = None
) -> Path:
    """Valued cells at the corners of the rectangle A1:`last` (1-based row, column), in a few kilobytes:
    the reader allocates the whole rectangle (`last=(1048576, 16384)` is about 550 GB)."""
    row, column = last
    letters = ""
    number = column
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    cells = f'<row r="1"><c r="A1"><v>1</v></c><c r="{letters}1"><v>2</v></c></row>'
    cells += f'<row r="{row}"><c r="A{row}"><v>3</v></c><c r="{letters}{row}"><v>4</v></c></row>'
    return write_raw_workbook(path, sheet_xml(cells, dimension=dimension))


_ROW = b'<row r="2">' + b"".join(b'<c r="%s2"><v>1</v></c>' % bytes([65 + i]) for i in range(10)) + b"</row>"
_ROWS_BLOCK = _ROW * 10_000
"""About 2.3 MB of rows, compressed once (a block this large compresses near deflate's best ratio)."""


def _deflated(*parts: tuple[bytes, int]) -> tuple[bytes, int]:
    """A raw deflate stream of each `(block, times)` in turn, and its inflated size. Each block is compressed
    once and its compressed form repeated: a full flush makes it independent and byte-aligned."""
    stream, size = b"", 0
    for block, times in parts:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        stream += (compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)) * times
        size += len(block) * times
    return stream + zlib.compressobj(9, zlib.DEFLATED, -15).flush(), size


def _write_zip(path: Path, members: list[tuple[str, bytes, int, int]]) -> Path:
    """A zip written by hand from `(name, data, declared size, method)`: sizes say what the caller wants."""
    out, central = bytearray(), bytearray()
    for name, data, size, method in members:
        raw, offset = name.encode(), len(out)
        out += b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", 20, 0, method, 0, 0, 0, len(data), size, len(raw), 0)
        out += raw + data
        central += b"PK\x01\x02" + struct.pack(
            "<HHHHHHIIIHHHHHII", 20, 20, 0, method, 0, 0, 0, len(data), size, len(raw), 0, 0, 0, 0, 0, offset
        )
        central += raw
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + end))
    return path


_UNREFERENCED_BLOCK = (b"<row>" + b"<c><v>1</v></c>" * 10 + b"</row>") * 10_000
"""Rows whose cells carry no reference (valid OOXML): each cell is placed after the previous one."""


def _sheet_members(rows: int, block: bytes = _ROWS_BLOCK) -> tuple[list[tuple[str, bytes, int, int]], bytes, int]:
    skeleton = [(name, zlib.compress(text.encode())[2:-4], len(text.encode()), 8) for name, text in _SKELETON.items()]
    head = b'<worksheet xmlns="' + _MAIN_NS.encode() + b'"><sheetData>'
    sheet, size = _deflated((head, 1), (block, rows), (b"</sheetData></worksheet>", 1))
    return skeleton, sheet, size


def write_lying_sheet(path: Path, *, real_bytes: int = 3 * 1024**3, declared_bytes: int = 31 * 1024) -> Path:
    """A workbook whose sheet declares `declared_bytes` (local header and central directory agree) but
    inflates to about `real_bytes` of rows: the directory lies, the content decides."""
    skeleton, sheet, _ = _sheet_members(real_bytes // len(_ROWS_BLOCK))
    return _write_zip(path, [*skeleton, ("xl/worksheets/sheet1.xml", sheet, declared_bytes, 8)])


def write_padded_honest_sheet(
    path: Path, *, sheet_bytes: int = 1_900_000_000, padding: int = 12 * 1024**2, references: bool = True
) -> Path:
    """A sheet of `sheet_bytes` of real cells, honestly declared, next to `padding` incompressible bytes that
    bring the archive's compression ratio under the zip-bomb threshold. Without `references`, the cells carry
    no `r` (slower for everything that reads them: each must be placed after the previous one)."""
    block = _ROWS_BLOCK if references else _UNREFERENCED_BLOCK
    skeleton, sheet, size = _sheet_members(sheet_bytes // len(block), block)
    noise = os.urandom(padding)
    members = [*skeleton, ("xl/worksheets/sheet1.xml", sheet, size, 8), ("xl/media/padding.bin", noise, padding, 0)]
    return _write_zip(path, members)


def write_entity_xml(path: Path, *, external: bool = False) -> Path:
    """An XML spreadsheet (not a zip) opening with a DOCTYPE: entity expansion, or an external entity."""
    entity = '<!ENTITY x SYSTEM "file:///etc/passwd">' if external else '<!ENTITY a "aaaaaaaaaa">'
    path.write_text(f'<?xml version="1.0"?><!DOCTYPE Workbook [{entity}]><Workbook>&a;</Workbook>', encoding="utf-8")
    return path


def write_xls_with_lying_stream(path: Path, source: Path, *, declared: int = 2**31 - 1) -> Path:
    """A copy of the .xls `source` whose Workbook stream declares `declared` bytes in its directory entry."""
    data = bytearray(source.read_bytes())
    name = "Workbook".encode("utf-16-le")
    position = data.find(name)
    if position < 0:
        position = data.find("Book".encode("utf-16-le"))
    struct.pack_into("<I", data, position + 120, declared)  # the entry's stream size, 120 bytes from its start
    path.write_bytes(bytes(data))
    return path
