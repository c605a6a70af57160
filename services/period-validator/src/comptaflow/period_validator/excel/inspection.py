"""What an uploaded workbook really contains, measured before the reader is given it.

A zip's central directory and a sheet's `<dimension>` are claims written by whoever made the file. This module
checks the content itself, in one streaming pass per part, and refuses with a `TooComplex` (FILE_TOO_COMPLEX)
or `NotExcel` naming the limit:

- every part is inflated from its compressed bytes in chunks, counting the real output and stopping at the
  first chunk over `MAX_INFLATED_BYTES` for the whole workbook (whatever sizes the archive declares); a part
  that inflates to more or less than it declares is corrupt; only stored and deflated parts are accepted;
- an XML part with a DOCTYPE or an entity declaration is refused (no workbook needs one);
- in each worksheet, cells are counted and the largest row and column any cell reaches are taken from the
  cells themselves (`r="XFD1048576"`, or the position of a cell without a reference), whatever their order,
  because the reader allocates the whole rectangle from A1 to the farthest cell: rows x columns must stay
  within `MAX_SHEET_CELLS`, and a reference beyond Excel's grid (1,048,576 rows, 16,384 columns) is not Excel.

A worksheet is measured about as fast as it inflates (`_SheetScan`): the cell tags of each inflated chunk are
found and read with vectorised byte comparisons (numpy), while the next chunk inflates on another thread (zlib
and numpy release the GIL); a chunk holding a cell written any other way is walked element by element.

For an OLE2 `.xls`, the compound file's own structure is checked the same way: the streams its directory
declares must fit in the file and in `MAX_INFLATED_BYTES`, and their sector chains must be finite.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt

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
_ROOT: Final = re.compile(rb"<(?:([A-Za-z_][\w.-]*):)?[A-Za-z_]")
_TAIL: Final = 64
"""Bytes carried from one chunk to the next while a part's prolog is searched for a DOCTYPE."""

