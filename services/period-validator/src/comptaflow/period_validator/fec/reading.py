"""Splitting the decoded FEC into a frame of text fields, one row per line, with its line number.

The whole file goes through polars' CSV reader at once. Every line must have as many fields as the
header (plus one empty field when lines end with a separator). The common case is checked without
looking at lines one by one: when no line has more fields than expected (polars refuses those) and the
file holds exactly (lines * (fields - 1)) separators, no line can have fewer either. Only when that
fails, or for quoted (spreadsheet) files where separators may hide inside quotes, are the fields of
each line counted, to name the lines at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import polars as pl

from comptaflow.period_validator.fec.header import Layout
from comptaflow.period_validator.findings import Code, Finding

FILE = "fec"
MAX_LINE_FINDINGS = 50
_QUOTED_FIELD = r'"(?:[^"]|"")*"'


class NotUtf8(Exception):
    """The reader found bytes that are not UTF-8: the text must be decoded first."""


@dataclass(slots=True)
class Lines:
    frame: pl.DataFrame  # `line` (UInt32, 1-based, header = 1) then the layout's columns as stripped text or null
    errors: list[Finding] = field(default_factory=list)
    blank: int = 0
    trailing_separator: bool = False
    padded: bool = False


def _field_counts(body: bytes, layout: Layout) -> pl.Series:
    lines = pl.Series("text", body.decode("utf-8").split("\n"), dtype=pl.String)
    if body.endswith(b"\n"):
        lines = lines.head(lines.len() - 1)
    text = pl.col("text").str.replace_all(_QUOTED_FIELD, "") if layout.quoted else pl.col("text")
    counts = text.str.count_matches(layout.separator, literal=True) + 1
    blank = pl.col("text").str.strip_chars() == ""
    return pl.DataFrame([lines]).select(pl.when(blank).then(0).otherwise(counts).alias("fields")).to_series()


def _wrong_lines(body: bytes, layout: Layout, width: int) -> pl.DataFrame:
    """The lines (`line`, `fields`) whose number of fields is not `width` (blank lines aside)."""
    return (
        pl.DataFrame({"fields": _field_counts(body, layout)})
        .with_row_index("line", offset=2)
        .filter((pl.col("fields") != 0) & (pl.col("fields") != width))
    )


def _first_data_fields(head: bytes, layout: Layout) -> int | None:
    for raw in head.split(b"\n")[:20]:
        if raw.strip():
            return _field_counts(raw, layout).item()  # type: ignore[no-any-return]
    return None


def _read(data: bytes, layout: Layout, width: int, *, ragged: bool) -> pl.DataFrame:
    """Every line after the header, as text fields `f0`… (the header line is skipped, not copied away)."""
    names = [f"f{i}" for i in range(width)]
    try:
        return pl.read_csv(
            data,
            has_header=False,
            skip_rows=1,
            separator=layout.separator,
            quote_char='"' if layout.quoted else None,
            schema=dict.fromkeys(names, pl.String()),
            truncate_ragged_lines=ragged,
            raise_if_empty=False,
        )
    except pl.exceptions.ComputeError as exc:
        if "utf-8" in str(exc).lower():
            raise NotUtf8(str(exc)) from exc
        raise
    except (pl.exceptions.SchemaError, pl.exceptions.NoDataError):
        # Nothing but blank lines after the header: the reader finds no columns at all.
        if _body(data).strip():
            raise
        return pl.DataFrame(schema=dict.fromkeys(names, pl.String()))


def header_line(data: bytes) -> bytes:
    end = data.find(b"\n")
    return data if end < 0 else data[:end]


def _body(data: bytes) -> bytes:
    """The lines after the header (a copy: only for the careful path, which looks at lines one by one)."""
    end = data.find(b"\n")
    return b"" if end < 0 else data[end + 1 :]


def _fast_read(data: bytes, layout: Layout, width: int) -> pl.DataFrame | None:
    """The whole file at once, or None when some line may have the wrong number of fields."""
    if layout.quoted:
        return None
    try:
        frame = _read(data, layout, width, ragged=False)
    except pl.exceptions.ComputeError:  # a line with more fields than the header
        return None
    blank_rows = _blank(frame).sum() if frame.height else 0
    separator = layout.separator.encode()
    found = data.count(separator) - header_line(data).count(separator)
    if found != (frame.height - blank_rows) * (width - 1):
        return None
    return frame


def _blank(frame: pl.DataFrame) -> pl.Series:
    """Blank lines, which the reader turns into rows of nulls (cheap when the first column has no null)."""
    if frame.get_column(frame.columns[0]).null_count() == 0:
        return pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True)
    return frame.select(pl.all_horizontal(pl.all().exclude("_line").is_null())).to_series()


def _count_findings(wrong: pl.DataFrame, width: int) -> list[Finding]:
    findings = [
        Finding(
            Code.FEC_FORMAT,
            f"line {line} has {count} fields, expected {width}"
            + (" (the line looks cut short)" if count < width else ""),
            file=FILE,
            row=int(line),
            details={"fields": int(count), "expected": width},
        )
        for line, count in wrong.head(MAX_LINE_FINDINGS).iter_rows()
    ]
    if wrong.height > MAX_LINE_FINDINGS:
        what = "lines with the wrong number of fields"
        findings.append(summary(Code.FEC_FORMAT, wrong.height, what, MAX_LINE_FINDINGS))
    return findings


def _careful_read(data: bytes, layout: Layout, width: int) -> tuple[pl.DataFrame, Layout, list[Finding]]:
    """Count each line's fields to name the wrong ones; the frame holds the other lines."""
    body = _body(data)
    wrong = _wrong_lines(body, layout, width)
    if wrong.height and not layout.quoted and b'"' in body:
        # A spreadsheet may quote only the fields that hold the separator, header left bare.
        quoted = replace(layout, quoted=True)
        if _wrong_lines(body, quoted, width).height == 0:
            layout, wrong = quoted, wrong.clear()
    frame = _read(data, layout, width, ragged=True).with_row_index("_line", offset=2)
    if wrong.height:
        frame = frame.filter(~pl.col("_line").is_in(wrong["line"].implode()))
    return frame, layout, _count_findings(wrong, width)


