"""The sheet inspection measures what the reader will allocate, however the XML is written and wherever the
inflated chunks happen to be cut: cells counted, and the farthest row and column over all of them."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from comptaflow.period_validator.excel import inspection
from comptaflow.period_validator.excel.inspection import SheetExtent
from comptaflow.testkit import malformed

SHEET = "xl/worksheets/sheet1.xml"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _letters(column: int) -> str:
    return inspection.column_letters(column)


def _rows(count: int, columns: int = 3, *, first: int = 1) -> str:
    """Rows of numeric cells with their references, as Excel writes them."""
    return "".join(
        f'<row r="{row}">'
        + "".join(f'<c r="{_letters(column)}{row}" s="1"><v>{row}</v></c>' for column in range(1, columns + 1))
        + "</row>"
        for row in range(first, first + count)
    )


def _measure(tmp_path: Path, sheet: bytes, monkeypatch: pytest.MonkeyPatch, chunk: int | None = None) -> SheetExtent:
    """The extent `inspect_zip` measures for `sheet`, inflated in chunks of `chunk` bytes if given."""
    if chunk is not None:
        monkeypatch.setattr(inspection, "CHUNK", chunk)
    path = malformed.write_raw_workbook(tmp_path / "sheet.xlsx", sheet)
    return inspection.inspect_zip(path).sheets[SHEET]


def _scan(sheet: bytes, pieces: list[int], *, walk_only: bool = False) -> SheetExtent:
    """The extent of `sheet` fed to the scanner cut at `pieces` (offsets), as inflated chunks would be."""
    scan = inspection._SheetScan(SHEET, walk_only=walk_only)
    rest = b""
    for start, end in zip([0, *pieces], [*pieces, len(sheet)], strict=True):
        rest = scan.feed(rest, sheet[start:end])
    scan.finish(rest)
    return scan.extent


def _expected(sheet: bytes) -> SheetExtent:
    """What the reader would see, from an XML parser: every element named c, placed by its reference."""
    extent = SheetExtent()
    for element in ET.fromstring(sheet).iter():  # noqa: S314 (XML these tests wrote)
        if element.tag.rsplit("}", 1)[-1] != "c":
            continue
        reference = element.get("r")
        assert reference is not None
        letters = reference.rstrip("0123456789")
        extent.cells += 1
        extent.columns = max(extent.columns, inspection.column_number(letters.upper().encode()))
        extent.rows = max(extent.rows, int(reference[len(letters) :]))
    return extent


def test_a_reference_cut_between_two_chunks_is_read_whole() -> None:
    far = b'<c r="AB7000" t="s"><v>1</v></c>'
    sheet = malformed.sheet_xml(_rows(40) + '<row r="41">' + far.decode() + "</row>" + _rows(40, first=42))
    at = sheet.index(far)
    for cut in range(at - 40, at + len(far) + 40):  # every cut through the far cell's tag, and around it
        for pieces in ([cut], [cut - 70, cut], [cut, cut + 7]):
            extent = _scan(sheet, pieces)
            assert (extent.cells, extent.rows, extent.columns) == (241, 7000, 28), (cut, pieces)


@pytest.mark.parametrize("chunk", [64, 97, 1000, 4096, None])
def test_chunk_sizes_change_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int | None) -> None:
    sheet = malformed.sheet_xml(_rows(300, 5) + '<row r="301"><c r="ZZ301"><v>1</v></c></row>')
    extent = _measure(tmp_path, sheet, monkeypatch, chunk)
    assert (extent.cells, extent.rows, extent.columns) == (1501, 301, 702)


@pytest.mark.parametrize(
    ("far", "rows", "columns"),
    [("AZ1", 2001, 52), ("A90000", 90_000, 4), ("AZ90000", 90_000, 52)],
    ids=["column", "row", "both"],
)
def test_a_far_cell_first_is_measured_though_every_later_cell_is_near(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, far: str, rows: int, columns: int
) -> None:
    """The last cell of each chunk is near A1: the far cell came first and is not assumed away."""
    sheet = malformed.sheet_xml(f'<row r="1"><c r="{far}"><v>1</v></c></row>' + _rows(2000, 4, first=2))
    for chunk in (512, None):
        extent = _measure(tmp_path, sheet, monkeypatch, chunk)
        assert (extent.cells, extent.rows, extent.columns) == (8001, rows, columns)


def test_the_far_corner_first_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sheet = malformed.sheet_xml('<row r="1"><c r="XFD1048576"><v>1</v></c></row>' + _rows(2000, 4, first=2))
    with pytest.raises(inspection.TooComplex, match="row 1,048,576 and column XFD"):
        _measure(tmp_path, sheet, monkeypatch, 512)


def test_far_cells_in_the_middle_are_found_whatever_their_case_or_zeros(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for far, rows, columns in [
        ("xfd5", 1200, 16_384),  # lower case letters are read as capitals
        ("B000000090000", 90_000, 4),  # leading zeros do not count
        ("$AA$77", 1200, 27),
    ]:
        cells = _rows(600, 4) + f'<row r="601"><c r="{far}"><v>1</v></c></row>' + _rows(599, 4, first=602)
        for chunk in (1024, None):
            extent = _measure(tmp_path, malformed.sheet_xml(cells), monkeypatch, chunk)
            assert (extent.cells, extent.rows, extent.columns) == (4797, rows, columns), (far, chunk)


def test_leading_zeros_do_not_hide_a_row_past_the_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cells = '<row r="1"><c r="A1"><v>1</v></c><c r="XFD000000000001048576"><v>1</v></c></row>' + _rows(50)
    with pytest.raises(inspection.TooComplex, match="row 1,048,576 and column XFD"):
        _measure(tmp_path, malformed.sheet_xml(cells), monkeypatch)


@pytest.mark.parametrize(
    "cell",
    [
        '<x:c r="XFD9" xmlns:x="{main}"><x:v>1</x:v></x:c>',  # a prefixed cell under an unprefixed root
        '<c:c r="XFD9" xmlns:c="{main}"><c:v>1</c:v></c:c>',
        '<x:c\tr="XFD9" xmlns:x="{main}"/>',
    ],
    ids=["x-prefix", "c-prefix", "tab"],
)
def test_a_namespace_prefix_does_not_hide_a_cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cell: str) -> None:
    cells = _rows(500) + '<row r="501">' + cell.format(main=MAIN) + "</row>" + _rows(10, first=502)
    for chunk in (700, None):
        extent = _measure(tmp_path, malformed.sheet_xml(cells), monkeypatch, chunk)
        assert (extent.cells, extent.rows, extent.columns) == (1531, 511, 16_384)


def test_under_a_prefixed_root_every_other_prefix_counts_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = "".join(
        f'<x:row r="{row}">' + "".join(f'<x:c r="{c}{row}"><x:v>1</x:v></x:c>' for c in "ABC") + "</x:row>"
        for row in range(1, 400)
    )
    for odd, columns in [("", 3), ('<c r="XFD1"/>', 16_384), ('<y:c r="XFD2" xmlns:y="' + MAIN + '"/>', 16_384)]:
        sheet = f'<x:worksheet xmlns:x="{MAIN}"><x:sheetData>{rows}{odd}</x:sheetData></x:worksheet>'.encode()
        for chunk in (600, None):
            extent = _measure(tmp_path, sheet, monkeypatch, chunk)
            assert (extent.cells, extent.rows, extent.columns) == (1197 + bool(odd), 399, columns), (odd, chunk)


@pytest.mark.parametrize(
    "cell",
    [
        '<c x=">" r="XFD1"><v>1</v></c>',  # a `>` in a value before the reference
        '<c x=" r=\'A1\'" r="XFD1"><v>1</v></c>',  # a reference-like text inside another attribute
        '<c r = "XFD1"><v>1</v></c>',
        '<c x="' + "a" * 5000 + '" r="XFD1"><v>1</v></c>',  # a long value, in any number of chunks
    ],
    ids=["gt-in-value", "r-in-value", "spaced", "long-value"],
)
def test_attributes_are_read_as_the_reader_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cell: str
) -> None:
    cells = _rows(300) + '<row r="301">' + cell + "</row>"
    for chunk in (max(500, 2 * len(cell)), None):  # a chunk holds any tag whole
        assert _measure(tmp_path, malformed.sheet_xml(cells), monkeypatch, chunk).columns == 16_384


def test_cells_without_references_after_referenced_chunks_are_placed_from_the_sheet_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The referenced chunks were not followed row by row: the sheet is walked again to place the others."""
    cells = _rows(400) + '<row r="401"><c r="C401"><v>1</v></c>' + "<c><v>1</v></c>" * 20 + "</row>"
    cells += "<row>" + "<c><v>1</v></c>" * 2 + "</row>"  # row 402, without a reference either
    for chunk in (256, None):
        extent = _measure(tmp_path, malformed.sheet_xml(cells), monkeypatch, chunk)
        assert (extent.cells, extent.rows, extent.columns) == (1223, 402, 23)


