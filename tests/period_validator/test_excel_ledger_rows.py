"""A hand-written ledger holding every kind of non-entry row of docs/api.md, Excel exports."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from comptaflow.period_validator.excel import validate_excel
from comptaflow.period_validator.findings import Code, FileKind
from comptaflow.testkit.excel import write_period
from comptaflow.testkit.sheet import write_sheet

HEADER = ["Date", "Journal", "Pièce", "Libellé", "Débit", "Crédit", "Solde"]
ROWS: list[list[Any]] = [
    ["ACME SARL"],
    ["Grand livre des comptes généraux"],
    ["Période du 01/01/2024 au 31/12/2024"],
    [],
    HEADER,  # 5
    ["Compte : 401000 Fournisseurs"],  # 6 group
    [None, None, None, "Solde antérieur", "1 000,00", None],  # 7 balance (opening, with an amount)
    ["05/01/2024", "AC", "F1", "Facture A", None, "120,00"],  # 8
    [date(2024, 1, 6), "BQ", "V1", "Règlement A", "120,00", None],  # 9
    [None, None, None, "Sous-total", "120,00", "120,00"],  # 10 subtotal
    [None, None, None, "À reporter", "1 120,00", "120,00"],  # 11 carry forward
    [],  # 12 blank
    ["ACME SARL"],  # 13 repeated preamble
    HEADER[:6],  # 14 repeated header
    [None, None, None, "Report", "1 120,00", "120,00"],  # 15 carry forward
    ["07/01/2024", "AC", "F2", "Report à nouveau facture", None, "30,00"],  # 16 dated: an entry
    [None, None, None, "Total compte 401000", "1 120,00", "150,00"],  # 17 includes the opening row
    [None, None, None, "Solde au 31/12/2024", None, "970,00"],  # 18 balance
    ["512000 Banque"],  # 19 group
    [date(2024, 1, 6), "BQ", "V1", "Règlement A", None, "120,00"],  # 20
    ["08/01/2024", "BQ", "V2", "Encaissement", "150,00", None],  # 21
    [None, None, None, "Total 512000", "150,00", "120,00"],  # 22 excludes nothing
    [None, None, None, "Solde fin de période", "30,00", None],  # 23 balance
    [None, None, None, "Cumul", "270,00", "270,00"],  # 24 cumul
    [None, None, None, "Total classe 5", "150,00", "120,00"],  # 25 subtotal
    [None, None, None, "Total général", "270,00", "270,00"],  # 26 total général
]


def _validate(tmp_path: Path, rows: list[list[Any]]) -> Any:
    export = write_period(tmp_path / "period")
    paths = {FileKind(k): p for k, p in export.paths.items()}
    paths[FileKind.GRAND_LIVRE_COMPTES] = write_sheet(tmp_path / "gl.xlsx", rows)
    return validate_excel(paths)


def test_every_kind_of_row(tmp_path: Path) -> None:
    result = _validate(tmp_path, ROWS)
    assert result.errors == []
    table = result.tables["grand_livre_comptes"]
    assert table["row"].to_list() == [8, 9, 16, 20, 21]
    assert table["account"].to_list() == ["401000", "401000", "401000", "512000", "512000"]
    assert table["account_label"].to_list() == ["Fournisseurs"] * 3 + ["Banque"] * 2
    assert table["label"][2] == "Report à nouveau facture"
    assert table["debit"].sum() == table["credit"].sum() == Decimal("270.00")
    stats = result.stats["grand_livre_comptes"]
    assert stats["skipped"] == {
        "blank": 1,
        "header": 1,
        "preamble": 1,
        "total_account": 2,
        "total_general": 1,
        "subtotal": 2,
        "carry_forward": 2,
        "balance": 3,
        "cumul": 1,
    }
    assert stats["group_rows"] == 2
    assert stats["header_row"] == 5


def test_total_that_is_neither_with_nor_without_the_opening_row(tmp_path: Path) -> None:
    rows = [list(row) for row in ROWS]
    rows[16] = [None, None, None, "Total compte 401000", "620,00", "150,00"]
    result = _validate(tmp_path, rows)
    assert [(f.code, f.row) for f in result.errors] == [(Code.TOTAL_MISMATCH, 17)]
    assert result.errors[0].details["expected_debit"] == "120.00"


def test_dated_total_label_is_an_entry_and_unbalances(tmp_path: Path) -> None:
    rows = [list(row) for row in ROWS]
    rows.insert(21, ["09/01/2024", "OD", None, "Total des frais", "5,00", None])
    result = _validate(tmp_path, rows)
    codes = sorted(f.code.value for f in result.errors)
    assert codes == ["TOTAL_MISMATCH", "TOTAL_MISMATCH", "UNBALANCED"]  # Total 512000 and Total général
    assert result.tables["grand_livre_comptes"].height == 6


def test_third_party_ledger_whose_compte_column_holds_the_codes(tmp_path: Path) -> None:
    export = write_period(tmp_path / "period")
    paths = {FileKind(k): p for k, p in export.paths.items()}
    rows: list[list[Any]] = [
        ["Grand livre auxiliaire"],
        ["Exercice du 01/01/2024 au 31/12/2024"],
        ["Date", "Jnl", "Compte", "Libellé", "Débit", "Crédit"],
        [date(2024, 3, 1), "VT", "C0001", "Facture", 120.0, None],
        [date(2024, 3, 9), "BQ", " C0001 ", "Règlement", None, 120.0],
        [date(2024, 3, 9), "AC", "FORANGE", "Facture", None, 60.0],
    ]
    paths[FileKind.GRAND_LIVRE_TIERS] = write_sheet(tmp_path / "glt.xlsx", rows)
    result = validate_excel(paths)
    assert result.errors == []
    table = result.tables["grand_livre_tiers"]
    assert table["account"].to_list() == ["C0001", "C0001", "FORANGE"]
    assert table["collectif"].to_list() == ["411000", "411000", "401000"]  # from the plan tiers


def test_wrapped_upper_case_label_is_not_an_account(tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        ["Période du 01/01/2024 au 31/12/2024"],
        HEADER[:6],
        ["FORANGE - Orange Business"],
        ["05/01/2024", "AC", "F1", "Facture", None, "60,00"],
        [None, None, None, "ABONNEMENT FIBRE JANVIER"],  # the label, wrapped onto a second row
        ["06/01/2024", "BQ", "V1", "Règlement", "60,00", None],
        [None, None, None, "Total FORANGE", "60,00", "60,00"],
    ]
    export = write_period(tmp_path / "period")
    paths = {FileKind(k): p for k, p in export.paths.items()}
    paths[FileKind.GRAND_LIVRE_TIERS] = write_sheet(tmp_path / "glt.xlsx", rows)
    result = validate_excel(paths)
    assert result.errors == []
    table = result.tables["grand_livre_tiers"]
    assert table["account"].to_list() == ["FORANGE", "FORANGE"]
    assert result.stats["grand_livre_tiers"]["skipped"] == {"preamble": 1, "total_account": 1}
