"""Header rows and column labels (docs/api.md, Excel exports)."""

from __future__ import annotations

import polars as pl
import pytest

from comptaflow.period_validator.excel.headers import HeaderNotFound, find_header
from comptaflow.period_validator.excel.labels import normalise_all
from comptaflow.period_validator.findings import FileKind


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["Débit €", "DEBIT", "Debit (EUR)", " débit  ", "Débit en euros"], "debit"),
        (["N° compte", "No compte", "Numéro de compte", "Nº compte"], "n compte"),
        (["Date d'échéance", "DATE ECHEANCE"], "date echeance"),
        (["Let.", "LET"], "let"),
    ],
)
def test_labels_normalise_alike(labels: list[str], expected: str) -> None:
    assert set(normalise_all(labels)) == {expected}


def _grid(rows: list[list[str | None]]) -> pl.DataFrame:
    width = max(len(row) for row in rows)
    padded = [row + [None] * (width - len(row)) for row in rows]
    return pl.DataFrame(padded, schema=[f"c{i}" for i in range(width)], orient="row")


def test_header_after_a_preamble_with_synonyms_and_units() -> None:
    grid = _grid(
        [
            ["ACME SARL", None, "Date : 05/02/2025"],
            ["Grand livre", "Compte : tous"],
            ["DATE PIECE", "JNL", "COMPTE GENERAL", "INTITULE", "INTITULE COMPTE", "DEBIT (EUR)", "Crédit €", "Let."],
        ]
    )
    header = find_header(FileKind.GRAND_LIVRE_COMPTES, grid)
    assert header.sheet_row == 3
    assert dict(header.columns) == {
        "date": "c0",
        "journal": "c1",
        "account": "c2",
        "label": "c3",
        "account_label": "c4",
        "debit": "c5",
        "credit": "c6",
        "lettrage": "c7",
    }


def test_label_and_intitule_share_out_label_and_account_label() -> None:
    grid = _grid([["Date", "Journal", "Intitulé", "Libellé", "Débit", "Crédit", "Compte"]])
    columns = dict(find_header(FileKind.GRAND_LIVRE_COMPTES, grid).columns)
    assert (columns["label"], columns["account_label"]) == ("c3", "c2")


def test_third_party_ledger_general_account_column() -> None:
    grid = _grid([["Date", "Journal", "Compte", "Compte tiers", "Libellé", "Débit", "Crédit"]])
    columns = dict(find_header(FileKind.GRAND_LIVRE_TIERS, grid).columns)
    assert (columns["account"], columns["general_account"]) == ("c3", "c2")


def test_two_column_plan_is_accepted() -> None:
    grid = _grid([["Plan comptable"], ["Compte", "Intitulé"], ["401000", "Fournisseurs"]])
    assert find_header(FileKind.PLAN_COMPTES, grid).sheet_row == 2


def test_missing_required_column_names_it() -> None:
    grid = _grid([["Date", "Journal", "Compte", "Libellé", "Débit", "Solde"]])
    with pytest.raises(HeaderNotFound) as caught:
        find_header(FileKind.GRAND_LIVRE_COMPTES, grid)
    assert caught.value.row == 1
    assert "Crédit" in caught.value.message
