"""The three real FEC files of the fixtures (MIT, neolegal-fr/fec-reader): read, checked, normalised exactly.

The sums are compared with an independent plain-Python reading (`fec_reference`); the liasse fiscale boxes
their authors expect are checked wherever the box is a plain sum of account balances. The third file's
expected boxes use another form's repères (its capital, 13,500, is listed under CA, which form 2050 uses
for an amortisation column): its boxes do not apply, its totals are checked like the others'.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest

from comptaflow.period_validator.fec import validate_fec
from comptaflow.period_validator.findings import Code, Period, ValidationResult
from tests.period_validator.fec_reference import (
    BOX_RULES,
    FIXTURES,
    REAL_FILES,
    Reference,
    expected_boxes,
    read_reference,
)

APPLICABLE_BOXES = {"000000000FEC20231231": 16, "123456789FEC20500930": 22}


def _sums(frame: pl.DataFrame) -> dict[str, tuple[Decimal, Decimal]]:
    grouped = frame.group_by("account").agg(pl.col("debit").sum(), pl.col("credit").sum())
    return {str(a): (Decimal(d), Decimal(c)) for a, d, c in grouped.iter_rows()}


@pytest.fixture(scope="module", params=REAL_FILES)
def real(request: pytest.FixtureRequest) -> tuple[str, ValidationResult, Reference]:
    name: str = request.param
    return name, validate_fec(FIXTURES / f"{name}.txt"), read_reference(name)


def test_real_files_validate_without_errors(real: tuple[str, ValidationResult, Reference]) -> None:
    _, result, reference = real
    assert result.errors == [], result.errors[:3]
    assert result.stats["lines"] == reference.lines
    assert result.tables["grand_livre_comptes"].height == reference.lines


def test_general_ledger_sums_equal_the_independent_reading(real: tuple[str, ValidationResult, Reference]) -> None:
    _, result, reference = real
    assert _sums(result.tables["grand_livre_comptes"]) == reference.accounts


def test_tiers_ledger_sums_equal_the_independent_reading(real: tuple[str, ValidationResult, Reference]) -> None:
    _, result, reference = real
    assert _sums(result.tables["grand_livre_tiers"]) == reference.tiers


def test_dimensions_come_from_the_files_labels(real: tuple[str, ValidationResult, Reference]) -> None:
    _, result, reference = real
    assert set(result.tables["plan_comptes"]["account"]) == set(reference.accounts)
    assert set(result.tables["plan_tiers"]["code"]) == set(reference.tiers)
    assert set(result.tables["code_journal"]["code"]) == reference.journals
    assert result.tables["plan_comptes"]["label"].null_count() == 0


@pytest.mark.parametrize("name", sorted(APPLICABLE_BOXES))
def test_liasse_boxes_expected_by_the_files_authors(name: str) -> None:
    result = validate_fec(FIXTURES / f"{name}.txt")
    expected = {box: value for box, value in expected_boxes(name).items() if box in BOX_RULES}
    assert len(expected) == APPLICABLE_BOXES[name]
    ours = Reference(0, _sums(result.tables["grand_livre_comptes"]), {}, set())
    assert {box: ours.box(BOX_RULES[box]) for box in expected} == expected


def test_facts_the_authors_state_about_their_largest_file() -> None:
    result = validate_fec(FIXTURES / "123456789FEC20500930.txt")
    # fec-reader's own test: 10,756 lines, 4,001 entries, 12 journals; CR CR LF line endings.
    assert (result.stats["lines"], result.stats["entries"], result.stats["journals"]) == (10756, 4001, 12)
    assert result.stats["format"]["line_endings"] == "CR CR LF"
    assert result.period == Period(*sorted(result.tables["grand_livre_comptes"]["date"].to_list())[::10755])
    assert result.warnings == []


def test_a_file_with_ecriture_num_zero_and_no_valid_date_loads_with_warnings() -> None:
    result = validate_fec(FIXTURES / "000000000FEC20231231.txt")
    assert result.errors == []
    codes = {finding.code for finding in result.warnings}
    assert {Code.MISSING_VALID_DATE, Code.ENTRIES_NOT_NUMBERED, Code.UNBALANCED_PIECES} <= codes
    assert result.stats["format"]["columns"] == 22
    # 22 columns, lower-case journal codes kept as written.
    assert {"ac", "bq", "AD"} <= set(result.tables["code_journal"]["code"])


def test_the_bom_file_reports_its_encoding_and_lettering_without_date() -> None:
    result = validate_fec(FIXTURES / "0000000001FEC20220831.txt")
    assert result.stats["format"]["bom"] is True
    assert result.stats["format"]["encoding"] == "UTF-8"
    assert [w.code for w in result.warnings] == [Code.INCOMPLETE_FIELDS]
    assert result.warnings[0].details == {"count": 2035, "lines": result.warnings[0].details["lines"]}
