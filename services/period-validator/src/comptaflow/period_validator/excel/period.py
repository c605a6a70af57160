"""The period stated in the preamble of a grand livre (docs/api.md, The period of an Excel batch).

The rows above the header are turned into text, one line per row, cells separated by spaces; date
cells become dd/mm/yyyy. The text is folded (case and accents) and searched for, in order:
`… du <date> au <date>` (Période, Periode, PÉRIODE, `Période : du`, `Du`, `Exercice du`, on one cell,
spread over cells, or over three rows with `au` alone), `Date de début <date> … Date de fin <date>`,
and `Période|Exercice <date> au|- <date>`. Dates are dd/mm/yyyy, dd/mm/yy, dd.mm.yyyy, dd-mm-yyyy,
yyyy-mm-dd or `1er janvier 2024`. An impossible date or a start after the end is PERIOD_INVALID;
no readable period is PERIOD_NOT_FOUND.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from comptaflow.period_validator.findings import Code, FileKind, Finding, Period

_MONTHS = (
    "janvier",
    "fevrier",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "aout",
    "septembre",
    "octobre",
    "novembre",
    "decembre",
)
_DATE = (
    r"(\d{1,2}\s?[/.\-]\s?\d{1,2}\s?[/.\-]\s?\d{2,4}"
    r"|\d{4}[/.\-]\d{1,2}[/.\-]\d{1,2}"
    rf"|\d{{1,2}}(?:er)?\s+(?:{'|'.join(_MONTHS)})\s+\d{{2,4}})"
)
_PATTERNS = (
    re.compile(rf"\bdu\s*:?\s*{_DATE}\s*(?:au|a|jusqu'au)\s*:?\s*{_DATE}", re.DOTALL),
    re.compile(rf"\bdebut\b[^0-9]{{0,40}}?{_DATE}.*?\bfin\b[^0-9]{{0,40}}?{_DATE}", re.DOTALL),
    re.compile(rf"\b(?:periode|exercice)\b\s*:?\s*{_DATE}\s*(?:au|a|-|\u2013)\s*{_DATE}", re.DOTALL),
)
_MENTION = re.compile(r"\b(?:periode|exercice|date de debut|du)\b")
_CELL_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) \d{2}:\d{2}:\d{2}$")
_DAY_FIRST = re.compile(r"^(\d{1,2})\s?[/.\-]\s?(\d{1,2})\s?[/.\-]\s?(\d{2,4})$")
_YEAR_FIRST = re.compile(r"^(\d{4})[/.\-](\d{1,2})[/.\-](\d{1,2})$")
_WORDS = re.compile(rf"^(\d{{1,2}})(?:er)?\s+({'|'.join(_MONTHS)})\s+(\d{{2,4}})$")
_TWO_DIGIT_PIVOT = 70


class PeriodProblem(Exception):
    def __init__(self, code: Code, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.row = row

    def finding(self, kind: FileKind) -> Finding:
        return Finding(self.code, self.message, file=kind.value, row=self.row)


@dataclass(frozen=True, slots=True)
class _Preamble:
    text: str
    starts: tuple[int, ...]
    """Offset in `text` where each sheet row starts (index 0 = sheet row 1)."""

    def row_at(self, offset: int) -> int:
        row = 0
        for index, start in enumerate(self.starts):
            if start > offset:
                break
            row = index
        return row + 1


def fold(text: str) -> str:
    """Lower case without accents; no-break spaces become spaces."""
    decomposed = unicodedata.normalize("NFKD", text.replace("\u00a0", " ").replace("\u202f", " "))
    return "".join(char for char in decomposed if not unicodedata.combining(char)).lower()


def _cell_text(cell: str | None) -> str:
    if cell is None:
        return ""
    found = _CELL_DATE.match(cell)
    if found:
        year, month, day = found.groups()
        return f"{day}/{month}/{year}"
    return cell.strip()


def _preamble(rows: Sequence[Sequence[str | None]]) -> _Preamble:
    lines: list[str] = []
    starts: list[int] = []
    offset = 0
    for row in rows:
        line = " ".join(text for text in (_cell_text(cell) for cell in row) if text)
        starts.append(offset)
        lines.append(fold(line))
        offset += len(lines[-1]) + 1
    return _Preamble("\n".join(lines), tuple(starts))


def _four_digit(year: str) -> int:
    if len(year) == 2:
        value = int(year)
        return 2000 + value if value < _TWO_DIGIT_PIVOT else 1900 + value
    if len(year) != 4:
        raise ValueError(year)
    return int(year)


def parse_date(token: str) -> date:
    """A period date as written in a preamble; ValueError when it is not a real date."""
    compact = re.sub(r"\s+", " ", token.strip())
    if found := _DAY_FIRST.match(compact):
        day, month, year = found.groups()
        return date(_four_digit(year), int(month), int(day))
    if found := _YEAR_FIRST.match(compact):
        year, month, day = found.groups()
        return date(int(year), int(month), int(day))
    if found := _WORDS.match(compact):
        day, month_name, year = found.groups()
        return date(_four_digit(year), _MONTHS.index(month_name) + 1, int(day))
    raise ValueError(token)


def _snippet(text: str, start: int, end: int) -> str:
    return " ".join(text[start:end].split())


def read_period(rows: Sequence[Sequence[str | None]]) -> Period:
    """The period stated in the preamble `rows` (the sheet rows above the header)."""
    preamble = _preamble(rows)
    for pattern in _PATTERNS:
        found = pattern.search(preamble.text)
        if found is None:
            continue
        row = preamble.row_at(found.start())
        quoted = _snippet(preamble.text, found.start(), found.end())
        bounds: list[date] = []
        for token in found.groups():
            try:
                bounds.append(parse_date(token))
            except ValueError:
                raise PeriodProblem(
                    Code.PERIOD_INVALID, f"impossible date {token.strip()!r} in the period ({quoted!r})", row
                ) from None
        start, end = bounds
        if start > end:
            raise PeriodProblem(
                Code.PERIOD_INVALID,
                f"the period starts after it ends: {start:%d/%m/%Y} > {end:%d/%m/%Y} ({quoted!r})",
                row,
            )
        return Period(start, end)
    mention = _MENTION.search(preamble.text)
    if mention is not None:
        line_end = preamble.text.find("\n", mention.start())
        quoted = _snippet(preamble.text, mention.start(), line_end if line_end >= 0 else len(preamble.text))
        raise PeriodProblem(
            Code.PERIOD_NOT_FOUND,
            f"the period cannot be read from {quoted!r} (expected e.g. 'Période du 01/01/2024 au 31/12/2024')",
            preamble.row_at(mention.start()),
        )
    raise PeriodProblem(
        Code.PERIOD_NOT_FOUND,
        "no period above the header (expected e.g. 'Période du 01/01/2024 au 31/12/2024')",
    )


def compare(comptes: Period, tiers: Period) -> Finding | None:
    """PERIOD_MISMATCH when the two grands livres state different periods."""
    if comptes == tiers:
        return None
    return Finding(
        Code.PERIOD_MISMATCH,
        (
            f"the grand livre des comptes covers {comptes.start:%d/%m/%Y} to {comptes.end:%d/%m/%Y} "
            f"but the grand livre auxiliaire covers {tiers.start:%d/%m/%Y} to {tiers.end:%d/%m/%Y}"
        ),
        file=FileKind.GRAND_LIVRE_TIERS.value,
        details={
            FileKind.GRAND_LIVRE_COMPTES.value: [comptes.start.isoformat(), comptes.end.isoformat()],
            FileKind.GRAND_LIVRE_TIERS.value: [tiers.start.isoformat(), tiers.end.isoformat()],
        },
    )
