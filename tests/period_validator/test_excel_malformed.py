"""The failure corpus: each malformed input gives its specific code (file, row), never an exception."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from comptaflow.period_validator.excel import validate_excel
from comptaflow.period_validator.findings import Code, FileKind, Finding, ValidationResult
from comptaflow.testkit import malformed
from comptaflow.testkit.excel import ExportSpec, RenderedPeriod, render_period, write_period
from comptaflow.testkit.sheet import write_sheet

Run = Callable[..., Any]
GL = "grand_livre_comptes"
GLT = "grand_livre_tiers"


def _replace_file(tmp_path: Path, kind: str, make: Callable[[Path], Path], suffix: str = ".xlsx") -> ValidationResult:
    export = write_period(tmp_path / "period")
    paths = {FileKind(k): p for k, p in export.paths.items()}
    paths[FileKind(kind)] = make(tmp_path / f"broken{suffix}")
    return validate_excel(paths)


def _only(result: ValidationResult, code: Code) -> Finding:
    found = [finding for finding in result.errors if finding.code == code]
    assert len(found) == 1, result.errors
    return found[0]


def _cell(rendered: RenderedPeriod, kind: str, row: int, field: str) -> tuple[list[Any], int]:
    """The row list (0-based index row - 1) and the column index of `field` in a rendered ledger."""
    column = rendered.ledgers[kind].columns.index(field)
    cells = rendered.rows[kind][row - 1]
    while len(cells) <= column:
        cells.append(None)
    return cells, column


# -- files that are not workbooks ------------------------------------------------------------------


def test_truncated_xlsx(tmp_path: Path) -> None:
    source = write_period(tmp_path / "src").paths[GL]
    result = _replace_file(tmp_path, GL, lambda p: malformed.truncated_copy(source, p))
    finding = _only(result, Code.NOT_EXCEL)
    assert finding.file == GL
    assert "truncated" in finding.message
    assert result.tables[GL].is_empty()


@pytest.mark.parametrize(
    ("member", "says"), [("xl/worksheets/sheet1.xml", "corrupt"), ("xl/sharedStrings.xml", "corrupt")]
)
def test_corrupt_xlsx_bytes(tmp_path: Path, member: str, says: str) -> None:
    source = write_period(tmp_path / "src").paths[GL]
    result = _replace_file(tmp_path, GL, lambda p: malformed.corrupt_copy(source, p, member=member))
    finding = _only(result, Code.NOT_EXCEL)
    assert finding.file == GL
    assert says in finding.message


def test_zip_bomb_is_refused_from_its_central_directory(tmp_path: Path) -> None:
    result = _replace_file(tmp_path, GLT, malformed.write_zip_bomb)
    finding = _only(result, Code.NOT_EXCEL)
    assert finding.file == GLT
    assert "zip bomb" in finding.message
    assert (tmp_path / "broken.xlsx").stat().st_size < 2000


def test_zip_with_absurd_compression_ratio_is_refused(tmp_path: Path) -> None:
    result = _replace_file(tmp_path, GL, lambda p: malformed.write_high_ratio_zip(p, size=24 * 1024**2))
    finding = _only(result, Code.NOT_EXCEL)
    assert "compression ratio" in finding.message


def test_sheet_declaring_a_huge_rectangle_is_refused(tmp_path: Path) -> None:
    result = _replace_file(tmp_path, GL, malformed.write_sparse_sheet)
    finding = _only(result, Code.NOT_EXCEL)
    assert "600,000 rows by 100 columns" in finding.message
    assert (tmp_path / "broken.xlsx").stat().st_size < 10_000


def test_csv_disguised_as_xlsx(tmp_path: Path) -> None:
    text = "Date;Journal;Compte;Libellé;Débit;Crédit\n01/01/2024;AC;401000;Facture;0;100\n"
    result = _replace_file(tmp_path, "plan_comptes", lambda p: malformed.write_text(p, text))
    finding = _only(result, Code.NOT_EXCEL)
    assert finding.file == "plan_comptes"
    assert "CSV" in finding.message


def test_html_saved_as_xls(tmp_path: Path) -> None:
    html = "<html><body><table><tr><td>Date</td></tr></table></body></html>"
    result = _replace_file(tmp_path, "code_journal", lambda p: malformed.write_text(p, html), ".xls")
    assert "HTML" in _only(result, Code.NOT_EXCEL).message


def test_word_document_zip(tmp_path: Path) -> None:
    result = _replace_file(tmp_path, "plan_tiers", malformed.write_docx_like)
    assert "Word document" in _only(result, Code.NOT_EXCEL).message


def test_empty_file(tmp_path: Path) -> None:
    result = _replace_file(tmp_path, GL, lambda p: malformed.write_text(p, ""))
    assert _only(result, Code.NOT_EXCEL).message == "the file is empty"


def test_missing_file(tmp_path: Path) -> None:
    export = write_period(tmp_path / "period")
    paths = {FileKind(k): p for k, p in export.paths.items() if k != "plan_tiers"}
    result = validate_excel(paths)
    finding = _only(result, Code.MISSING_FILE)
    assert finding.file == "plan_tiers"
    assert result.tables["plan_tiers"].is_empty()
    assert result.tables[GL].height == export.ledgers[GL].entry_lines


def test_xls_content_named_xlsx_is_read(tmp_path: Path) -> None:
    export = write_period(tmp_path / "period", ExportSpec(fmt="xls"))
    paths = {FileKind(k): p for k, p in export.paths.items()}
    renamed = paths[FileKind.GRAND_LIVRE_COMPTES].rename(tmp_path / "grand_livre.xlsx")
    paths[FileKind.GRAND_LIVRE_COMPTES] = renamed
    result = validate_excel(paths)
    assert result.errors == []
    assert result.tables[GL].height == export.ledgers[GL].entry_lines


# -- sheets without a usable header ----------------------------------------------------------------


def test_empty_sheet(tmp_path: Path) -> None:
    result = _replace_file(tmp_path, GL, lambda p: write_sheet(p, []))
    finding = _only(result, Code.HEADER_NOT_FOUND)
    assert finding.file == GL
    assert finding.message.startswith("the sheet is empty")


def test_no_header_row(tmp_path: Path) -> None:
    rows: list[list[Any]] = [["ACME SARL"], ["Grand livre"], ["Période du 01/01/2024 au 31/12/2024"]]
    rows += [["01/01/2024", "AC", "Facture", 10, None]] * 5
    result = _replace_file(tmp_path, GL, lambda p: write_sheet(p, rows))
    finding = _only(result, Code.HEADER_NOT_FOUND)
    assert finding.row is None
    assert "no header row" in finding.message


def test_required_column_missing(tmp_path: Path, run: Run) -> None:
    rendered = render_period(ExportSpec())
    header_row = rendered.ledgers[GL].header_row
    cells, column = _cell(rendered, GL, header_row, "credit")
    cells[column] = "Montant"
    outcome = run(rendered)
    finding = _only(outcome.result, Code.HEADER_NOT_FOUND)
    assert (finding.file, finding.row) == (GL, header_row)
    assert "Crédit" in finding.message
    assert outcome.result.tables[GL].is_empty()


def test_no_account_column_and_no_group_rows(tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        ["Période du 01/01/2024 au 31/12/2024"],
        ["Date", "Journal", "Libellé", "Débit", "Crédit"],
        [date(2024, 1, 5), "AC", "Facture", 10.0, None],
    ]
    result = _replace_file(tmp_path, GL, lambda p: write_sheet(p, rows))
    finding = _only(result, Code.HEADER_NOT_FOUND)
    assert finding.row == 2
    assert "account" in finding.message


def test_reference_file_without_its_columns(tmp_path: Path) -> None:
    rows: list[list[Any]] = [["Plan comptable"], ["Numéro", "Solde"], ["401000", "12,00"]]
    result = _replace_file(tmp_path, "plan_comptes", lambda p: write_sheet(p, rows))
    finding = _only(result, Code.HEADER_NOT_FOUND)
    assert finding.file == "plan_comptes"
    assert not any(w.code == Code.UNKNOWN_ACCOUNT for w in result.warnings)


# -- periods ---------------------------------------------------------------------------------------


def _with_period_text(text: str, kind: str = GL) -> RenderedPeriod:
    rendered = render_period(ExportSpec())
    rows = rendered.rows[kind]
    index = next(i for i, row in enumerate(rows) if row and isinstance(row[0], str) and "Période" in row[0])
    rows[index] = [text]
    return rendered


def test_unreadable_period_text(run: Run) -> None:
    outcome = run(_with_period_text("Période du premier janvier au trente et un décembre"))
    finding = _only(outcome.result, Code.PERIOD_NOT_FOUND)
    assert (finding.file, finding.row) == (GL, 3)
    assert "premier janvier" in finding.message
    assert outcome.result.period is not None  # the tiers ledger still states it


def test_no_period_at_all(run: Run) -> None:
    outcome = run(ExportSpec(period_form="none", tiers_period_form="none"))
    findings = [f for f in outcome.result.errors if f.code == Code.PERIOD_NOT_FOUND]
    assert [f.file for f in findings] == [GL, GLT]
    assert outcome.result.period is None
    assert not any(f.code == Code.ENTRY_OUTSIDE_PERIOD for f in outcome.result.errors)


def test_period_mismatch_between_ledgers(run: Run) -> None:
    outcome = run(ExportSpec(tiers_period=(date(2024, 1, 1), date(2024, 12, 30))))
    finding = _only(outcome.result, Code.PERIOD_MISMATCH)
    assert "31/12/2024" in finding.message
    assert "30/12/2024" in finding.message
    assert finding.details == {GL: ["2024-01-01", "2024-12-31"], GLT: ["2024-01-01", "2024-12-30"]}


def test_period_start_after_end(run: Run) -> None:
    outcome = run(_with_period_text("Période du 31/12/2024 au 01/01/2024"))
    finding = _only(outcome.result, Code.PERIOD_INVALID)
    assert (finding.file, finding.row) == (GL, 3)
    assert "starts after it ends" in finding.message


def test_impossible_date_in_period(run: Run) -> None:
    outcome = run(_with_period_text("Période du 01/01/2024 au 31/02/2024", kind=GLT))
    finding = _only(outcome.result, Code.PERIOD_INVALID)
    assert (finding.file, finding.row) == (GLT, 3)
    assert "31/02/2024" in finding.message


def test_entry_outside_period(run: Run) -> None:
    rendered = render_period(ExportSpec(date_style="dd/mm/yyyy", account_totals=False))
    entry_rows = rendered.ledgers[GL].entry_rows
    targets = [entry_rows[3][0], entry_rows[10][0]]
    for row in targets:
        cells, column = _cell(rendered, GL, row, "date")
        cells[column] = "15/01/2025"
    outcome = run(rendered)
    finding = _only(outcome.result, Code.ENTRY_OUTSIDE_PERIOD)
    assert (finding.file, finding.row) == (GL, targets[0])
    assert finding.details == {"count": 2, "rows": targets, "dates": ["2025-01-15", "2025-01-15"]}


# -- amounts and totals ----------------------------------------------------------------------------


def test_unbalanced_ledger(run: Run) -> None:
    rendered = render_period(ExportSpec(account_totals=False, grand_total=False))
    row, line = next((row, line) for row, line in rendered.ledgers[GL].entry_rows if line.debit)
    cells, column = _cell(rendered, GL, row, "debit")
    cells[column] = (line.debit + 1234) / 100
    outcome = run(rendered)
    finding = _only(outcome.result, Code.UNBALANCED)
    assert finding.file == GL
    assert finding.details is not None
    assert finding.details["difference"] == "12.34"
    assert outcome.codes() == [Code.UNBALANCED]


def test_account_total_that_does_not_add_up(run: Run) -> None:
    rendered = render_period(ExportSpec(layout="grouped"))
    rows = rendered.rows[GL]
    index = next(i for i, row in enumerate(rows) if "Total compte 512000" in row)
    column = rendered.ledgers[GL].columns.index("debit")
    rows[index][column] = float(rows[index][column]) + 0.02
    outcome = run(rendered)
    finding = _only(outcome.result, Code.TOTAL_MISMATCH)
    assert (finding.file, finding.row) == (GL, index + 1)
    assert finding.details is not None
    assert finding.details["account"] == "512000"
    assert outcome.codes() == [Code.TOTAL_MISMATCH]


def test_account_total_within_tolerance_passes(run: Run) -> None:
    rendered = render_period(ExportSpec())
    rows = rendered.rows[GL]
    index = next(i for i, row in enumerate(rows) if "Total compte 512000" in row)
    column = rendered.ledgers[GL].columns.index("credit")
    rows[index][column] = float(rows[index][column]) + 0.01
    assert run(rendered).result.errors == []


def test_grand_total_that_does_not_add_up(run: Run) -> None:
    rendered = render_period(ExportSpec(amount_style="space"))
    rows = rendered.rows[GLT]
    index = next(i for i, row in enumerate(rows) if "Total général" in row)
    column = rendered.ledgers[GLT].columns.index("credit")
    rows[index][column] = "1 000 000,00"
    outcome = run(rendered)
    finding = _only(outcome.result, Code.TOTAL_MISMATCH)
    assert (finding.file, finding.row) == (GLT, index + 1)
    assert finding.details is not None
    assert finding.details["total"] == "total_general"
    assert finding.details["credit"] == "1000000.00"
    assert finding.details["expected_credit"] == str(rendered.ledgers[GLT].total_credit)


def test_unreadable_amount_cell(run: Run) -> None:
    rendered = render_period(ExportSpec(amount_style="space"))
    row, _line = rendered.ledgers[GL].entry_rows[5]
    cells, column = _cell(rendered, GL, row, "credit")
    cells[column] = "12,34,56"
    outcome = run(rendered)
    finding = _only(outcome.result, Code.INVALID_VALUE)
    assert (finding.file, finding.row) == (GL, row)
    assert finding.details == {"problem": "credit", "value": "12,34,56"}
    assert Code.TOTAL_MISMATCH not in outcome.codes()  # the account holding it is not checked


def test_unreadable_date_cell(run: Run) -> None:
    rendered = render_period(ExportSpec())
    row, _line = rendered.ledgers[GLT].entry_rows[2]
    cells, column = _cell(rendered, GLT, row, "date")
    cells[column] = "32/01/2024"
    outcome = run(rendered)
    finding = _only(outcome.result, Code.INVALID_VALUE)
    assert (finding.file, finding.row) == (GLT, row)
    assert finding.details == {"problem": "invalid_date", "value": "32/01/2024"}


def test_entry_without_date(run: Run) -> None:
    rendered = render_period(ExportSpec())
    row, _line = rendered.ledgers[GL].entry_rows[7]
    cells, column = _cell(rendered, GL, row, "date")
    cells[column] = None
    outcome = run(rendered)
    finding = _only(outcome.result, Code.INVALID_VALUE)
    assert (finding.file, finding.row) == (GL, row)
    assert finding.details == {"problem": "missing_date", "value": None}


def test_many_unreadable_cells_are_capped(run: Run) -> None:
    rendered = render_period(ExportSpec(n_pieces=30))
    for row, _line in rendered.ledgers[GL].entry_rows[:25]:
        cells, column = _cell(rendered, GL, row, "debit")
        cells[column] = "n/a"
    outcome = run(rendered)
    invalid = [f for f in outcome.result.errors if f.code == Code.INVALID_VALUE]
    assert len(invalid) == 21
    assert invalid[-1].details == {"count": 25, "by_problem": {"debit": 25}}
    assert outcome.result.stats[GL]["invalid_rows"] == 25


# -- references (warnings) -------------------------------------------------------------------------


def test_unknown_account_journal_and_tiers_are_warnings(run: Run) -> None:
    rendered = render_period(ExportSpec())
    rendered.rows["plan_comptes"] = [r for r in rendered.rows["plan_comptes"] if "626000" not in r]
    rendered.rows["code_journal"] = [r for r in rendered.rows["code_journal"] if "CA" not in r]
    rendered.rows["plan_tiers"] = [r for r in rendered.rows["plan_tiers"] if "FABC01" not in r]
    outcome = run(rendered)
    assert outcome.result.errors == []
    warnings = {(w.code, w.file): w for w in outcome.result.warnings if w.code != Code.SKIPPED_ROWS}
    account = warnings[(Code.UNKNOWN_ACCOUNT, GL)]
    first_626 = min(row for row, line in rendered.ledgers[GL].entry_rows if line.account == "626000")
    assert account.row == first_626
    assert account.details == {
        "code": "626000",
        "lines": sum(1 for _, line in rendered.ledgers[GL].entry_rows if line.account == "626000"),
    }
    assert warnings[(Code.UNKNOWN_JOURNAL, GL)].details["code"] == "CA"
    assert warnings[(Code.UNKNOWN_TIERS, GLT)].details["code"] == "FABC01"
    assert set(warnings) == {(Code.UNKNOWN_ACCOUNT, GL), (Code.UNKNOWN_JOURNAL, GL), (Code.UNKNOWN_TIERS, GLT)}


@pytest.mark.parametrize("kind", [GL, GLT, "plan_comptes", "plan_tiers", "code_journal"])
def test_every_file_can_fail_alone(tmp_path: Path, kind: str) -> None:
    result = _replace_file(tmp_path, kind, lambda p: malformed.write_text(p, "not a workbook"))
    finding = _only(result, Code.NOT_EXCEL)
    assert finding.file == kind
    assert set(result.tables) == {GL, GLT, "plan_comptes", "plan_tiers", "code_journal"}
