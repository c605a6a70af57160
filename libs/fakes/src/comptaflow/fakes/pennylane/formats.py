"""How values look on the wire: money as decimal strings, dates `YYYY-MM-DD`, timestamps ISO-8601 with
microseconds and `Z`, ids int64. One place, so every resource renders them alike."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$",
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def cents(value: Decimal) -> Decimal:
    """`value` rounded to the cent, half up (the rounding of an invoice line)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: Decimal) -> str:
    """`Decimal("230.3")` → `"230.30"`."""
    return str(cents(value))


def timestamp(value: datetime) -> str:
    """`2023-08-30T10:08:08.146343Z`: always UTC, always six decimals."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def day(value: date) -> str:
    return value.isoformat()


def parse_date(text: str) -> date:
    """A `YYYY-MM-DD` date; `ValueError` otherwise."""
    if not _DATE.match(text):
        raise ValueError(f"not a date: {text!r}")
    return date.fromisoformat(text)


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 date-time (`2025-06-25T11:54:18.589480Z`, offsets allowed); `ValueError` otherwise."""
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    fraction = (match.group(7) or ".0")[1:7].ljust(6, "0")
    zone = match.group(8).upper()
    iso = f"{text[: match.start(7) if match.group(7) else match.start(8)]}.{fraction}"
    iso = iso.replace("t", "T").replace(" ", "T")
    parsed = datetime.fromisoformat(iso + ("+00:00" if zone == "Z" else zone))
    return parsed.astimezone(UTC)


def fec_amount(value: Decimal) -> str:
    """FEC amounts: a decimal comma, two decimals, no thousands separator (`1234,50`)."""
    return money(value).replace(".", ",")


def fec_date(value: date) -> str:
    return value.strftime("%Y%m%d")
