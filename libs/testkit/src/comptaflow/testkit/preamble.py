"""Report preambles: company, title, edition line and the period in every form docs/api.md reads."""

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


def period_rows(form: PeriodForm, start: date, end: date) -> list[list[Cell]]:
    """The preamble rows stating the period [start, end] in the given form."""
    s, e = _d(start), _d(end)
    forms: dict[PeriodForm, list[list[Cell]]] = {
        "periode_du_au": [[f"Période du {s} au {e}"]],
        "periode_colon": [[f"Période : du {s} au {e}"]],
        "periode_upper": [[f"PÉRIODE DU {s} AU {e}"]],
        "periode_no_accent": [[f"Periode du {s} au {e}"]],
        "du_au": [[f"Du {s} au {e}"]],
        "exercice": [[f"Exercice du {s} au {e}"]],
        "two_digit_year": [[f"Période du {start:%d/%m/%y} au {end:%d/%m/%y}"]],
        "spread_text": [["Période du", s, "au", e]],
        "spread_date_cells": [["Période du", start, "au", end]],
        "three_rows": [[f"Période du {s}"], ["au"], [e]],
        "three_rows_date_cells": [["Période du", start], ["au"], [end]],
        "debut_fin_one_cell": [[f"Date de début : {s}   Date de fin : {e}"]],
        "debut_fin_cells": [["Date de début", s, None, "Date de fin", e]],
        "debut_fin_rows": [[f"Date de début : {s}"], [f"Date de fin : {e}"]],
        "debut_fin_date_cells": [["Date de début", start, "Date de fin", end]],
        "none": [],
    }
    return forms[form]


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