def test_elements_whose_name_starts_with_c_are_not_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = '<cols><col min="1" max="3" width="12"/></cols>'
    tail = '<conditionalFormatting sqref="A1:C9"><cfRule type="cellIs" priority="1"/></conditionalFormatting>'
    sheet = f'<worksheet xmlns="{MAIN}">{head}<sheetData>{_rows(100)}</sheetData>{tail}</worksheet>'.encode()
    extent = _measure(tmp_path, sheet, monkeypatch)
    assert (extent.cells, extent.rows, extent.columns) == (300, 100, 3)


def _random_sheet(generator: random.Random) -> bytes:
    """A well-formed sheet of referenced cells written in the ways writers (and attackers) do."""
    prefix = generator.choice(["", "", "x:"])
    rows = []
    for row in range(1, generator.randint(1, 120) + 1):
        cells = []
        for column in sorted(generator.sample(range(1, 60), generator.randint(0, 6))):
            if generator.random() < 0.03:  # a cell anywhere, out of order
                reference = f"{_letters(generator.randint(1, 800))}{generator.randint(1, 9000)}"
            else:
                reference = f"{_letters(column)}{row}"
            if generator.random() < 0.05:
                reference = reference.lower()
            form = generator.random()
            if form < 0.6:
                cells.append(f'<{prefix}c r="{reference}" s="1"><{prefix}v>{row}</{prefix}v></{prefix}c>')
            elif form < 0.7:
                cells.append(f'<{prefix}c r="{reference}"/>')
            elif form < 0.8:
                text = generator.choice(["a:c b", "x > y", "r=&quot;XFD1&quot;", "<c r="])
                text = text.replace("<", "&lt;").replace(">", "&gt;")
                cells.append(f'<{prefix}c r="{reference}" t="inlineStr"><{prefix}is><{prefix}t>{text}</{prefix}t>')
                cells[-1] += f"</{prefix}is></{prefix}c>"
            elif form < 0.9:
                cells.append(f'<{prefix}c t="n" r="{reference}"><{prefix}v>1</{prefix}v></{prefix}c>')
            else:
                cells.append(f"<{prefix}c\nr='{reference}'><{prefix}v>1</{prefix}v></{prefix}c>")
        rows.append(f'<{prefix}row r="{row}">' + "".join(cells) + f"</{prefix}row>")
    namespace = f'xmlns:{prefix[:-1]}="{MAIN}"' if prefix else f'xmlns="{MAIN}"'
    body = "".join(rows)
    return f"<{prefix}worksheet {namespace}><{prefix}sheetData>{body}</{prefix}sheetData></{prefix}worksheet>".encode()


