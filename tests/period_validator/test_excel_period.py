"""The period of a grand livre, read from preamble rows (docs/api.md, The period of an Excel batch)."""

from __future__ import annotations

from datetime import date

import pytest

from comptaflow.period_validator.excel.period import PeriodProblem, read_period
from comptaflow.period_validator.findings import Code, Period

YEAR = Period(date(2024, 1, 1), date(2024, 12, 31))


@pytest.mark.parametrize(
    "rows",
    [
        [["Période du 01/01/2024 au 31/12/2024"]],
        [["Periode du 01/01/2024 au 31/12/2024"]],
        [["PÉRIODE DU 01/01/2024 AU 31/12/2024"]],
        [["période : du 01/01/2024 au 31/12/2024"]],
        [["Période : 01/01/2024 - 31/12/2024"]],
        [["Du 01/01/2024 au 31/12/2024"]],
        [["Exercice du 01/01/2024 au 31/12/2024"]],
        [["Exercice du 1er janvier 2024 au 31 décembre 2024"]],
        [["Période du 01/01/24 au 31/12/24"]],
        [["Période du 01.01.2024 au 31.12.2024"]],
        [["Période du 2024-01-01 au 2024-12-31"]],
        [["Période du", "01/01/2024", "au", "31/12/2024"]],
        [["Période du", "2024-01-01 00:00:00", "au", "2024-12-31 00:00:00"]],
        [["Période du 01/01/2024"], ["au"], ["31/12/2024"]],
        [["Période du", "2024-01-01 00:00:00"], [None, "au"], ["2024-12-31 00:00:00"]],
        [["Date de début : 01/01/2024   Date de fin : 31/12/2024"]],
        [["Date de début", "01/01/2024", None, "Date de fin", "31/12/2024"]],
        [["Date de début : 01/01/2024"], ["Date de fin : 31/12/2024"]],
        [["Date de début", "2024-01-01 00:00:00", "Date de fin", "2024-12-31 00:00:00"]],
        [["ACME"], ["Edité le 05/02/2025"], ["Grand livre", None, "Période du\u00a001/01/2024 au\u00a031/12/2024"]],
    ],
)
def test_period_forms(rows: list[list[str | None]]) -> None:
    assert read_period(rows) == YEAR


@pytest.mark.parametrize(
    ("rows", "code", "row", "quoted"),
    [
        ([["ACME"], ["Période du 31/12/2024 au 01/01/2024"]], Code.PERIOD_INVALID, 2, "starts after it ends"),
        ([["Période du 01/01/2024 au 31/02/2024"]], Code.PERIOD_INVALID, 1, "31/02/2024"),
        ([["Période du 01/13/2024 au 31/12/2024"]], Code.PERIOD_INVALID, 1, "01/13/2024"),
        ([["Période du 29/02/2023 au 31/12/2023"]], Code.PERIOD_INVALID, 1, "29/02/2023"),
        ([["x"], ["Période : exercice 2024"]], Code.PERIOD_NOT_FOUND, 2, "periode : exercice 2024"),
        ([["ACME SARL"], ["Edité le 05/02/2025"]], Code.PERIOD_NOT_FOUND, None, "no period"),
        ([], Code.PERIOD_NOT_FOUND, None, "no period"),
    ],
)
def test_period_problems(rows: list[list[str | None]], code: Code, row: int | None, quoted: str) -> None:
    with pytest.raises(PeriodProblem) as caught:
        read_period(rows)
    assert caught.value.code == code
    assert caught.value.row == row
    assert quoted in caught.value.message
