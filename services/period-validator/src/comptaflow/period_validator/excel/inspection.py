"""What an uploaded workbook really contains, measured before (or, for large sheets, while) the reader runs.

A zip's central directory and a sheet's `<dimension>` are claims written by whoever made the file. This module
checks the content itself, in one streaming pass per part, and refuses with a `TooComplex` (FILE_TOO_COMPLEX)
or `NotExcel` naming the limit:

- every part is inflated from its compressed bytes in chunks, counting the real output and stopping at the
  first chunk over `MAX_INFLATED_BYTES` for the whole workbook (whatever sizes the archive declares); a part
  that inflates to more or less than it declares is corrupt; only stored and deflated parts are accepted;
- an XML part with a DOCTYPE or an entity declaration is refused (no workbook needs one);
- in each worksheet, cells are counted and the largest row and column any cell reaches are taken from the
  cells themselves (`r="XFD1048576"`, or the position of a cell without a reference), because the reader
  allocates the whole rectangle from A1 to the farthest cell: rows x columns must stay within
  `MAX_SHEET_CELLS`, and a reference beyond Excel's grid (1,048,576 rows, 16,384 columns) is not Excel.

For an OLE2 `.xls`, the compound file's own structure is checked the same way: the streams its directory
declares must fit in the file and in `MAX_INFLATED_BYTES`, and their sector chains must be finite.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

MAX_INFLATED_BYTES: Final = 2 * 1024**3
"""All parts of a workbook together, once inflated (the 1M-line bench ledger's sheet is 453 MB)."""
MAX_SHEET_CELLS: Final = 30_000_000
"""Rows x columns of the rectangle the reader allocates for one sheet (the 1M-line ledger is 11 M)."""
MAX_ROWS: Final = 1_048_576
MAX_COLUMNS: Final = 16_384
CHUNK: Final = 16 * 1024 * 1024
_READ: Final = 1024 * 1024

_SHEET_PART: Final = re.compile(r"^xl/(?:worksheets|chartsheets|dialogsheets|macrosheets)/[^/]+\.xml$", re.IGNORECASE)
_DECLARATION: Final = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_FIRST_ELEMENT: Final = re.compile(rb"<[A-Za-z_:]")
_ROOT: Final = re.compile(rb"<(?:([A-Za-z_][\w.-]*):)?worksheet\b")
_ELEMENT: Final = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(row|c)(?=[\s/>])([^>]*)")
_REFERENCE: Final = re.compile(rb"""(?:^|\s)r\s*=\s*["']\$?([A-Za-z]{0,5})\$?(\d{0,10})""")
_OTHER_PREFIX: Final = re.compile(rb":c[\s/>]")
_UNSPACED_CELL: Final = re.compile(rb"<c[\t\r\n]")
_TAIL: Final = 64
"""Bytes carried from one chunk to the next so that nothing we look for is cut in two."""


class InspectionRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TooComplex(InspectionRefused):
    """Over one of the documented limits (FILE_TOO_COMPLEX)."""


class Malformed(InspectionRefused):
    """Not a workbook the reader may be given (NOT_EXCEL)."""


@dataclass(slots=True)
class SheetExtent:
    cells: int = 0
    rows: int = 0
    columns: int = 0


@dataclass(slots=True)
class Inspection:
    inflated_bytes: int = 0
    sheets: dict[str, SheetExtent] = field(default_factory=dict)


def column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def column_letters(number: int) -> str:
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _data_offset(handle: BinaryIO, member: zipfile.ZipInfo) -> int:
    handle.seek(member.header_offset)
    header = handle.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise Malformed(f"corrupt workbook: part {member.filename} has no local header")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    offset: int = member.header_offset + 30 + name_length + extra_length
    return offset


def _inflate(handle: BinaryIO, member: zipfile.ZipInfo, budget: int) -> Iterator[bytes]:
    """The part's real content in chunks, from its compressed bytes; stops past `budget` bytes."""
    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise Malformed(f"not a workbook: part {member.filename} uses compression method {member.compress_type}")
    handle.seek(_data_offset(handle, member))
    left = member.compress_size
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if member.compress_type == zipfile.ZIP_DEFLATED else None
    produced = 0
    while left > 0 or (inflater is not None and inflater.unconsumed_tail):
        if inflater is not None and inflater.unconsumed_tail:
            data = inflater.unconsumed_tail
        else:
            data = handle.read(min(_READ, left))
            if not data:
                raise Malformed(f"corrupt or truncated workbook: part {member.filename} ends early")
            left -= len(data)
        try:
            out = data if inflater is None else inflater.decompress(data, CHUNK)
        except zlib.error as exc:
            raise Malformed(f"corrupt workbook: part {member.filename} cannot be inflated ({exc})") from exc
        produced += len(out)
        if produced > member.file_size:
            raise Malformed(
                f"corrupt workbook: part {member.filename} declares {member.file_size:,} bytes but holds more"
            )
        if produced > budget:
            raise TooComplex(
                f"the workbook inflates to more than {MAX_INFLATED_BYTES:,} bytes (limit of the inflated size; "
                f"part {member.filename} alone passes {produced:,})"
            )
        if out:
            yield out
        if inflater is not None and inflater.eof:
            break
    if produced != member.file_size:
        raise Malformed(
            f"corrupt workbook: part {member.filename} declares {member.file_size:,} bytes but holds {produced:,}"
        )


def _letters_above(letters: str) -> str:
    """A regex for column letters past `letters` (longer, or as long and after it)."""
    options = [f"[A-Z]{{{len(letters) + 1},}}"]
    for i, letter in enumerate(letters):
        if letter != "Z":
            options.append(f"{letters[:i]}[{chr(ord(letter) + 1)}-Z][A-Z]{{{len(letters) - i - 1}}}")
    return "|".join(options)


def _number_above(number: int) -> str:
    """A regex for row numbers past `number` (leading zeros allowed)."""
    digits = str(number)
    options = [f"[1-9]\\d{{{len(digits)},}}"]
    for i, digit in enumerate(digits):
        if digit != "9":
            options.append(f"{digits[:i]}[{int(digit) + 1}-9]\\d{{{len(digits) - i - 1}}}")
    return "0*(?:" + "|".join(options) + ")"


class _SheetScan:
    """Counts cells and the farthest row and column as a sheet's XML streams by.

    The fast path applies to a chunk where every cell element starts `<c r="` (Excel's own layout, and
    nearly every writer's): the cells are counted with `bytes.count`, the last cell's reference gives the
    candidate extent, and one regex search finds any reference past it (raising the extent and searching
    on). Anything else — cells without a reference, attributes in another order or quoting, another
    namespace prefix — is walked element by element, as the reader would position each cell.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.extent = SheetExtent()
        self._row = 0  # the current row (from its r, or counted) on the walked path
        self._column = 0  # the last column of the current row on the walked path
        self._tag: bytes | None = None
        self._beyond: re.Pattern[bytes] | None = None
        self._beyond_of = (0, 0)

    def feed(self, text: bytes) -> None:
        if self._tag is None:
            root = _ROOT.search(text)
            prefix = root.group(1) if root is not None else None
            self._tag = b"<" + (prefix + b":" if prefix else b"") + b"c"
        tag = self._tag
        cells = text.count(tag + b" ")
        if not self._fast(text, tag, cells):
            self._walk(text)
            return
        self.extent.cells += cells
        self._check_cells()
        last = text.rfind(tag + b' r="')
        if last >= 0:
            self._reach(text, last + len(tag) + 4)
        position = 0
        while (found := self._beyond_pattern().search(text, position)) is not None:
            self._reach(text, found.start() + len(tag) + 4)
            position = found.end()

    @staticmethod
    def _fast(text: bytes, tag: bytes, cells: int) -> bool:
        """Whether every cell element of the chunk starts `<c r="` (three counts on a chunk of cells)."""
        if text.count(tag + b' r="') != cells:
            return False
        # Other elements starting with the letter c (`<col>`, `<cfRule>`…), or cells written otherwise?
        if text.count(tag) != cells and (tag + b">" in text or tag + b"/>" in text or _UNSPACED_CELL.search(text)):
            return False
        return tag != b"<c" or _OTHER_PREFIX.search(text) is None

    def _reach(self, text: bytes, at: int) -> None:
        reference = _REFERENCE.match(b" r=" + text[at - 1 : at + 24])
        if reference is None:
            return
        letters, digits = reference.groups()
        extent = self.extent
        if letters:
            extent.columns = max(extent.columns, column_number(letters.upper()))
        if digits:
            extent.rows = max(extent.rows, int(digits))
        self._check_grid()

    def _beyond_pattern(self) -> re.Pattern[bytes]:
        extent = self.extent
        if self._beyond is None or self._beyond_of != (extent.columns, extent.rows):
            letters = column_letters(extent.columns) if extent.columns else ""
            columns = _letters_above(letters) if letters else "[A-Z]+"
            assert self._tag is not None
            pattern = (
                re.escape(self._tag).decode()
                + ' r="\\$?(?:(?:'
                + columns
                + ")\\$?\\d|[A-Z]{1,5}\\$?(?:"
                + _number_above(extent.rows)
                + ')")'
            )
            self._beyond = re.compile(pattern.encode())
            self._beyond_of = (extent.columns, extent.rows)
        return self._beyond

    def _walk(self, text: bytes) -> None:
        """Element by element, for chunks whose cells do not all start with their reference."""
        extent = self.extent
        for match in _ELEMENT.finditer(text):
            kind, attributes = match.groups()
            reference = _REFERENCE.search(attributes)
            letters, digits = reference.groups() if reference else (b"", b"")
            if kind == b"row":
                self._row = int(digits) if digits else self._row + 1
                self._column = 0
                extent.rows = max(extent.rows, self._row)
                continue
            extent.cells += 1
            self._column = column_number(letters.upper()) if letters else self._column + 1
            if digits:
                extent.rows = max(extent.rows, int(digits))
            extent.columns = max(extent.columns, self._column)
            if extent.columns > MAX_COLUMNS or extent.rows > MAX_ROWS:
                break
        self._check_grid()
        self._check_cells()

    def _check_grid(self) -> None:
        extent = self.extent
        if extent.rows > MAX_ROWS or extent.columns > MAX_COLUMNS:
            raise Malformed(
                f"not an Excel sheet: {self.name} has a cell beyond Excel's grid "
                f"(row {extent.rows:,}, column {column_letters(min(extent.columns, 10**6))})"
            )

    def _check_cells(self) -> None:
        """Stop as soon as the cells counted so far pass the limit (the reader keeps each one)."""
        if self.extent.cells > MAX_SHEET_CELLS:
            raise TooComplex(
                f"sheet {self.name} holds more than {MAX_SHEET_CELLS:,} cells (limit of cells per sheet; "
                f"{self.extent.cells:,} counted when the inspection stopped)"
            )

    def check(self) -> None:
        extent = self.extent
        self._check_grid()
        self._check_cells()
        if extent.rows * extent.columns > MAX_SHEET_CELLS:
            raise TooComplex(
                f"sheet {self.name} reaches row {extent.rows:,} and column {column_letters(extent.columns)}: "
                f"{extent.rows * extent.columns:,} cells to read, over the limit of {MAX_SHEET_CELLS:,} cells"
            )


def directory(path: Path) -> list[zipfile.ZipInfo]:
    """The parts a zip's central directory lists (what it claims), or `Malformed`."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise Malformed(f"corrupt or truncated workbook (invalid zip archive: {exc})") from exc


def inspect_zip(path: Path, members: list[zipfile.ZipInfo] | None = None) -> Inspection:
    """Measure every part of an OOXML/ODS zip (`members`: its `directory`, when already read); raise
    `TooComplex` or `Malformed` at the first limit passed."""
    if members is None:
        members = directory(path)
    inspection = Inspection()
    with path.open("rb") as handle:
        for member in members:
            if member.is_dir():
                continue
            inspection.inflated_bytes += _inspect_member(
                handle, member, MAX_INFLATED_BYTES - inspection.inflated_bytes, inspection
            )
    return inspection


def _inspect_member(handle: BinaryIO, member: zipfile.ZipInfo, budget: int, inspection: Inspection) -> int:
    # A DOCTYPE (and the entities it declares) can only stand in the prolog, before the root element.
    in_prolog = member.filename.lower().endswith((".xml", ".rels", ".vml"))
    scan = _SheetScan(member.filename) if _SHEET_PART.match(member.filename) else None
    carry = b""
    produced = 0
    for chunk in _inflate(handle, member, budget):
        produced += len(chunk)
        if not in_prolog and scan is None:
            continue
        text = carry + chunk
        if in_prolog:
            root = _FIRST_ELEMENT.search(text)
            if _DECLARATION.search(text, 0, root.start() if root else len(text)):
                raise Malformed(
                    f"refused: part {member.filename} declares a DOCTYPE or XML entities, which no workbook needs "
                    "(entity expansion and external entities are not allowed)"
                )
            in_prolog = root is None
        if scan is None:
            carry = text[-_TAIL:]
            continue
        # Cut after the last complete tag so that no reference is split between two chunks.
        cut = text.rfind(b">") + 1
        scan.feed(text[:cut])
        carry = text[cut:]
        if len(carry) > CHUNK:
            raise Malformed(f"not a workbook: part {member.filename} holds more than {CHUNK:,} bytes without a tag")
    if scan is not None:
        if carry:
            scan.feed(carry)
        scan.check()
        inspection.sheets[member.filename] = scan.extent
    return produced


# OLE2 compound files (.xls) ------------------------------------------------------------------------------

_OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_FREE, _END_OF_CHAIN = 0xFFFFFFFF, 0xFFFFFFFE
_MAX_REGULAR_SECTOR = 0xFFFFFFFA


def inspect_ole(path: Path) -> Inspection:
    """Check an `.xls` compound file's declared sizes against what the file holds."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(512)
        if len(header) < 512 or not header.startswith(_OLE_MAGIC):
            raise Malformed("corrupt or truncated .xls workbook (no compound file header)")
        sector_shift, mini_shift = struct.unpack("<HH", header[30:34])
        if sector_shift not in (9, 12) or mini_shift != 6:
            raise Malformed("corrupt .xls workbook: unusual sector sizes in its header")
        sector = 1 << sector_shift
        sectors_in_file = -(-(size - 512) // sector)
        fat = _ole_fat(handle, header, sector, sectors_in_file)
        chains = _Chains(fat, sectors_in_file)
        first_directory = struct.unpack("<I", header[48:52])[0]
        cutoff = struct.unpack("<I", header[56:60])[0]
        inspection = Inspection()
        for index in range(chains.length(first_directory) * sector // 128):
            entry = _directory_entry(handle, fat, first_directory, sector, index)
            if entry is None:
                break
            kind, start, stream_size = entry
            if kind != 2:  # only streams hold data
                continue
            if stream_size > size or stream_size > MAX_INFLATED_BYTES:
                raise TooComplex(
                    f"the .xls workbook declares a stream of {stream_size:,} bytes in a file of {size:,} bytes"
                )
            if stream_size >= cutoff and chains.length(start) * sector < stream_size:
                raise Malformed("corrupt .xls workbook: a stream is shorter than its declared size")
            inspection.inflated_bytes += stream_size
    return inspection


def _ole_fat(handle: BinaryIO, header: bytes, sector: int, sectors_in_file: int) -> list[int]:
    """The compound file's sector allocation table, every location it lists checked against the file."""
    fat_sectors = struct.unpack("<I", header[44:48])[0]
    first_difat, difat_count = struct.unpack("<II", header[68:76])
    if fat_sectors > sectors_in_file or difat_count > sectors_in_file:
        raise Malformed(
            f"corrupt .xls workbook: it declares {fat_sectors:,} allocation sectors but holds {sectors_in_file:,}"
        )
    locations = list(struct.unpack("<109I", header[76:512]))
    next_difat, seen = first_difat, 0
    while next_difat <= _MAX_REGULAR_SECTOR and seen < difat_count:
        handle.seek(512 + next_difat * sector)
        block = handle.read(sector)
        if len(block) < sector:
            raise Malformed("corrupt .xls workbook: its allocation table points past the end of the file")
        entries = struct.unpack(f"<{sector // 4}I", block)
        locations.extend(entries[:-1])
        next_difat = entries[-1]
        seen += 1
    fat: list[int] = []
    for location in locations[:fat_sectors]:
        if location > _MAX_REGULAR_SECTOR or location >= sectors_in_file:
            raise Malformed("corrupt .xls workbook: its allocation table points past the end of the file")
        handle.seek(512 + location * sector)
        fat.extend(struct.unpack(f"<{sector // 4}I", handle.read(sector).ljust(sector, b"\xff")))
    return fat


@dataclass(frozen=True, slots=True)
class _Chains:
    fat: list[int]
    sectors_in_file: int

    def length(self, start: int) -> int:
        """Sectors in the chain from `start`; a loop or a sector past the end of the file is corrupt."""
        length, current, visited = 0, start, set()
        while current <= _MAX_REGULAR_SECTOR:
            if current in visited or current >= len(self.fat) or current >= self.sectors_in_file:
                raise Malformed("corrupt .xls workbook: a sector chain loops or points past the end of the file")
            visited.add(current)
            length += 1
            current = self.fat[current]
        return length


def _directory_entry(
    handle: BinaryIO, fat: list[int], first: int, sector: int, index: int
) -> tuple[int, int, int] | None:
    per_sector = sector // 128
    current = first
    for _ in range(index // per_sector):
        current = fat[current] if current < len(fat) else _END_OF_CHAIN
        if current > _MAX_REGULAR_SECTOR:
            return None
    handle.seek(512 + current * sector + (index % per_sector) * 128)
    raw = handle.read(128)
    if len(raw) < 128:
        return None
    kind = raw[66]
    start, low, high = struct.unpack("<III", raw[116:128])
    return kind, start, low if sector == 512 else low | (high << 32)
