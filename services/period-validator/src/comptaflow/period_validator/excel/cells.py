"""Reading cell values: amounts, dates and codes, a whole column at a time.

Cells arrive as strings (the sheet is read with the `string` dtype): fastexcel renders a numeric cell
with up to nine decimals and no exponent (`1234.56`, `401000`, `12345678.904999999`) and a date cell as
`YYYY-MM-DD HH:MM:SS`. Text cells arrive as typed.

Amounts become integer cents (Int64), exactly: a plain `1234.56` is cast to a decimal; French text
(`1 234,56` with space, U+00A0, U+202F or dots between thousands, comma decimals, leading or trailing
`-`, brackets, `€`) is taken apart digit by digit — never through a float. A numeric cell rendered
with more than two decimals is rounded to cents, half away from zero, from the shortest decimal that
reads back as the same binary number. Empty, `-` and `0,00` are zero; a cell that cannot be read is
null. One ambiguity is settled by the numeric reading: a single dot is a decimal point (`1.234` is
1.23, as a numeric cell holding 1.234 would be); dots are thousands separators only beside a decimal
comma or when there are several (`1.234.567`).

The fast reading (numeric cells, Excel dates, `dd/mm/yyyy`) runs over whole columns; only the cells it
leaves unread go through the slower text parsers, staged on their own small frame — eager polars does
not share repeated sub-expressions, so each step is materialised once.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import polars as pl

from comptaflow.period_validator.excel.schemas import AMOUNT

_PLAIN_AMOUNT = r"^-?\d{1,16}(?:\.\d{1,2})?$"
_NUMERIC_RENDERING = r"^-?\d+\.\d{3,}$"
_SEPARATORS = r"[\s\u00a0\u202f\u2009'\u2019€]|(?i:eur)$"
_NEGATIVE = r"^-|-$|^\(.*\)$"
_SIGNS = r"^[+-]|-$|^\(|\)$"
_DOT_THOUSANDS = r"^\d{1,3}(?:\.\d{3}){2,}$"
_DECIMAL_PARTS = r"^(\d{1,16})(?:\.(\d*))?$"
_UNSIGNED_PLAIN = r"^\d{1,16}(?:\.\d{1,2})?$"
_FRENCH_CENTS = r"^-?\d{1,3}(?:[ \u00a0\u202f.]?\d{3}){0,4},\d{2}$"
"""`1 234,56`, `-1.234.567,89`, `1234,56` (at most 15 integer digits): the digits are the cents."""

_DAY_FIRST = r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
_ISO = r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
_CELL_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_TWO_DIGIT_PIVOT = 70
"""`dd/mm/yy`: years below 70 are 20yy, the others 19yy."""


def text(cell: pl.Expr) -> pl.Expr:
    """Trimmed text, null when empty."""
    stripped = cell.str.strip_chars()
    return pl.when(stripped.str.len_bytes() > 0).then(stripped)


def code(cell: pl.Expr) -> pl.Expr:
    """An account or third-party code: trimmed, `401000.0` read as `401000`, leading zeros kept."""
    trimmed = text(cell)
    # Only a number with zero decimals loses them: its trailing zeros stop at the dot, which goes too.
    whole = trimmed.str.strip_chars_end("0").str.strip_suffix(".")
    return pl.when(trimmed.str.contains(r"^\d+\.0+$")).then(whole).otherwise(trimmed)


def with_amounts(frame: pl.DataFrame, sources: Mapping[str, pl.Expr]) -> pl.DataFrame:
    """Add one Int64 cents column per `{name: cell expression}`: 0 when empty, null when unreadable.

    Plain numbers (the rendering of numeric cells, at most two decimals) are cast over the whole
    column; the other cells — French text, numbers with more decimals, garbage, anything with spaces
    around it — are trimmed and parsed on their own, usually a handful, and put back in place.
    Whitespace-only cells are already null (the sheet is read with `whitespace_as_null`).
    """
    for name, source in sources.items():
        frame = frame.with_columns(
            pl.when(source.is_null())
            .then(pl.lit(0, dtype=pl.Int64))
            .when(source.str.contains(_PLAIN_AMOUNT))
            .then((source.cast(AMOUNT, strict=False) * 100).cast(pl.Int64))
            .alias(name)
        )
        rows, values = _pending(frame, name, source)
        if rows.len():
            frame = frame.with_columns(frame[name].scatter(rows, parse_text_amounts(values)))
    return frame


def _pending(frame: pl.DataFrame, name: str, source: pl.Expr) -> tuple[pl.Series, pl.Series]:
    """Rows whose cell is not empty but whose fast reading left `name` null, and their trimmed cells."""
    left = frame.select(source.is_not_null() & pl.col(name).is_null()).to_series()
    if not left.any():
        return pl.Series(dtype=pl.UInt32), pl.Series(dtype=pl.String)
    rows = left.arg_true()
    values = frame.select(source.str.strip_chars()).to_series().gather(rows)
    return rows, values


def parse_text_amounts(values: pl.Series) -> pl.Series:
    """Integer cents of amounts written as text (or numbers rendered with 3+ decimals); null if unreadable.

    The usual French form (`-1 234,56`: separators between thousands, two decimals) is its digits;
    the others go through `_parse_other_amounts`.
    """
    frame = values.rename("v").to_frame().with_columns(french=pl.col("v").str.contains(_FRENCH_CENTS))
    cents = frame.select(
        pl.when(pl.col("french")).then(
            pl.col("v").str.replace_all(r"\D", "").cast(pl.Int64)
            * pl.when(pl.col("v").str.starts_with("-")).then(-1).otherwise(1)
        )
    ).to_series()
    others = frame.with_row_index("_i").filter(~pl.col("french"))
    if others.height:
        cents = cents.scatter(others["_i"], _parse_other_amounts(others["v"]))
    return cents


def _parse_other_amounts(values: pl.Series) -> pl.Series:
    """Staged on a frame so that each step runs once: signs and separators go, the comma becomes the
    decimal point; what is then a plain number with at most two decimals is cast exactly, and only the
    rest (more decimals, garbage) goes through the digit-by-digit rounding.
    """
    staged = (
        values.rename("v")
        .to_frame()
        .with_columns(
            negative=pl.col("v").str.contains(_NEGATIVE),
            bare=pl.col("v").str.replace_all(_SEPARATORS, "").str.replace_all(_SIGNS, ""),
            rendered=pl.col("v").str.contains(_NUMERIC_RENDERING),
        )
        .with_columns(
            canonical=pl.when(pl.col("bare").str.contains(",", literal=True))
            .then(pl.col("bare").str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True))
            .when(pl.col("bare").str.contains(_DOT_THOUSANDS))
            .then(pl.col("bare").str.replace_all(".", "", literal=True))
            .otherwise(pl.col("bare"))
        )
        .with_columns(quick=pl.col("canonical").str.contains(_UNSIGNED_PLAIN))
        .with_columns(
            quick_cents=pl.when(pl.col("quick")).then((pl.col("canonical").cast(AMOUNT) * 100).cast(pl.Int64)),
            canonical=pl.when(pl.col("quick").not_()).then(pl.col("canonical")),
        )
        .with_columns(number=pl.when(pl.col("rendered")).then(pl.col("canonical")).cast(pl.Float64, strict=False).abs())
        .with_columns(shortest=_shortest_repr())
        .with_columns(parts=pl.col("shortest").str.extract_groups(_DECIMAL_PARTS))
        .with_columns(
            units=pl.col("parts").struct.field("1").cast(pl.Int64, strict=False),
            fraction=pl.coalesce(
                pl.col("parts").struct.field("2"),
                pl.when(pl.col("parts").struct.field("1").is_not_null()).then(pl.lit("")),
            )
            + "000",
        )
        .with_columns(
            cents=pl.coalesce(
                pl.col("quick_cents"),
                pl.col("units") * 100
                + pl.col("fraction").str.slice(0, 2).cast(pl.Int64)
                + (pl.col("fraction").str.slice(2, 1).cast(pl.Int64) >= 5).cast(pl.Int64),
            )
        )
    )
    return staged.select(
        pl.when(pl.col("bare") == "")
        .then(pl.lit(0, dtype=pl.Int64))
        .when(pl.col("cents").is_not_null())
        .then(pl.when(pl.col("negative")).then(-pl.col("cents")).otherwise(pl.col("cents")))
    ).to_series()


def _shortest_repr() -> pl.Expr:
    """For a numeric cell rendered with 3+ decimals, the shortest decimal of the same binary number.

    fastexcel prints nine decimals (`12345678.904999999` for the number typed 12345678.905); reading
    that back as a float gives the cell's number again, whose shortest repr is what was typed. Numbers
    too small to matter at the cent (printed in exponent form) read as zero.
    """
    shortest = pl.col("number").cast(pl.String)
    return (
        pl.when(pl.col("rendered").not_())
        .then(pl.col("canonical"))
        .when(pl.col("number") < 0.001)
        .then(pl.lit("0"))
        .when(shortest.str.contains("e", literal=True))
        .then(pl.lit(None, dtype=pl.String))
        .otherwise(shortest)
    )


def cents_to_amount(cents: pl.Expr) -> pl.Expr:
    """Integer cents as Decimal(18, 2), exactly."""
    return (cents.cast(pl.Decimal(38, 0)) * Decimal("0.01")).cast(AMOUNT)


def with_dates(frame: pl.DataFrame, sources: Mapping[str, pl.Expr]) -> pl.DataFrame:
    """Add one Date column per `{name: cell expression}`; null when empty or not a real date.

    Excel date cells (rendered `YYYY-MM-DD HH:MM:SS`) and `dd/mm/yyyy` text are read over the whole
    column; the other text dates (dd/mm/yy, dd.mm.yyyy, dd-mm-yyyy, yyyy-mm-dd, optionally followed by a
    time, or with spaces around them) on the remaining rows only, trimmed. 31/02/2024 is null.
    """
    for name, source in sources.items():
        day_first = pl.when(source.str.len_bytes() == 10).then(source).str.to_date("%d/%m/%Y", strict=False)
        # ten characters read as %d/%m/%Y with a four-digit year can only be dd/mm/yyyy
        exact_day_first = pl.when(day_first.dt.year().is_between(1000, 9999)).then(day_first)
        frame = frame.with_columns(
            pl.coalesce(source.str.to_date(_CELL_DATE_FORMAT, strict=False), exact_day_first).alias(name)
        )
        rows, values = _pending(frame, name, source)
        if rows.len():
            frame = frame.with_columns(frame[name].scatter(rows, parse_text_dates(values)))
    return frame


def parse_text_dates(values: pl.Series) -> pl.Series:
    """Dates written as text; null when the text is not one of the accepted forms or not a real date."""
    staged = (
        values.rename("v")
        .to_frame()
        .with_columns(
            day_first=pl.col("v").str.extract_groups(_DAY_FIRST),
            iso=pl.col("v").str.extract_groups(_ISO),
        )
        .with_columns(
            year=pl.coalesce(pl.col("day_first").struct.field("3"), pl.col("iso").struct.field("1")),
            month=pl.coalesce(pl.col("day_first").struct.field("2"), pl.col("iso").struct.field("2")),
            day=pl.coalesce(pl.col("day_first").struct.field("1"), pl.col("iso").struct.field("3")),
        )
        .with_columns(
            year=pl.when(pl.col("year").str.len_bytes() != 2)
            .then(pl.col("year"))
            .when(pl.col("year").cast(pl.Int32) < _TWO_DIGIT_PIVOT)
            .then(pl.lit("20") + pl.col("year"))
            .otherwise(pl.lit("19") + pl.col("year"))
        )
    )
    return staged.select(
        pl.format("{}-{}-{}", "year", pl.col("month").str.zfill(2), pl.col("day").str.zfill(2)).str.to_date(
            "%Y-%m-%d", strict=False
        )
    ).to_series()
