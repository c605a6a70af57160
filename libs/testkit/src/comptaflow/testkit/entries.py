"""Deterministic, balanced accounting lines (seeded), as a ledger would list them."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from comptaflow.testkit.chart import ACCOUNTS, TIERS_BY_CODE


@dataclass(frozen=True, slots=True)
class Line:
    """One ledger line; amounts in cents."""

    date: dt.date
    journal: str
    piece: str
    account: str
    label: str
    debit: int
    credit: int
    tiers: str | None = None
    lettrage: str | None = None
    due_date: dt.date | None = None


_Piece = Callable[[random.Random, dt.date, str], list[Line]]


def _amount(rng: random.Random) -> int:
    """Cents: mostly everyday amounts, sometimes millions (several thousands separators)."""
    if rng.random() < 0.1:
        return rng.randint(100_000_000, 500_000_000)
    return rng.randint(1_000, 5_000_000)


def _purchase(rng: random.Random, day: dt.date, piece: str) -> list[Line]:
    tiers = rng.choice(("FABC01", "FORANGE", "F0042"))
    expense = {"FABC01": "601000", "FORANGE": "626000", "F0042": "613200"}[tiers]
    net = _amount(rng)
    vat = round(net * 0.2)
    label = f"Facture {TIERS_BY_CODE[tiers].name} n°{piece[-4:]}"
    due = day + timedelta(days=30)
    return [
        Line(day, "AC", piece, expense, label, net, 0),
        Line(day, "AC", piece, "445660", label, vat, 0),
        Line(day, "AC", piece, "401000", label, 0, net + vat, tiers, None, due),
    ]


def _sale(rng: random.Random, day: dt.date, piece: str) -> list[Line]:
    tiers = rng.choice(("0DUPONT", "C0001", "C0002"))
    revenue = rng.choice(("706000", "707000"))
    net = _amount(rng)
    vat = round(net * 0.2)
    label = f"Facture client {TIERS_BY_CODE[tiers].name}"
    return [
        Line(day, "VT", piece, "411000", label, net + vat, 0, tiers, None, day + timedelta(days=45)),
        Line(day, "VT", piece, revenue, label, 0, net),
        Line(day, "VT", piece, "445710", label, 0, vat),
    ]


def _supplier_payment(rng: random.Random, day: dt.date, piece: str) -> list[Line]:
    tiers = rng.choice(("FABC01", "FORANGE", "F0042"))
    amount = _amount(rng)
    letter = rng.choice(("A", "B", "AA", None))
    label = f"Virement {TIERS_BY_CODE[tiers].name}"
    return [
        Line(day, "BQ", piece, "401000", label, amount, 0, tiers, letter),
        Line(day, "BQ", piece, "512000", label, 0, amount),
    ]


def _customer_receipt(rng: random.Random, day: dt.date, piece: str) -> list[Line]:
    tiers = rng.choice(("0DUPONT", "C0001", "C0002"))
    amount = _amount(rng)
    label = f"Règlement {TIERS_BY_CODE[tiers].name}"
    return [
        Line(day, "BQ", piece, "512000", label, amount, 0),
        Line(day, "BQ", piece, "411000", label, 0, amount, tiers, rng.choice(("C", None))),
    ]


def _salary(rng: random.Random, day: dt.date, piece: str) -> list[Line]:
    amount = rng.randint(150_000, 400_000)
    return [
        Line(day, "OD", piece, "641000", "Salaire Martin Julie", amount, 0),
        Line(day, "OD", piece, "421000", "Salaire Martin Julie", 0, amount, "S0007"),
    ]


def _cash(rng: random.Random, day: dt.date, piece: str) -> list[Line]:
    amount = rng.randint(100, 30_000)
    return [
        Line(day, "CA", piece, "606300", "Petit matériel", amount, 0),
        Line(day, "CA", piece, "530000", "Petit matériel", 0, amount),
    ]


def _off_balance(rng: random.Random, day: dt.date, piece: str) -> list[Line]:
    amount = _amount(rng)
    return [
        Line(day, "OD", piece, "080100", "Caution bancaire donnée", amount, 0),
        Line(day, "OD", piece, "164000", "Caution bancaire donnée", 0, amount),
    ]


_PIECES: tuple[tuple[str, _Piece], ...] = (
    ("AC", _purchase),
    ("VT", _sale),
    ("BQ", _supplier_payment),
    ("BQ", _customer_receipt),
    ("OD", _salary),
    ("CA", _cash),
    ("OD", _off_balance),
)


def generate_lines(*, seed: int, n_pieces: int, start: dt.date, end: dt.date) -> list[Line]:
    """`n_pieces` balanced pieces dated inside [start, end], plus one opening entry (journal AN)."""
    rng = random.Random(seed)  # noqa: S311 - seeded fixture data, not security
    span = (end - start).days
    counters: dict[str, int] = {}
    lines = [
        Line(start, "AN", "AN00001", "512000", "Report à nouveau", 1_500_000, 0),
        Line(start, "AN", "AN00001", "101000", "Report à nouveau", 0, 1_500_000),
    ]
    for _ in range(n_pieces):
        journal, make = rng.choice(_PIECES)
        counters[journal] = counters.get(journal, 0) + 1
        day = start + timedelta(days=rng.randint(0, span))
        lines.extend(make(rng, day, f"{journal}{counters[journal]:05d}"))
    return lines


def stream_account_lines(*, seed: int, n_lines: int, start: dt.date, end: dt.date) -> Iterator[Line]:
    """`n_lines` lines ordered by account then date, balanced overall, without holding them in memory.

    Every account but the last gets random one-sided lines; the last account gets one extra line
    that balances the whole ledger.
    """
    rng = random.Random(seed)  # noqa: S311 - seeded fixture data, not security
    span = (end - start).days
    codes = [account.code for account in ACCOUNTS]
    share, extra = divmod(n_lines - 1, len(codes))
    balance = 0
    for index, code in enumerate(codes):
        count = share + (1 if index < extra else 0)
        offsets = sorted(rng.randint(0, span) for _ in range(count))
        for number, offset in enumerate(offsets, start=1):
            cents = rng.randint(1, 2_000_000)
            debit, credit = (cents, 0) if rng.random() < 0.5 else (0, cents)
            balance += debit - credit
            journal = ("AC", "VT", "BQ", "OD")[number % 4]
            yield Line(
                start + timedelta(days=offset),
                journal,
                f"{journal}{number:07d}",
                code,
                f"Ligne {number} du compte {code}",
                debit,
                credit,
            )
    yield Line(
        end,
        "OD",
        "OD9999999",
        codes[-1],
        "Équilibrage",
        -balance if balance < 0 else 0,
        balance if balance > 0 else 0,
    )
