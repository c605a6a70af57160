"""Every variant of docs/api.md, Excel exports, generated, validated, compared to the cent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from comptaflow.period_validator.excel import validate_excel
from comptaflow.period_validator.findings import Code, Period
from comptaflow.testkit.dimensions import TIERS_OPTIONAL_COLUMNS
from comptaflow.testkit.excel import ExportSpec
from comptaflow.testkit.ledger import HEADER_LABELS
from comptaflow.testkit.notation import AMOUNT_STYLES, DATE_STYLES, ZERO_STYLES
from comptaflow.testkit.preamble import PERIOD_FORMS

Run = Callable[..., Any]
"""The `run` fixture (conftest): ExportSpec -> Outcome."""


def test_default_flat_export_is_read_exactly(run: Run) -> None:
    outcome = run(ExportSpec())
    outcome.assert_matches_export()
    comptes = outcome.result.tables["grand_livre_comptes"]
    assert "080100" in comptes["account"].to_list()  # leading zero kept (text cell)
    assert "0DUPONT" in outcome.result.tables["grand_livre_tiers"]["account"].to_list()
    assert outcome.result.stats["entries"] == outcome.export.ledgers["grand_livre_comptes"].entry_lines


@pytest.mark.parametrize("group_style", ["dash", "space", "compte_colon", "compte_dash", "split_cells"])
def test_grouped_ledgers(run: Run, group_style: str) -> None:
    outcome = run(ExportSpec(layout="grouped", group_style=group_style))
    outcome.assert_matches_export()
    comptes = outcome.result.tables["grand_livre_comptes"]
    labels = dict(zip(comptes["account"].to_list(), comptes["account_label"].to_list(), strict=True))
    assert labels["401000"] == "Fournisseurs"
    assert labels["080100"] == "Engagements donnés (hors bilan)"
    tiers = outcome.result.tables["grand_livre_tiers"]
    tiers_labels = dict(zip(tiers["account"].to_list(), tiers["account_label"].to_list(), strict=True))
    assert tiers_labels["FORANGE"] == "Orange Business"  # a code without digits
    assert tiers_labels["0DUPONT"] == "Dupont & Fils SARL"


@pytest.mark.parametrize("amount_style", AMOUNT_STYLES)
def test_amount_notations(run: Run, amount_style: str) -> None:
    run(ExportSpec(amount_style=amount_style, n_pieces=80)).assert_matches_export()


@pytest.mark.parametrize("zero_style", ZERO_STYLES)
def test_empty_side_notations(run: Run, zero_style: str) -> None:
    run(ExportSpec(zero_style=zero_style, amount_style="space")).assert_matches_export()


@pytest.mark.parametrize("date_style", DATE_STYLES)
def test_date_notations(run: Run, date_style: str) -> None:
    run(ExportSpec(date_style=date_style)).assert_matches_export()


@pytest.mark.parametrize("header_style", sorted(HEADER_LABELS))
@pytest.mark.parametrize("layout", ["flat", "grouped"])
def test_header_synonyms(run: Run, header_style: str, layout: str) -> None:
    run(ExportSpec(header_style=header_style, layout=layout)).assert_matches_export()


@pytest.mark.parametrize("form", PERIOD_FORMS)
def test_period_forms(run: Run, form: str) -> None:
    outcome = run(ExportSpec(period_form=form, period_start=date(2023, 7, 1), period_end=date(2024, 6, 30)))
    assert outcome.result.period == Period(date(2023, 7, 1), date(2024, 6, 30))
    outcome.assert_matches_export()


@pytest.mark.parametrize(
    "options",
    [
        {"account_totals": False, "grand_total": False},
        {"account_totals": False},
        {"grand_total": False},
        {"total_style": "total_code"},
        {"total_style": "total_code", "layout": "grouped"},
        {"class_totals": True},
        {"opening_rows": True, "layout": "grouped"},
        {"blank_between_groups": False, "layout": "grouped"},
    ],
    ids=lambda options: ",".join(f"{k}={v}" for k, v in options.items()),
)
def test_total_rows(run: Run, options: dict[str, object]) -> None:
    run(ExportSpec(**options)).assert_matches_export()


@pytest.mark.parametrize("layout", ["flat", "grouped"])
@pytest.mark.parametrize("carry_rows", [True, False])
@pytest.mark.parametrize("period_form", ["periode_du_au", "three_rows_date_cells", "spread_date_cells"])
def test_page_breaks_repeat_preamble_and_header(run: Run, layout: str, carry_rows: bool, period_form: str) -> None:
    outcome = run(ExportSpec(layout=layout, carry_rows=carry_rows, page_size=9, period_form=period_form))
    outcome.assert_matches_export()
    skipped = outcome.result.stats["grand_livre_comptes"]["skipped"]
    assert skipped["header"] == outcome.export.ledgers["grand_livre_comptes"].skipped["header"] >= 10
    assert skipped["preamble"] >= 50


@pytest.mark.parametrize("layout", ["flat", "grouped"])
@pytest.mark.parametrize("group_style", ["dash", "split_cells"])
def test_numeric_account_cells(run: Run, layout: str, group_style: str) -> None:
    outcome = run(ExportSpec(numeric_accounts=True, layout=layout, group_style=group_style))
    outcome.assert_matches_export()
    accounts = set(outcome.result.tables["grand_livre_comptes"]["account"].to_list())
    assert {"401000", "512000", "080100"} <= accounts
    assert set(outcome.result.tables["plan_comptes"]["account"].to_list()) >= {"401000", "080100"}
    tiers = outcome.result.tables["grand_livre_tiers"]
    assert set(tiers["collectif"].to_list()) == {"401000", "411000", "421000"}


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"layout": "grouped", "page_size": 12},
        {"amount_style": "nnbsp", "date_style": "dd.mm.yyyy", "header_style": "upper"},
        {"numeric_accounts": True, "period_form": "debut_fin_date_cells", "zero_style": "zero_number"},
    ],
    ids=["flat", "grouped-pages", "text", "numeric"],
)
def test_xls_workbooks(run: Run, options: dict[str, object]) -> None:
    run(ExportSpec(fmt="xls", **options)).assert_matches_export()


def test_without_optional_columns_collectif_comes_from_plan_tiers(run: Run) -> None:
    outcome = run(ExportSpec(optional_columns=False))
    outcome.assert_matches_export()
    comptes = outcome.result.tables["grand_livre_comptes"]
    assert comptes["piece"].null_count() == comptes.height
    assert comptes["due_date"].null_count() == comptes.height


@pytest.mark.parametrize("plan_style", ["canonical", "variant", "minimal"])
def test_reference_file_layouts(run: Run, plan_style: str) -> None:
    outcome = run(ExportSpec(plan_style=plan_style))
    outcome.assert_matches_export()
    plan = outcome.result.tables["plan_comptes"]
    assert plan.row(plan["account"].to_list().index("401000"), named=True)["label"] == "Fournisseurs"
    journals = outcome.result.tables["code_journal"]
    assert journals["code"].to_list() == ["AC", "VT", "BQ", "CA", "OD", "AN"]
    if plan_style == "minimal":
        assert plan["account_type"].null_count() == plan.height
        assert journals["journal_type"].null_count() == journals.height
    else:
        assert plan.filter(plan["account"] == "601000")["account_type"].item() == "Charge"
        assert journals.filter(journals["code"] == "OD")["journal_type"].item() == "Opérations diverses"


@pytest.mark.parametrize(
    "columns",
    [TIERS_OPTIONAL_COLUMNS, (), ("siret", "email"), ("collectif", "tiers_type", "postal_code", "city")],
    ids=["all", "none", "siret-email", "address"],
)
def test_plan_tiers_optional_columns(run: Run, columns: tuple[str, ...]) -> None:
    outcome = run(ExportSpec(plan_tiers_columns=columns))
    outcome.assert_matches_export()
    tiers = outcome.result.tables["plan_tiers"]
    dupont = tiers.filter(tiers["code"] == "0DUPONT").row(0, named=True)
    assert dupont["name"] == "Dupont & Fils SARL"
    assert dupont["siret"] == ("73282932000074" if "siret" in columns else None)
    assert dupont["tiers_type"] == ("client" if "tiers_type" in columns else None)
    assert dupont["postal_code"] == ("75002" if "postal_code" in columns else None)
    assert dupont["email"] == ("compta@dupont.example" if "email" in columns else None)
    salarie = tiers.filter(tiers["code"] == "S0007").row(0, named=True)
    assert salarie["siret"] is None
    assert salarie["tiers_type"] == ("salarie" if "tiers_type" in columns else None)


def test_data_on_a_later_sheet(run: Run) -> None:
    outcome = run(ExportSpec(empty_sheets_before=2))
    outcome.assert_matches_export()
    assert outcome.result.stats["grand_livre_comptes"]["sheet"] == "Grand livre"


def test_mixed_layouts_and_text_everything(run: Run) -> None:
    outcome = run(
        ExportSpec(
            layout="flat",
            tiers_layout="grouped",
            group_style="compte_colon",
            amount_style="dot",
            zero_style="dash",
            date_style="dd/mm/yy",
            header_style="variant",
            period_form="three_rows",
            page_size=11,
            class_totals=True,
            n_pieces=120,
        )
    )
    outcome.assert_matches_export()


def test_statistics_and_totals(run: Run) -> None:
    outcome = run(ExportSpec(layout="grouped", page_size=10))
    stats = outcome.result.stats
    expected = outcome.export.ledgers["grand_livre_comptes"]
    assert stats["total_debit"] == str(expected.total_debit) == stats["grand_livre_comptes"]["total_debit"]
    assert stats["total_credit"] == str(expected.total_credit)
    assert expected.total_debit == expected.total_credit > Decimal("1000000.00")
    assert stats["grand_livre_comptes"]["group_rows"] >= len(expected.per_account)
    assert stats["grand_livre_comptes"]["invalid_rows"] == 0
    assert stats["plan_comptes"]["records"] == 17
    skipped = next(w for w in outcome.result.warnings if w.file == "grand_livre_comptes")
    assert skipped.code == Code.SKIPPED_ROWS
    assert skipped.details == {
        "total": sum(expected.skipped.values()),
        "by_reason": stats["grand_livre_comptes"]["skipped"],
    }


def test_progress_is_reported_in_order(run: Run) -> None:
    outcome = run(ExportSpec())
    seen: list[tuple[str, float]] = []
    validate_excel(outcome.paths, on_progress=lambda stage, fraction: seen.append((stage, fraction)))
    fractions = [fraction for _stage, fraction in seen]
    assert fractions == sorted(fractions)
    assert seen[-1] == ("done", 1.0)
    assert ("parsed:grand_livre_comptes", 0.55) in seen
    assert [stage for stage, _ in seen if stage.startswith("parse:")] == [
        "parse:grand_livre_comptes",
        "parse:grand_livre_tiers",
        "parse:plan_comptes",
        "parse:plan_tiers",
        "parse:code_journal",
    ]
