"""Report preambles: company, title, edition line and the period in every form of INPUT-FORMATS §C."""

from __future__ import annotations

from datetime import date
from typing import Literal

from comptaflow.testkit.sheet import Cell

PeriodForm = Literal[
    "periode_du_au",
    "periode_colon",
    "periode_upper",
    "periode_no_accent",
    "du_au",
    "exercice",
    "two_digit_year",
    "spread_text",
    "spread_date_cells",
    "three_rows",
    "three_rows_date_cells",
    "debut_fin_one_cell",
    "debut_fin_cells",
    "debut_fin_rows",
    "debut_fin_date_cells",
    "none",
]

PERIOD_FORMS: tuple[PeriodForm, ...] = (
    "periode_du_au",
    "periode_colon",
    "periode_upper",
    "periode_no_accent",
    "du_au",
    "exercice",
    "two_digit_year",
    "spread_text",
    "spread_date_cells",
    "three_rows",
    "three_rows_date_cells",
    "debut_fin_one_cell",
    "debut_fin_cells",
    "debut_fin_rows",
    "debut_fin_date_cells",
)


def _d(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def period_rows(form: PeriodForm, start: date, end: date) -> list[list[Cell]]:  # noqa: PLR0911 - one branch per form
    """The preamble rows stating the period [start, end] in the given form."""
    s, e = _d(start), _d(end)
    if form == "periode_du_au":
        return [[f"Période du {s} au {e}"]]
    if form == "periode_colon":
        return [[f"Période : du {s} au {e}"]]
    if form == "periode_upper":
        return [[f"PÉRIODE DU {s} AU {e}"]]
    if form == "periode_no_accent":
        return [[f"Periode du {s} au {e}"]]
    if form == "du_au":
        return [[f"Du {s} au {e}"]]
    if form == "exercice":
        return [[f"Exercice du {s} au {e}"]]
    if form == "two_digit_year":
        return [[f"Période du {start:%d/%m/%y} au {end:%d/%m/%y}"]]
    if form == "spread_text":
        return [["Période du", s, "au", e]]
    if form == "spread_date_cells":
        return [["Période du", start, "au", end]]
    if form == "three_rows":
        return [[f"Période du {s}"], ["au"], [e]]
    if form == "three_rows_date_cells":
        return [["Période du", start], ["au"], [end]]
    if form == "debut_fin_one_cell":
        return [[f"Date de début : {s}   Date de fin : {e}"]]
    if form == "debut_fin_cells":
        return [["Date de début", s, None, "Date de fin", e]]
    if form == "debut_fin_rows":
        return [[f"Date de début : {s}"], [f"Date de fin : {e}"]]
    if form == "debut_fin_date_cells":
        return [["Date de début", start, "Date de fin", end]]
    return []


def preamble_rows(
    title: str, form: PeriodForm, start: date, end: date, *, page: int = 1, width: int = 8
) -> list[list[Cell]]:
    """Company, title, period, edition line (with the page number far right) and a blank row."""
    edition: list[Cell] = [None] * max(width, 2)
    edition[0] = "Edité le 05/02/2025 à 10:42"
    edition[-1] = f"Page {page}"
    return [
        ["ACME SARL - Dossier 00042"],
        [title],
        *period_rows(form, start, end),
        ["Devise : EUR", None, "Filtre : tous les comptes"],
        edition,
        [],
    ]
