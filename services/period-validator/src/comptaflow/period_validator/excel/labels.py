"""Comparable forms of column labels: `Débit €`, `DEBIT` and `Debit (EUR)` all become `debit`.

Case, accents, punctuation, units in brackets or as words (€, EUR, euros), French articles and the
spellings of "numéro" (N°, No, Num, Numéro) are ignored. One polars expression does it, so header
detection (first rows) and repeated-header detection (whole sheet) agree exactly.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import polars as pl

# ASCII word boundaries: by then the text is ASCII, and they keep the regex on its fast path.
_WORDS_DROPPED = r"(?-u:\b)(?:eur|euro|euros|en|de|du|des|d|la|le|les|l)(?-u:\b)"
_NUMBER_WORDS = r"(?-u:\b)(?:no|num|numero|nro)(?-u:\b)"


def normalised(expr: pl.Expr) -> pl.Expr:
    """Lower-case ASCII words separated by single spaces; null stays null."""
    return (
        expr.str.normalize("NFKD")
        .str.replace_all(r"\p{M}", "")
        .str.to_lowercase()
        .str.replace_all(r"\([^)]*\)|\[[^\]]*\]", " ")
        .str.replace_all(r"[^0-9a-z]+", " ")
        .str.replace_all(_WORDS_DROPPED, " ")
        .str.replace_all(_NUMBER_WORDS, "n")
        .str.replace_all(r" {2,}", " ")
        .str.strip_chars()
    )


def normalise_all(texts: Iterable[str]) -> list[str]:
    """The normalised form of each label (used for the synonym tables, at import)."""
    series = pl.Series("label", list(texts), dtype=pl.String)
    return [value or "" for value in pl.select(normalised(pl.lit(series))).to_series().to_list()]


def known_label_counts(
    frame: pl.DataFrame, columns: Sequence[str], known: Collection[str], *, candidates: pl.Expr | None = None
) -> pl.Series:
    """Per row of `frame`, how many of `columns` hold one of the `known` (normalised) labels.

    The cells are stacked into one column first, so each regex of `normalised` is compiled once
    rather than once per sheet column; rows outside `candidates` count 0 without being looked at.
    """
    indexed = frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"), *columns)
    if candidates is not None:
        indexed = indexed.filter(frame.select(candidates).to_series())
    stacked = indexed.unpivot(index="_i", on=list(columns)).filter(pl.col("value").is_not_null())
    hits = (
        stacked.filter(normalised(pl.col("value")).is_in(pl.Series(list(known), dtype=pl.String).implode()))
        .group_by("_i")
        .len()
    )
    counts = pl.zeros(frame.height, dtype=pl.UInt32, eager=True)
    if hits.height:
        counts = counts.scatter(hits["_i"], hits["len"])
    return counts