def split_fields(data: bytes, layout: Layout) -> Lines:
    """The lines after the header of `data` (UTF-8, LF); raises NotUtf8."""
    end = data.find(b"\n")
    first = _first_data_fields(data[end + 1 : end + 1 + (1 << 16)] if end >= 0 else b"", layout)
    trailing = first == layout.width + 1
    width = layout.width + (1 if trailing else 0)
    errors: list[Finding] = []
    frame = _fast_read(data, layout, width)
    if frame is None:
        frame, layout, errors = _careful_read(data, layout, width)
    if "_line" not in frame.columns:
        frame = frame.with_row_index("_line", offset=2)
    if trailing:
        last = f"f{width - 1}"
        extra = frame.filter(pl.col(last).is_not_null() & (pl.col(last).str.strip_chars() != ""))
        if extra.height:
            errors.extend(
                Finding(
                    Code.FEC_FORMAT,
                    f"line {line} has a value after the last column",
                    file=FILE,
                    row=int(line),
                )
                for line in extra["_line"].head(MAX_LINE_FINDINGS)
            )
        frame = frame.drop(last)
    names = {f"f{i}": name for i, name in enumerate(layout.columns)}
    raw = frame.rename({"_line": "line", **names}).with_columns(pl.col("line").cast(pl.UInt32))
    blank = _blank(raw.select(layout.columns))
    if blank.any():
        raw = raw.filter(~blank)
    # Strip only the columns where some value starts or ends with a space (padding): a cheap test first.
    edges = raw.select(
        (pl.col(name).str.starts_with(" ") | pl.col(name).str.ends_with(" ")).any() for name in layout.columns
    ).row(0)
    padded = [name for name, flag in zip(layout.columns, edges, strict=True) if flag or layout.quoted]
    stripped = raw.with_columns(pl.col(name).str.strip_chars().replace("", None) for name in padded)
    return Lines(stripped, errors, int(blank.sum()), trailing, bool(padded))


def summary(code: Code, count: int, what: str, listed: int, *, row: int | None = None) -> Finding:
    """The finding that closes a capped list: how many there are in all, and how many were listed."""
    message = f"{count} {what} in all; the first {listed} are listed"
    return Finding(code, message, file=FILE, row=row, details={"count": count})
