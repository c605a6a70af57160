"""Files built to take the reader down: each is refused from what it really holds, with the limit named.

The cheap ones are validated in this process (the inspection refuses them before any reader allocates);
those whose reading would be dangerous run where the validator runs them, in a capped parsing child.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import xlwt

from comptaflow.common.sandbox import Sandbox
from comptaflow.period_validator import parsing
from comptaflow.period_validator.excel import inspection, validate_excel
from comptaflow.period_validator.findings import Code, FileKind, Finding, ValidationResult
from comptaflow.testkit import malformed
from comptaflow.testkit.excel import write_period

GL = "grand_livre_comptes"


def _period_with(tmp_path: Path, kind: str, make: Callable[[Path], Path]) -> dict[str, Path]:
    export = write_period(tmp_path / "period")
    paths = dict(export.paths)
    paths[kind] = make(tmp_path / "hostile.xlsx")
    return paths


def _validate(paths: dict[str, Path]) -> ValidationResult:
    return validate_excel({FileKind(kind): path for kind, path in paths.items()})


def _only(result: ValidationResult, code: Code) -> Finding:
    found = [finding for finding in result.errors if finding.code is code]
    assert len(found) == 1, result.errors
    return found[0]


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (malformed.write_corner_cells, "column XFD"),
        (lambda p: malformed.write_corner_cells(p, dimension="A1:B2"), "column XFD"),  # a lying <dimension>
        (lambda p: malformed.write_corner_cells(p, last=(1_048_576, 200)), "column GR"),
    ],
    ids=["no-dimension", "false-dimension", "A1-and-GR1048576"],
)
def test_far_apart_cells_are_measured_from_the_cells(tmp_path: Path, make: Callable[[Path], Path], says: str) -> None:
    paths = _period_with(tmp_path, GL, make)
    assert paths[GL].stat().st_size < 8 * 1024
    started = time.monotonic()
    finding = _only(_validate(paths), Code.FILE_TOO_COMPLEX)
    assert time.monotonic() - started < 30
    assert finding.file == GL
    assert says in finding.message
    assert f"{inspection.MAX_SHEET_CELLS:,} cells" in finding.message


@pytest.mark.parametrize(
    "cells",
    [
        "<row r='1'><c r='A1'><v>1</v></c><c r='XFD1048576'><v>1</v></c></row>",  # single quotes
        '<row r="1"><c\tr="A1"><v>1</v></c><c\nr="ZZ900000"><v>1</v></c></row>',  # other whitespace
        '<row r="1"><c t="n" r="A1"><v>1</v></c><c s="1" r="XFD9"><v>1</v></c></row>'
        '<row r="1048576"><c><v>1</v></c></row>',
    ],
    ids=["quotes", "whitespace", "attribute-order"],
)
def test_cells_written_unusually_are_measured_too(tmp_path: Path, cells: str) -> None:
    paths = _period_with(tmp_path, GL, lambda p: malformed.write_raw_workbook(p, malformed.sheet_xml(cells)))
    assert _only(_validate(paths), Code.FILE_TOO_COMPLEX).file == GL


def test_a_namespace_prefix_does_not_hide_cells(tmp_path: Path) -> None:
    sheet = (
        b'<x:worksheet xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><x:sheetData>'
        b'<x:row r="1"><x:c r="A1"><x:v>1</x:v></x:c><x:c r="XFD1048576"><x:v>1</x:v></x:c></x:row>'
        b"</x:sheetData></x:worksheet>"
    )
    paths = _period_with(tmp_path, GL, lambda p: malformed.write_raw_workbook(p, sheet))
    assert _only(_validate(paths), Code.FILE_TOO_COMPLEX).file == GL


def test_cells_without_references_are_placed_as_the_reader_places_them(tmp_path: Path) -> None:
    cells = "<row>" + "<c><v>1</v></c>" * 17_000 + "</row>"  # the 17,000th cell is past column XFD
    paths = _period_with(tmp_path, GL, lambda p: malformed.write_raw_workbook(p, malformed.sheet_xml(cells)))
    finding = _only(_validate(paths), Code.NOT_EXCEL)
    assert "beyond Excel's grid" in finding.message


def test_a_part_that_inflates_past_what_it_declares_is_refused_as_it_streams(tmp_path: Path) -> None:
    """The central directory claims 31 KB; the content inflates to 3 GB. Only the first chunk is inflated."""
    paths = _period_with(tmp_path, GL, malformed.write_lying_sheet)
    assert paths[GL].stat().st_size < 64 * 1024**2
    started = time.monotonic()
    finding = _only(_validate(paths), Code.NOT_EXCEL)
    assert time.monotonic() - started < 30
    assert "declares 31,744 bytes but holds more" in finding.message


def test_the_inflated_size_has_a_budget_whatever_the_parts_declare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inspection, "MAX_INFLATED_BYTES", 64 * 1024**2)
    path = malformed.write_padded_honest_sheet(tmp_path / "big.xlsx", sheet_bytes=96 * 1024**2, padding=1024)
    with pytest.raises(inspection.TooComplex, match="limit of the inflated size"):
        inspection.inspect_zip(path)


@pytest.mark.parametrize("where", ["sheet", "shared-strings"])
def test_a_doctype_inside_a_workbook_has_its_own_message(tmp_path: Path, where: str) -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    if where == "sheet":
        make = lambda p: malformed.write_raw_workbook(p, malformed.sheet_xml("", prologue=bomb))  # noqa: E731
    else:
        extra = {"xl/sharedStrings.xml": (bomb + "<sst><si><t>&b;</t></si></sst>").encode()}
        make = lambda p: malformed.write_raw_workbook(p, malformed.sheet_xml(""), extra=extra)  # noqa: E731
    finding = _only(_validate(_period_with(tmp_path, GL, make)), Code.NOT_EXCEL)
    assert "DOCTYPE" in finding.message
    assert "Cannot detect" not in finding.message


@pytest.mark.parametrize("external", [False, True], ids=["entity-expansion", "external-entity"])
def test_an_xml_file_with_a_doctype_has_its_own_message(tmp_path: Path, external: bool) -> None:
    paths = _period_with(tmp_path, GL, lambda p: malformed.write_entity_xml(p, external=external))
    finding = _only(_validate(paths), Code.NOT_EXCEL)
    assert "DOCTYPE" in finding.message


def _xls(path: Path) -> Path:
    book = xlwt.Workbook()
    sheet = book.add_sheet("GL")
    for row in range(50):
        sheet.write(row, 0, f"ligne {row}")
    book.save(str(path))
    return path


def test_an_xls_whose_stream_declares_more_than_the_file_holds_is_refused(tmp_path: Path) -> None:
    source = _xls(tmp_path / "source.xls")
    paths = _period_with(tmp_path, GL, lambda p: malformed.write_xls_with_lying_stream(p.with_suffix(".xls"), source))
    finding = next(f for f in _validate(paths).errors if f.file == GL)
    assert finding.code in (Code.FILE_TOO_COMPLEX, Code.NOT_EXCEL)
    assert "stream" in finding.message


def test_an_honest_xls_passes_its_inspection(tmp_path: Path) -> None:
    assert inspection.inspect_ole(_xls(tmp_path / "ok.xls")).inflated_bytes > 0


async def test_an_honest_giant_sheet_padded_to_a_low_ratio_is_refused_in_the_child(tmp_path: Path) -> None:
    """1.9 GB of real cells beside 12 MB of noise pass the ratio check; the cells do not pass the count, which
    stops the inspection (and the reader never starts) inside the child's cap."""
    paths = _period_with(tmp_path, GL, malformed.write_padded_honest_sheet)
    out = tmp_path / "out"
    out.mkdir()
    box = Sandbox(preload=parsing.PRELOAD, memory_mb=2048, timeout_s=240)
    raw = await box.run(
        parsing.ENTRY,
        {
            "kind": "excel",
            "paths": {kind: str(path) for kind, path in paths.items()},
            "period": None,
            "out_dir": str(out),
            "tenant_id": "t",
            "load_id": "00000000-0000-0000-0000-000000000001",
        },
    )
    result, staged = parsing.outcome(raw)
    assert not staged
    finding = _only(result, Code.FILE_TOO_COMPLEX)
    assert "cells" in finding.message
