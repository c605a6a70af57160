"""How exports write amounts and dates as text (French notation and its variants)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

AmountStyle = Literal["number", "space", "nbsp", "nnbsp", "dot", "plain"]
"""`number`: a numeric cell; the others are text `1 234,56` with the named thousands separator
(`plain`: no separator, `1234,56`)."""

ZeroStyle = Literal["empty", "dash", "zero_text", "zero_number"]
"""How the empty side of a line is written: nothing, `-`, `0,00`, or a numeric 0."""

DateStyle = Literal["cell", "dd/mm/yyyy", "dd/mm/yy", "dd.mm.yyyy", "dd-mm-yyyy", "yyyy-mm-dd"]
"""`cell`: an Excel date cell; the others are text in that format."""

AMOUNT_STYLES: tuple[AmountStyle, ...] = ("number", "space", "nbsp", "nnbsp", "dot", "plain")
ZERO_STYLES: tuple[ZeroStyle, ...] = ("empty", "dash", "zero_text", "zero_number")
DATE_STYLES: tuple[DateStyle, ...] = ("cell", "dd/mm/yyyy", "dd/mm/yy", "dd.mm.yyyy", "dd-mm-yyyy", "yyyy-mm-dd")

_SEPARATORS: dict[AmountStyle, str] = {
    "space": " ",
    "nbsp": "\u00a0",
    "nnbsp": "\u202f",
    "dot": ".",
    "plain": "",
}


def cents_to_decimal(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def french_amount(cents: int, separator: str) -> str:
    """`-1 234 567,89` with `separator` between groups of three digits."""
    sign = "-" if cents < 0 else ""
    units, hundredths = divmod(abs(cents), 100)
    digits = str(units)
    groups = []
    while len(digits) > 3:
        groups.append(digits[-3:])
        digits = digits[:-3]
    groups.append(digits)
    return f"{sign}{separator.join(reversed(groups))},{hundredths:02d}"


def amount_cell(cents: int, style: AmountStyle) -> str | float:
    """The cell an export writes for a non-zero amount."""
    if style == "number":
        return cents / 100
    return french_amount(cents, _SEPARATORS[style])


def zero_cell(style: ZeroStyle) -> str | float | None:
    """The cell an export writes for the side of a line that carries no amount."""
    if style == "empty":
        return None
    if style == "dash":
        return "-"
    if style == "zero_text":
        return "0,00"
    return 0.0


def side_cell(cents: int, amount_style: AmountStyle, zero_style: ZeroStyle) -> str | float | None:
    return zero_cell(zero_style) if cents == 0 else amount_cell(cents, amount_style)


def date_text(day: date, style: DateStyle) -> str:
    if style == "dd/mm/yy":
        return day.strftime("%d/%m/%y")
    if style == "dd.mm.yyyy":
        return day.strftime("%d.%m.%Y")
    if style == "dd-mm-yyyy":
        return day.strftime("%d-%m-%Y")
    if style == "yyyy-mm-dd":
        return day.isoformat()
    return day.strftime("%d/%m/%Y")


def date_cell(day: date, style: DateStyle) -> date | str:
    """An Excel date cell (`cell`) or the date as text."""
    return day if style == "cell" else date_text(day, style)
