"""One generated FEC per real-world variant (docs/fec.md): each one loads with the sums it was written with.

The generator (`comptaflow.testkit.fec`) keeps its own record of what it wrote, computed with `Decimal`
while writing; the validator's tables must agree with it to the cent.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from comptaflow.period_validator.fec import validate_fec
from comptaflow.period_validator.findings import Code, Period
from comptaflow.testkit.fec import EVERY_QUIRK, FecSpec, write_fec

BASE = FecSpec(lines=600, seed=7)

VARIANTS: dict[str, FecSpec] = {
    "canonical": BASE,
    "pipe separator": replace(BASE, separator="|"),
    "semicolon separator": replace(BASE, separator=";"),
    "comma with quoted fields": replace(BASE, separator=","),
    "trailing separator": replace(BASE, trailing_separator=True),
    "trailing separator on the header too": replace(BASE, trailing_separator=True, header_trailing=True),
    "fixed-width padding": replace(BASE, padded=True),
    "zero-padded amounts": replace(BASE, zero_padded_amounts=True),
    "decimal point": replace(BASE, decimal_point=True),
    "Montant and Sens D/C": replace(BASE, amounts="montant_sens_dc"),
    "Montant and Sens +1/-1": replace(BASE, amounts="montant_sens_pm1"),
    "22 columns": replace(BASE, extra_columns=True),
    "lower-case header": replace(BASE, header_style="lower"),
    "upper-case header": replace(BASE, header_style="upper"),
    "MontantDevise and IdDevise": replace(BASE, header_style="variant"),
    "UTF-8 BOM": replace(BASE, bom=True),
    "ISO-8859-15": replace(BASE, encoding="iso-8859-15"),
    "Windows-1252": replace(BASE, encoding="cp1252"),
    "CP850": replace(BASE, encoding="cp850"),
    "CRLF": replace(BASE, line_ending="\r\n"),
    "CR CR LF": replace(BASE, line_ending="\r\r\n"),
    "dates with a time": replace(BASE, date_time=True),
    "empty ValidDate": replace(BASE, empty_valid_date=True),
    "EcritureNum 0 on every line": replace(BASE, ecriture_num_zero=True),
    "lower-case journal codes": replace(BASE, lowercase_journals=True),
    "two fiscal years": replace(BASE, fiscal_years=2),
    "everything at once": replace(EVERY_QUIRK, lines=BASE.lines, seed=BASE.seed),
}
EXPECTED_ENCODING = {"iso-8859-15": "ISO-8859-15", "cp1252": "Windows-1252", "cp850": "CP850", "utf-8": "UTF-8"}
EXPECTED_WARNINGS = {
    "empty ValidDate": {Code.MISSING_VALID_DATE},
    "EcritureNum 0 on every line": {Code.ENTRIES_NOT_NUMBERED},
}


def _sums(frame: pl.DataFrame) -> dict[str, tuple[Decimal, Decimal]]:
    grouped = frame.group_by("account").agg(pl.col("debit").sum(), pl.col("credit").sum())
    return {str(a): (Decimal(d), Decimal(c)) for a, d, c in grouped.iter_rows()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_loads_with_the_sums_it_was_written_with(tmp_path: Path, variant: str) -> None:
    spec = VARIANTS[variant]
    written = write_fec(tmp_path / "FEC.txt", spec)
    result = validate_fec(written.path)
    assert result.errors == [], result.errors[:3]
    assert result.stats["lines"] == written.lines
    assert result.period == Period(written.period_start, written.period_end)
    assert _sums(result.tables["grand_livre_comptes"]) == written.accounts
    assert _sums(result.tables["grand_livre_tiers"]) == written.tiers
    labels = dict(result.tables["plan_comptes"].select("account", "label").iter_rows())
    assert labels == written.account_labels
    assert dict(result.tables["plan_tiers"].select("code", "name").iter_rows()) == written.tiers_labels
    assert dict(result.tables["code_journal"].select("code", "label").iter_rows()) == written.journals
    assert result.stats["format"]["encoding"] == EXPECTED_ENCODING[spec.encoding]
    if variant in EXPECTED_WARNINGS:
        assert EXPECTED_WARNINGS[variant] <= {w.code for w in result.warnings}
    if variant == "canonical":
        assert result.warnings == []
    if spec.fiscal_years > 1:
        assert len(result.stats["years"]) >= 2


def test_an_entry_one_cent_off_fails_with_unbalanced_naming_it(tmp_path: Path) -> None:
    written = write_fec(tmp_path / "FEC.txt", replace(BASE, unbalanced_cents=1))
    assert written.unbalanced_entry is not None
    result = validate_fec(written.path)
    assert {f.code for f in result.errors} == {Code.UNBALANCED}
    journal, entry = written.unbalanced_entry
    named = [f for f in result.errors if f.details and f.details.get("entry_num") == entry]
    assert [(f.details["journal"], f.details["difference"]) for f in named if f.details] == [(journal, "0.01")]
    assert result.tables == {}


def test_a_line_cut_short_fails_with_its_line_number(tmp_path: Path) -> None:
    written = write_fec(tmp_path / "FEC.txt", replace(BASE, truncate_line=123))
    result = validate_fec(written.path)
    assert [(f.code, f.row) for f in result.errors if f.code is Code.FEC_FORMAT][:1] == [(Code.FEC_FORMAT, 123)]
    assert result.tables == {}