def test_random_sheets_measure_as_an_xml_parser_sees_them() -> None:
    generator = random.Random(9)  # noqa: S311 (seeded test data)
    for _ in range(300):
        sheet = _random_sheet(generator)
        expected = _expected(sheet)
        numbered = max([expected.rows, *(int(r) for r in re.findall(rb'row r="(\d+)"', sheet))])
        for pieces in ([], sorted(generator.sample(range(1, len(sheet)), min(len(sheet) - 1, 6)))):
            fast, walked = _scan(sheet, pieces), _scan(sheet, pieces, walk_only=True)
            assert fast.cells == walked.cells == expected.cells
            assert fast.columns == walked.columns == expected.columns
            # A walked chunk also counts its rows' own numbers (a row may end up without cells).
            assert expected.rows <= fast.rows <= walked.rows == numbered


def test_a_chunk_cut_inside_a_quoted_value_does_not_hide_the_reference() -> None:
    """`<` and `>` are read as the reader reads them inside a quoted value, wherever the chunks are cut."""
    cell = '<c x="' + "<>" * 30 + '" r="XFD1"><v>1</v></c>'
    sheet = malformed.sheet_xml(_rows(30) + f'<row r="31">{cell}</row>' + _rows(30, first=32))
    at = sheet.index(cell.encode())
    for cut in range(at - 40, at + len(cell) + 40):
        for pieces in ([cut], [cut, cut + 33], [cut - 64, cut]):
            extent = _scan(sheet, pieces)
            assert (extent.cells, extent.rows, extent.columns) == (181, 61, 16_384), (cut, pieces)


def test_a_cell_tag_that_cannot_be_read_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No cell has an attribute value of kilobytes: one that long, holding a `>`, is not skipped, the tag is
    refused (a `>` in a short value is read through, as above)."""
    cells = _rows(10) + '<row r="11"><c x="' + "a" * 2500 + ">" + "a" * 2500 + '" r="XFD1"><v>1</v></c></row>'
    with pytest.raises(inspection.Malformed, match="a c tag that cannot be read"):
        _measure(tmp_path, malformed.sheet_xml(cells), monkeypatch)
