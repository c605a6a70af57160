"""Comparable forms of column labels: `Débit €`, `DEBIT` and `Debit (EUR)` all become `debit`.

Case, accents, punctuation, units in brackets or as words (€, EUR, euros), French articles and the
spellings of "numéro" (N°, No, Num, Numéro) are ignored. One polars expression does it, so header
detection (first rows) and repeated-header detection (whole sheet) agree exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

_WORDS_DROPPED = r"\b(?:eur|euro|euros|en|de|du|des|d|la|le|les|l)\b"
_NUMBER_WORDS = r"\b(?:no|num|numero|nro)\b"


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
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def normalise_all(texts: Iterable[str]) -> list[str]:
    """The normalised form of each label (used for the synonym tables, at import)."""
    series = pl.Series("label", list(texts), dtype=pl.String)
    return [value or "" for value in pl.select(normalised(pl.lit(series))).to_series().to_list()]
