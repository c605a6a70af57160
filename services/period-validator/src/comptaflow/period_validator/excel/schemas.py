"""Columns of the normalised tables handed to the loader (`ValidationResult.tables`)."""

from __future__ import annotations

from typing import Final

import polars as pl

from comptaflow.period_validator.findings import FileKind

AMOUNT: Final = pl.Decimal(18, 2)

LEDGER: Final = pl.Schema(
    {
        "row": pl.UInt32(),
        "date": pl.Date(),
        "journal": pl.String(),
        "piece": pl.String(),
        "account": pl.String(),
        "account_label": pl.String(),
        "label": pl.String(),
        "debit": AMOUNT,
        "credit": AMOUNT,
        "lettrage": pl.String(),
        "due_date": pl.Date(),
        "collectif": pl.String(),
        "entry_num": pl.String(),
        "piece_date": pl.Date(),
        "lettrage_date": pl.Date(),
        "valid_date": pl.Date(),
        "currency_amount": AMOUNT,
        "currency": pl.String(),
    }
)
"""Both grands livres. `row` is the 1-based sheet row (the text line in a FEC); `account` is the general
account (comptes) or the third-party code (tiers); `collectif` is null in the general ledger. Nullable:
piece, account_label, lettrage, due_date, collectif, and the columns only a FEC carries (entry_num,
piece_date, lettrage_date, valid_date, currency_amount, currency), which are null for Excel exports."""

FEC_ONLY: Final = ("entry_num", "piece_date", "lettrage_date", "valid_date", "currency_amount", "currency")

PLAN_COMPTES: Final = pl.Schema({"account": pl.String(), "label": pl.String(), "account_type": pl.String()})

PLAN_TIERS: Final = pl.Schema(
    {
        "code": pl.String(),
        "name": pl.String(),
        "collectif": pl.String(),
        "tiers_type": pl.String(),
        "siret": pl.String(),
        "address": pl.String(),
        "postal_code": pl.String(),
        "city": pl.String(),
        "country": pl.String(),
        "email": pl.String(),
        "phone": pl.String(),
    }
)
"""`code` and `name` are always set; the others are null when the column is absent or the cell empty."""

CODE_JOURNAL: Final = pl.Schema({"code": pl.String(), "label": pl.String(), "journal_type": pl.String()})

SCHEMAS: Final[dict[FileKind, pl.Schema]] = {
    FileKind.GRAND_LIVRE_COMPTES: LEDGER,
    FileKind.GRAND_LIVRE_TIERS: LEDGER,
    FileKind.PLAN_COMPTES: PLAN_COMPTES,
    FileKind.PLAN_TIERS: PLAN_TIERS,
    FileKind.CODE_JOURNAL: CODE_JOURNAL,
}


def empty_table(kind: FileKind) -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMAS[kind])
