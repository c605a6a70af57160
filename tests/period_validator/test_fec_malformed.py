"""Bad FEC files: each one fails with its specific code, the line at fault, and no table to load."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from comptaflow.period_validator.fec import validate_fec
from comptaflow.period_validator.findings import Code, Finding, Period, ValidationResult

HEADER = (
    "JournalCode\tJournalLib\tEcritureNum\tEcritureDate\tCompteNum\tCompteLib\tCompAuxNum\tCompAuxLib\tPieceRef\t"
    "PieceDate\tEcritureLib\tDebit\tCredit\tEcritureLet\tDateLet\tValidDate\tMontantdevise\tIdevise"
)


def line(  # noqa: PLR0917 — the FEC's own column order reads best
    journal: str = "VT",
    num: str = "1",
    day: str = "20240115",
    account: str = "411000",
    debit: str = "0,00",
    credit: str = "0,00",
    *,
    aux: str = "",
    label: str = "Facture 1",
    piece: str = "F1",
) -> str:
    aux_label = "Client Durand" if aux else ""
    fields = [journal, "Ventes", num, day, account, "Compte " + account, aux, aux_label, piece, day, label]
    return "\t".join([*fields, debit, credit, "", "", "20240131", "", ""])


def sale(num: str, day: str = "20240115", amount: str = "120,00", vat: str = "20,00", net: str = "100,00") -> list[str]:
    return [
        line(num=num, day=day, account="411000", debit=amount, aux="C001", piece=f"F{num}", label=f"Facture {num}"),
        line(num=num, day=day, account="706000", credit=net, piece=f"F{num}", label=f"Facture {num}"),
        line(num=num, day=day, account="445710", credit=vat, piece=f"F{num}", label=f"Facture {num}"),
    ]


def write(tmp_path: Path, lines: list[str], *, header: str = HEADER, encoding: str = "utf-8") -> Path:
    path = tmp_path / "FEC.txt"
    path.write_bytes(("\n".join([header, *lines]) + "\n").encode(encoding))
    return path


def errors(result: ValidationResult, code: Code) -> list[Finding]:
    return [finding for finding in result.errors if finding.code is code]


def test_a_valid_file_loads(tmp_path: Path) -> None:
    result = validate_fec(write(tmp_path, sale("1") + sale("2", "20240220")))
    assert result.errors == []
    assert result.period == Period(date(2024, 1, 15), date(2024, 2, 20))
    assert result.tables["grand_livre_comptes"].height == 6
    assert result.tables["grand_livre_tiers"]["account"].to_list() == ["C001", "C001"]
    assert result.tables["plan_tiers"].row(0, named=True)["tiers_type"] == "client"


def test_an_entry_off_by_one_cent_is_unbalanced_and_listed(tmp_path: Path) -> None:
    lines = sale("1") + sale("2", amount="120,01") + sale("3")
    result = validate_fec(write(tmp_path, lines))
    found = errors(result, Code.UNBALANCED)
    entry = next(f for f in found if f.details and f.details.get("entry_num") == "2")
    assert entry.row == 5
    assert entry.details is not None
    assert (entry.details["difference"], entry.details["lines"]) == ("0.01", [5, 6, 7])
    assert any(f.message.startswith("the file does not balance") for f in found)
    assert [f.details["entry_num"] for f in found if f.details and "entry_num" in f.details] == ["2"]
    assert result.tables == {}


def test_a_truncated_line_is_a_format_error_with_its_line_number(tmp_path: Path) -> None:
    lines = sale("1") + sale("2")
    lines[4] = lines[4][: lines[4].index("Facture")]  # cut in the middle of line 6 of the file
    result = validate_fec(write(tmp_path, lines))
    found = errors(result, Code.FEC_FORMAT)
    assert [(f.row, "cut short" in f.message) for f in found] == [(6, True)]
    assert result.tables == {}


def test_a_line_with_one_field_too_many(tmp_path: Path) -> None:
    lines = sale("1")
    lines[1] += "\tsurplus"
    result = validate_fec(write(tmp_path, lines))
    assert [f.row for f in errors(result, Code.FEC_FORMAT)] == [3]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"day": "20240230"}, "EcritureDate"),
        ({"day": "2024-01-15"}, "EcritureDate"),
        ({"day": "19000101"}, "EcritureDate"),
        ({"debit": "120,001"}, "Debit"),
        ({"debit": "12O,00"}, "Debit"),
        ({"account": ""}, "CompteNum"),
        ({"label": ""}, "EcritureLib"),
        ({"num": ""}, "EcritureNum"),
    ],
)
def test_field_format_errors_name_the_line(tmp_path: Path, bad: dict[str, str], field: str) -> None:
    lines = sale("1") + sale("2")
    args = {"num": "2", "account": "411000", "debit": "120,00", "aux": "C001", "piece": "F2"} | bad
    lines[3] = line(**args)  # type: ignore[arg-type]
    result = validate_fec(write(tmp_path, lines))
    found = [f for f in errors(result, Code.FEC_FORMAT) if field in f.message]
    assert [f.row for f in found] == [5], result.errors
    assert result.tables == {}


def test_a_date_with_a_time_after_it_is_accepted(tmp_path: Path) -> None:
    lines = [entry.replace("20240115", "20240115 00:00:00") for entry in sale("1")]
    result = validate_fec(write(tmp_path, lines))
    assert result.errors == []
    assert result.period == Period(date(2024, 1, 15), date(2024, 1, 15))


@pytest.mark.parametrize(
    ("header", "code", "words"),
    [
        (HEADER.replace("\tCompteLib", ""), Code.FEC_COLUMNS, "lacks the column CompteLib"),
        (HEADER.replace("CompteNum\tCompteLib", "CompteLib\tCompteNum"), Code.FEC_COLUMNS, "column 5 should be"),
        (HEADER + "\tRemarque", Code.FEC_COLUMNS, "only DateRglt"),
        ("Journal\tDate\tCompte\tDebit\tCredit", Code.NOT_FEC, "not a FEC header"),
    ],
)
def test_header_problems(tmp_path: Path, header: str, code: Code, words: str) -> None:
    result = validate_fec(write(tmp_path, sale("1"), header=header))
    assert [f.code for f in result.errors] == [code]
    assert words in result.errors[0].message
    assert result.errors[0].row == 1


def test_header_names_match_case_insensitively(tmp_path: Path) -> None:
    header = HEADER.upper().replace("MONTANTDEVISE\tIDEVISE", "MontantDevise\tIdDevise")
    assert validate_fec(write(tmp_path, sale("1"), header=header)).errors == []


def test_a_bom_file_with_a_byte_that_is_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, sale("1") + sale("2"))
    raw = path.read_bytes().replace(b"Facture 2", b"Factur\xe9 2", 1)
    path.write_bytes(b"\xef\xbb\xbf" + raw)
    result = validate_fec(path)
    assert [(f.code, f.row) for f in result.errors] == [(Code.FEC_FORMAT, 5)]
    assert "UTF-8 BOM" in result.errors[0].message


def test_a_damaged_utf8_file_is_not_guessed_as_another_encoding(tmp_path: Path) -> None:
    lines = [entry.replace("Facture", "Facturé") for entry in sale("1") + sale("2")]
    path = write(tmp_path, lines)
    path.write_bytes(path.read_bytes().replace("Facturé 2".encode(), b"Factur\xe9 2", 1))
    result = validate_fec(path)
    assert [(f.code, f.row) for f in result.errors] == [(Code.FEC_FORMAT, 5)]


def test_bytes_no_french_code_page_explains(tmp_path: Path) -> None:
    path = write(tmp_path, sale("1"))
    path.write_bytes(path.read_bytes().replace(b"Facture 1", b"Fa\x81\x8d\xb3\xba\xc9", 1))
    result = validate_fec(path)
    assert [f.code for f in result.errors] == [Code.FEC_FORMAT]
    assert result.errors[0].row == 2


def test_lines_outside_the_declared_period(tmp_path: Path) -> None:
    lines = sale("1") + sale("2", "20250102")
    declared = Period(date(2024, 1, 1), date(2024, 12, 31))
    result = validate_fec(write(tmp_path, lines), period=declared)
    assert [(f.code, f.row) for f in result.errors] == [(Code.ENTRY_OUTSIDE_PERIOD, r) for r in (5, 6, 7)]
    assert validate_fec(write(tmp_path, sale("1")), period=declared).period == declared


def test_a_header_without_lines(tmp_path: Path) -> None:
    result = validate_fec(write(tmp_path, []))
    assert [f.code for f in result.errors] == [Code.FEC_FORMAT]


def test_blank_lines_are_skipped_with_a_warning(tmp_path: Path) -> None:
    result = validate_fec(write(tmp_path, [*sale("1"), "", *sale("2"), ""]))
    assert result.errors == []
    assert [w.code for w in result.warnings] == [Code.SKIPPED_ROWS]
    assert result.tables["grand_livre_comptes"]["row"].to_list() == [2, 3, 4, 6, 7, 8]


def test_montant_sens_with_an_unknown_sens(tmp_path: Path) -> None:
    header = HEADER.replace("Debit\tCredit", "Montant\tSens")
    lines = [
        "\t".join([*entry.split("\t")[:11], amount, sens, *entry.split("\t")[13:]])
        for entry, amount, sens in zip(sale("1"), ("120,00", "100,00", "20,00"), ("D", "C", "X"), strict=True)
    ]
    result = validate_fec(write(tmp_path, lines, header=header))
    assert [(f.code, f.row) for f in result.errors if f.code is Code.FEC_FORMAT] == [(Code.FEC_FORMAT, 4)]


def test_unnumbered_pieces_that_do_not_cancel_out_are_errors(tmp_path: Path) -> None:
    lines = [entry.replace("\t1\t", "\t0\t").replace("\t2\t", "\t0\t") for entry in sale("1") + sale("2", "20240116")]
    balanced = validate_fec(write(tmp_path, lines))
    assert balanced.errors == []
    assert [w.code for w in balanced.warnings] == [Code.ENTRIES_NOT_NUMBERED]
    lines[4] = lines[4].replace("100,00", "100,10")
    result = validate_fec(write(tmp_path, lines))
    assert {f.code for f in result.errors} == {Code.UNBALANCED}
    assert [f.row for f in result.errors if f.row] == [5]


def test_fields_quoted_only_where_they_hold_the_separator(tmp_path: Path) -> None:
    header = HEADER.replace("\t", ";")
    lines = [entry.replace("\t", ";") for entry in sale("1")]
    lines[1] = lines[1].replace("Facture 1", '"Facture 1; acompte"')
    result = validate_fec(write(tmp_path, lines, header=header))
    assert result.errors == []
    assert result.tables["grand_livre_comptes"]["label"].to_list()[1] == "Facture 1; acompte"


def test_amounts_with_thousands_separated_by_spaces(tmp_path: Path) -> None:
    lines = sale("1", amount="1\u00a0200,00", net="1\u202f000,00", vat="200,00") + sale(
        "2", amount="1 200,00", net="1000,00", vat="200,00"
    )
    result = validate_fec(write(tmp_path, lines))
    assert result.errors == []
    assert result.tables["grand_livre_comptes"]["debit"].sum() == Decimal("2400.00")