_WINDOW: Final = 32
"""A chunk is measured up to its last `<` at least this many bytes from its end, the rest carried to the next
chunk: no tag is cut in two, and the bytes read at each cell tag (`<c r="`, a reference of at most 10 characters
within Excel's grid, and the byte after it) lie inside the chunk."""
_FEW: Final = 1024
"""Cells of a chunk whose reference is read one by one (unusual, or maybe past the rows of the chunk's last
cell); with more, the chunk is walked."""
_NAME_END: Final = np.zeros(256, dtype=np.bool_)
_NAME_END[list(b" \t\r\n/>")] = True
_NAME_END.flags.writeable = False
"""The bytes that end an element name: after `<c` (or `<x:c`), they make the element a cell."""
_OTHER_PREFIX: Final = re.compile(rb":c[\s/>]")
_TAG: Final = re.compile(
    rb"<(?:(/)(?:[A-Za-z_][\w.-]*:)?(?=row[\s>])|(?:[A-Za-z_][\w.-]*:)?)(row|c)(?=[\s/>])([^>]*)(>)?"
)
"""A cell tag, or a row's opening or closing tag, under any prefix, up to the first `>`."""
_LONGEST_VALUE: Final = 4096
"""Longer than any attribute value of a row or a cell: a tag whose `>` is inside a longer one is refused."""
_QUOTED_TAG: Final = re.compile(
    rb"<(/?)(?:[A-Za-z_][\w.-]*:)?(row|c)(?=[\s/>])"
    rb"""((?:[^>"']++|"[^"]{0,%d}+"|'[^']{0,%d}+')*+)(>)?""" % (_LONGEST_VALUE, _LONGEST_VALUE)
)
"""The same, up to the first `>` outside quotes."""
_REFERENCE: Final = re.compile(
    rb"""(?:\s+[^\s=]+\s*=\s*(?:"[^"]*+"|'[^']*+'))*?\s+r\s*=\s*["']\$?([A-Za-z]*)\$?(\d*)"""
)
"""A tag's `r` attribute, read attribute by attribute as the reader does (an `r` inside another attribute's
value is not the reference): its letters and digits."""
_ATTRIBUTE: Final = re.compile(rb"""([^\s=]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_VALUE: Final = re.compile(rb"\$?([A-Za-z]*)\$?(\d*)")


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


def _inflate(handle: BinaryIO, member: zipfile.ZipInfo, budget: int) -> Generator[bytes]:
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


_COLUMNS: Final = {column_letters(number).encode(): number for number in range(1, MAX_COLUMNS + 1)}


def _position(letters: bytes, digits: bytes) -> tuple[int, int]:
    """A reference's column and row, as the reader computes them: letters in either case, leading zeros that do
    not count; a number too long for Excel's grid is past it."""
    column = _COLUMNS.get(letters)
    if column is not None and 0 < len(digits) < 8 and digits[0] != 48:  # A1 to XFD9999999
        return column, int(digits)
    if column is None:
        column = column_number(letters.upper()) if len(letters) <= 4 else MAX_COLUMNS + 1
    significant = digits.lstrip(b"0")
    if len(significant) > 8:
        return column, MAX_ROWS + 1
    return column, int(significant) if significant else 0


def _reference_at(text: bytes, at: int) -> tuple[int, int]:
    """The column and row of the reference that starts at `at` (just after `r="`)."""
    value = _VALUE.match(text, at)
    assert value is not None  # the pattern matches the empty string
    letters, digits = value.groups()
    return _position(letters, digits)


def _reference(attributes: bytes) -> tuple[bytes, bytes] | None:
    """The letters and digits of a tag's `r` attribute, or None without one."""
    found = _REFERENCE.match(attributes)
    if found is not None:
        return found.groups()  # type: ignore[return-value]  # two groups, both always set
    if b"r" not in attributes:
        return None
    # Attributes not parted by spaces (the reader may refuse them): any attribute named r counts.
    for attribute in _ATTRIBUTE.finditer(attributes):
        if attribute.group(1) == b"r":
            value = _VALUE.match(attribute.group(2) if attribute.group(2) is not None else attribute.group(3))
            assert value is not None  # the pattern matches the empty string
            return value.group(1), value.group(2)
    return None


def _open_quote(attributes: bytes) -> bool:
    """Whether a tag read up to its first `>` may have stopped inside a quoted value."""
    return b"'" in attributes or attributes.count(b'"') % 2 == 1


def _truncated(text: bytes, tag: re.Match[bytes]) -> bool:
    """Whether a tag read without its closing `>` may go on past the end of `text` (rather than being malformed)."""
    at = tag.end()
    if at == len(text):
        return True
    quote = text[at : at + 1]
    unclosed = text.find(quote, at + 1, at + _LONGEST_VALUE + 2) < 0
    return quote in (b'"', b"'") and unclosed and len(text) - at <= _LONGEST_VALUE + 1


def _pairs(text: bytes, pair: bytes, start: int, end: int) -> npt.NDArray[np.intp]:
    """Where the two bytes `pair` start in `text` between `start` and `end` (one vectorised comparison at even
    offsets, one at odd ones; `text` holds at least one byte past `end`)."""
    key = int.from_bytes(pair, "little")
    span = end - start
    even = np.flatnonzero(np.frombuffer(text, dtype="<u2", count=(span + 1) // 2, offset=start) == key)
    odd = np.flatnonzero(np.frombuffer(text, dtype="<u2", count=span // 2, offset=start + 1) == key)
    even <<= 1
    odd <<= 1
    odd += 1
    found: npt.NDArray[np.intp] = np.concatenate((even, odd))
    if start:
        found += start
    return found


def _words(windows: npt.NDArray[np.uint8], offset: int) -> npt.NDArray[np.uint64]:
    """The 8 bytes at `offset` of each window, as a big-endian number (byte order is numeric order)."""
    return np.ndarray((windows.shape[0],), dtype=">u8", buffer=windows, offset=offset, strides=(windows.shape[1],))


def _starts_with(windows: npt.NDArray[np.uint8], head: bytes) -> npt.NDArray[np.bool_]:
    """Which windows start with `head` (at most 16 bytes)."""
    if len(head) <= 8:
        return (_words(windows, 0) >> (8 * (8 - len(head)))) == int.from_bytes(head, "big")  # type: ignore[no-any-return]
    first = _words(windows, 0) == int.from_bytes(head[:8], "big")
    second = (_words(windows, 8) >> (8 * (16 - len(head)))) == int.from_bytes(head[8:], "big")
    return first & second  # type: ignore[no-any-return]


def _other_cells(text: bytes, data: npt.NDArray[np.uint8], start: int, end: int, *, prefixed: bool) -> bool:
    """Whether `text` may hold, between `start` and `end`, a cell under another prefix than the root's (`<x:c`),
    or under none when the root has one: the reader takes any element named c for a cell."""
    if prefixed:
        unprefixed = _pairs(text, b"<c", start, end)
        return bool(unprefixed.size) and bool(_NAME_END[data[unprefixed + 2]].any())
    return text.find(b":", start, end) >= 0 and _OTHER_PREFIX.search(text, start, end) is not None


class _Unplaced(Exception):
    """A cell without a reference after chunks measured from their references alone: the position the reader
    gives it depends on every row and cell before it, so the sheet is walked again from its start."""


class _SheetScan:
    """Counts cells and the farthest row and column as a sheet's XML streams by, chunk by chunk.

    The fast path applies to a chunk where every cell tag starts `<c r="` (Excel's own layout, and nearly every
    writer's; `<x:c r="` when the root element has a prefix). Every `<c` (or `:c`) of the chunk is located with
    two vectorised comparisons and the bytes from each are gathered: the cells are those that start `<c r="`
    (other elements whose name starts with c are told apart by the byte after the name), each one's column is
    computed from its letters (in either case), and its row compared with the largest row so far or that of
    the chunk's last cell; the few that may be past it, or whose reference is unusual (a `$`, leading zeros,
    more letters than Excel's grid has), are read exactly. Cells are not assumed to be in any order.

    A chunk holding any other cell — attributes in another order, other spacing or quoting, another namespace
    prefix, no reference — is walked element by element, as the reader positions each cell (a cell without a
    reference goes after the previous one, in the current row). When such a cell comes after chunks that were
    measured by their references only, the rows and cells before it were not followed, so the sheet is walked
    again from its start (`_Unplaced`, then `walk_only`).
    """

    def __init__(self, name: str, *, walk_only: bool = False) -> None:
        self.name = name
        self.extent = SheetExtent()
        self._walk_only = walk_only
        self._tag: bytes | None = None  # `<c`, or `<x:c` under the root element's prefix `x`
        self._next_row = 1  # the reader's current row, as the walk follows it (1-based)
        self._column = 0  # the column of the last cell placed (1-based; 0 after a row ends)
        self._skipped = False  # whether some rows or cells were measured from their references only

    def feed(self, rest: bytes, chunk: bytes) -> bytes:
        """Measure `rest` (carried from the previous chunk) then `chunk` up to the chunk's last `<` at least
        `_WINDOW` bytes from its end; return what follows, to be carried to the next chunk.

        The tags that start in `rest` or in the chunk's first bytes are measured on a short join of the two, the
        rest of the chunk in place: nothing is cut in two and the chunk is not copied."""
        split = chunk.find(b"<", _WINDOW, len(chunk) - _WINDOW)
        if split < 0:
            return self._feed_joined(rest + chunk)
        joined = rest + chunk[: split + _WINDOW]
        done = self._measure(joined, 0, len(rest) + split, final=False)
        if done < len(rest) + split:  # a tag runs on past the join: measured from there with the whole chunk
            return self._feed_joined((rest + chunk)[done:])
        cut = chunk.rfind(b"<", split, len(chunk) - _WINDOW)
        return chunk[self._measure(chunk, split, cut, final=False) :]

    def _feed_joined(self, text: bytes) -> bytes:
        cut = text.rfind(b"<", 0, len(text) - _WINDOW) if len(text) > _WINDOW else -1
        rest = text[self._measure(text, 0, cut, final=False) :] if cut > 0 else text
        if len(rest) > CHUNK + _WINDOW:
            raise Malformed(f"not a workbook: part {self.name} holds more than {CHUNK:,} bytes without a tag")
        return rest

    def finish(self, rest: bytes) -> None:
        """Measure what was carried after the last chunk, then check the sheet's extent."""
        if rest:
            self._measure(rest + b" " * _WINDOW, 0, len(rest), final=True)
        self.check()

    def _measure(self, text: bytes, start: int, end: int, *, final: bool) -> int:
        """Measure the tags of `text` that start between `start` and `end`; where the next chunk should start."""
        if start >= end:
            return end
        if self._tag is None:
            first = _FIRST_ELEMENT.search(text, start, end)
            root = _ROOT.match(text, first.start()) if first is not None else None
            if root is not None:
                prefix = root.group(1)
                self._tag = b"<" + (prefix + b":" if prefix else b"") + b"c"
        if not self._walk_only and self._fast(text, start, end, self._tag or b"<c"):
            return end
        return self._walk(text, start, end, final=final)

    def _fast(self, text: bytes, start: int, end: int, tag: bytes) -> bool:
        """Measure a chunk from its cells' references; False, having changed nothing, when it must be walked."""
        head = tag + b' r="'
        back = len(tag) - 2  # from the tag's `<` to its last two bytes, `<c` or `:c`
        if len(head) > 16:
            return False
        data = np.frombuffer(text, dtype=np.uint8)
        at = _pairs(text, tag[-2:], start, end)
        if _other_cells(text, data, start, end, prefixed=back > 0) or (back and at.size and at.min() < start + back):
            return False
        if at.size:
            width = len(head) + 11  # the longest reference within the grid, and the byte after it
            every = np.lib.stride_tricks.as_strided(
                data, shape=(len(text) - width + 1, width), strides=(1, 1), writeable=False
            )
            windows = every[at - back if back else at]
            cells = _starts_with(windows, head)
            if not cells.all():
                if (_NAME_END[windows[:, back + 2]] & ~cells).any():
                    return False  # a cell tag that does not start with its reference
                windows, at = windows[cells], at[cells]
        if at.size == 0:
            # No cell: rows, if any, were not followed (a later cell without a reference is placed after them).
            self._skipped = self._skipped or text.find(b"row", start, end) >= 0
            return True
        return self._measure_cells(text, windows, at + (len(head) - back), len(head))

    def _measure_cells(
        self, text: bytes, windows: npt.NDArray[np.uint8], references: npt.NDArray[np.intp], start: int
    ) -> bool:
        """Count the cells and raise the extent to their farthest reference (`start`: where each window's
        reference starts; `references`: where it starts in `text`)."""
        count = len(references)
        folded = [windows[:, start + i] | 0x20 for i in range(4)]  # lower case, digits unchanged
        letter = [np.less(byte - 97, 26) for byte in folded]
        column = folded[0].astype(np.uint16) - 96
        two = letter[1]
        three = two & letter[2]
        several = bool(two.any())
        if several:
            column = np.where(two, column * 26 + (folded[1] - 96), column)
            column = np.where(three, column * 26 + (folded[2] - 96), column)
        unusual = ~letter[0] | (three & letter[3])  # no letter first (`$`, a digit…), or four letters or more
        last = int(references.argmax())
        last_column, last_row = _reference_at(text, int(references[last]))
        rows = max(self.extent.rows, last_row)
        if rows > MAX_ROWS:
            self.extent.rows = rows
            self._check_grid()
        # A row past `rows` has more digits, or as many and a greater first differing one (leading zeros apart).
        digits = str(rows).encode()
        bound, shift = int.from_bytes(digits, "big"), 8 * (8 - len(digits))
        past = np.zeros(count, dtype=np.bool_)
        groups = [(2, two & ~three), (3, three)] if several else []
        for length, members in [(1, ~two if several else None), *groups]:
            first = start + length
            more = np.less(windows[:, first + len(digits)] - 48, 10)
            full = np.less(windows[:, first + len(digits) - 1] - 48, 10)
            greater = full & ((_words(windows, first) >> shift) > bound)
            beyond = (windows[:, first] == 48) | more | greater
            past |= beyond if members is None else beyond & members
        exact = np.flatnonzero(unusual | past)
        if exact.size > _FEW:
            return False
        columns = int((np.where(unusual, 0, column) if unusual.any() else column).max())
        for index in exact.tolist():
            cell_column, cell_row = _reference_at(text, int(references[index]))
            columns, rows = max(columns, cell_column), max(rows, cell_row)
        extent = self.extent
        extent.cells += count
        self._check_cells()
        extent.columns = max(extent.columns, columns)
        extent.rows = max(extent.rows, rows)
        self._check_grid()
        self._column = last_column
        self._skipped = True
        return True

    def _walk(self, text: bytes, start: int, end: int, *, final: bool) -> int:
        """Element by element, as the reader places cells: where the next chunk should start (at a tag that runs
        on past the end of `text`, unless this is the last chunk)."""
        extent = self.extent
        cells, rows, columns = extent.cells, extent.rows, extent.columns
        next_row, column = self._next_row, self._column  # the reader's current row; the last cell's column
        resume = end
        try:
            for match in _TAG.finditer(text, start, end):
                closing, kind, attributes, closed = match.groups()
                if closed is None or (attributes and (b"'" in attributes or attributes.count(b'"') % 2)):
                    # Cut short at `end`, or by a `>` in a quoted value, or malformed: read it again.
                    whole = self._whole(text, match.start(), final=final)
                    if whole is None:
                        resume = match.start()
                        break
                    closing, kind, attributes = whole
                if closing:  # `</row>`
                    next_row += 1
                    column = 0
                    continue
                reference = _reference(attributes) if attributes else None
                if kind == b"row":  # it starts at its number, or where the previous one ended
                    if reference is not None:
                        next_row = _position(*reference)[1]
                    rows = next_row if next_row > rows else rows
                    if attributes.endswith(b"/"):  # `<row/>`: opened and closed
                        next_row += 1
                        column = 0
                    continue
                cells += 1
                if reference is not None:
                    column, row = _position(*reference)
                elif self._skipped:
                    raise _Unplaced
                else:
                    column, row = column + 1, next_row
                rows = row if row > rows else rows
                columns = column if column > columns else columns
        finally:
            extent.cells, extent.rows, extent.columns = cells, rows, columns
            self._next_row, self._column = next_row, column
        self._check_grid()
        self._check_cells()
        return resume

    def _whole(self, text: bytes, at: int, *, final: bool) -> tuple[bytes, bytes, bytes] | None:
        """The tag at `at` read over all of `text` (its closing slash, name and attributes); None when it may go
        on in the next chunk; `Malformed` when the reader could not read it either."""
        plain = _TAG.match(text, at)
        if plain is not None and plain.group(4) is not None and not _open_quote(plain.group(3)):
            return plain.group(1), plain.group(2), plain.group(3)
        tag = _QUOTED_TAG.match(text, at)
        assert tag is not None  # it matched without quotes
        closing, kind, attributes, closed = tag.groups()
        if closed is not None:
            return closing, kind, attributes
        if not final and _truncated(text, tag):
            return None
        raise Malformed(f"not a workbook: part {self.name} has a {kind.decode()} tag that cannot be read")

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
    if not _SHEET_PART.match(member.filename):
        return _read_part(handle, member, budget, None)
    scan = _SheetScan(member.filename)
    try:
        produced = _read_part(handle, member, budget, scan)
    except _Unplaced:
        scan = _SheetScan(member.filename, walk_only=True)
        produced = _read_part(handle, member, budget, scan)
    inspection.sheets[member.filename] = scan.extent
    return produced


def _read_part(handle: BinaryIO, member: zipfile.ZipInfo, budget: int, scan: _SheetScan | None) -> int:
    """Inflate one part, checking its prolog and measuring it if it is a sheet; the bytes it inflates to."""
    # A DOCTYPE (and the entities it declares) can only stand in the prolog, before the root element.
    in_prolog = member.filename.lower().endswith((".xml", ".rels", ".vml"))
    chunks = _inflate(handle, member, budget)
    if scan is not None and member.file_size > CHUNK:
        chunks = _ahead(chunks)
    tail = rest = b""
    produced = 0
    try:
        for chunk in chunks:
            produced += len(chunk)
            if in_prolog:
                text = tail + chunk
                root = _FIRST_ELEMENT.search(text)
                if _DECLARATION.search(text, 0, root.start() if root else len(text)):
                    raise Malformed(
                        f"refused: part {member.filename} declares a DOCTYPE or XML entities, which no workbook "
                        "needs (entity expansion and external entities are not allowed)"
                    )
                in_prolog = root is None
                tail = text[-_TAIL:]
            if scan is not None:
                rest = scan.feed(rest, chunk)
    finally:
        chunks.close()  # stops the inflating thread, if any, before anything else reads the file
    if scan is not None:
        scan.finish(rest)
    return produced


def _ahead(chunks: Generator[bytes]) -> Generator[bytes]:
    """The same chunks, the next one inflating on another thread while the caller measures the current one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="inflate-ahead") as inflater:
        pending = inflater.submit(next, chunks, b"")
        while chunk := pending.result():
            pending = inflater.submit(next, chunks, b"")
            yield chunk


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
