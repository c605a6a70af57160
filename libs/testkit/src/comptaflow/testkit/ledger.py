"""Rendering ledger lines as a grand livre export (flat or grouped), with what a reader should find."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import groupby
from typing import Literal

from comptaflow.testkit.chart import ACCOUNT_BY_CODE, TIERS_BY_CODE
from comptaflow.testkit.entries import Line
from comptaflow.testkit.notation import (
    AmountStyle,
    DateStyle,
    ZeroStyle,
    amount_cell,
    cents_to_decimal,
    date_cell,
    side_cell,
)
from comptaflow.testkit.sheet import Cell

LedgerKind = Literal["grand_livre_comptes", "grand_livre_tiers"]
Layout = Literal["flat", "grouped"]
GroupStyle = Literal["dash", "space", "compte_colon", "compte_dash", "split_cells"]
HeaderStyle = Literal["canonical", "units", "upper", "variant"]
TotalStyle = Literal["total_compte", "total_code"]

HEADER_LABELS: dict[HeaderStyle, dict[str, str]] = {
    "canonical": {
        "date": "Date", "journal": "Journal", "piece": "Pièce", "account": "Compte",
        "account_label": "Intitulé compte", "label": "Libellé", "debit": "Débit", "credit": "Crédit",
        "balance": "Solde", "lettrage": "Lettrage", "due_date": "Échéance", "tiers": "Tiers",
        "collectif": "Compte collectif",
    },
    "units": {
        "date": "Date écriture", "journal": "Code journal", "piece": "N° pièce", "account": "N° compte",
        "account_label": "Intitulé compte", "label": "Libellé écriture", "debit": "Débit €",
        "credit": "Crédit €", "balance": "Solde progressif", "lettrage": "Let.", "due_date": "Échéance",
        "tiers": "Compte tiers", "collectif": "Collectif",
    },
    "upper": {
        "date": "DATE PIECE", "journal": "JNL", "piece": "REF.", "account": "COMPTE GENERAL",
        "account_label": "INTITULE COMPTE", "label": "INTITULE", "debit": "DEBIT (EUR)",
        "credit": "CREDIT (EUR)", "balance": "SOLDE CUMULE", "lettrage": "LETTR.", "due_date": "ECHEANCE",
        "tiers": "COMPTE AUXILIAIRE", "collectif": "COMPTE COLLECTIF",
    },
    "variant": {
        "date": "Date pièce", "journal": "JL", "piece": "Numéro de pièce", "account": "Numéro de compte",
        "account_label": "Intitulé du compte", "label": "Libelle", "debit": "Mouvement débit",
        "credit": "Mouvement crédit", "balance": "Solde cumulé", "lettrage": "Lettr.",
        "due_date": "Date d'échéance", "tiers": "Code tiers", "collectif": "Compte collectif",
    },
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LedgerStyle:
    """How one grand livre is laid out and written (see ExportSpec for the meaning of each)."""

    layout: Layout = "flat"
    group_style: GroupStyle = "dash"
    account_totals: bool = True
    total_style: TotalStyle = "total_compte"
    grand_total: bool = True
    class_totals: bool = False
    opening_rows: bool = False
    page_size: int | None = None
    carry_rows: bool = True
    blank_between_groups: bool = True
    amount_style: AmountStyle = "number"
    zero_style: ZeroStyle = "empty"
    date_style: DateStyle = "cell"
    header_style: HeaderStyle = "canonical"
    numeric_accounts: bool = False
    optional_columns: bool = True


@dataclass(slots=True)
class LedgerExpectation:
    """What a correct reader finds in a rendered grand livre (rows are 1-based sheet rows)."""

    header_row: int = 0
    columns: list[str] = field(default_factory=list)
    """Field of each column, in sheet order (date, journal, piece, account, label, debit, …)."""
    entry_lines: int = 0
    per_account: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    total_debit: Decimal = Decimal("0.00")
    total_credit: Decimal = Decimal("0.00")
    skipped: dict[str, int] = field(default_factory=dict)
    account_labels: dict[str, str] = field(default_factory=dict)
    entry_rows: list[tuple[int, Line]] = field(default_factory=list)


@dataclass(slots=True)
class RenderedLedger:
    rows: list[list[Cell]]
    expected: LedgerExpectation


RowSink = Callable[[int, list[Cell]], None]
"""Receives each row (0-based index, cells) in order."""


def _account_of(kind: LedgerKind, line: Line) -> str:
    if kind == "grand_livre_tiers":
        assert line.tiers is not None
        return line.tiers
    return line.account


def _label_of(kind: LedgerKind, code: str) -> str:
    return TIERS_BY_CODE[code].name if kind == "grand_livre_tiers" else ACCOUNT_BY_CODE[code].label


class _Renderer:
    """Writes rows in order and records what each non-entry row is."""

    def __init__(
        self,
        kind: LedgerKind,
        style: LedgerStyle,
        preamble: Callable[[int], list[list[Cell]]],
        sink: RowSink,
        *,
        record_entries: bool = True,
    ):
        self.kind = kind
        self.style = style
        self.preamble = preamble
        self.sink = sink
        self.record_entries = record_entries
        self.written = 0
        self.skipped: Counter[str] = Counter()
        self.expected = LedgerExpectation()
        self.columns = self._columns()
        self.page = 1

    def _columns(self) -> list[str]:
        flat = self.style.layout == "flat"
        optional = self.style.optional_columns
        columns = ["date", "journal"] + (["piece"] if optional else [])
        if self.kind == "grand_livre_comptes":
            columns += ["account"] if flat else []
            columns += ["account_label"] if flat and optional else []
        else:
            columns += ["tiers"] if flat else []
            columns += ["collectif"] if optional else []
        columns += ["label", "debit", "credit"]
        columns += ["balance", "lettrage", "due_date"] if optional else []
        return columns

    @property
    def next_row(self) -> int:
        return self.written + 1

    def emit(self, cells: dict[str, Cell], reason: str | None) -> None:
        self.emit_raw([cells.get(name) for name in self.columns], reason)

    def emit_raw(self, row: list[Cell], reason: str | None) -> None:
        self.sink(self.written, row)
        self.written += 1
        if reason is not None:
            self.skipped[reason] += 1

    def code_cell(self, code: str) -> Cell:
        if self.style.numeric_accounts and code.isdigit() and not code.startswith("0"):
            return int(code)
        return code

    def money(self, cents: int) -> Cell:
        return side_cell(cents, self.style.amount_style, self.style.zero_style)

    def signed(self, cents: int) -> Cell:
        return amount_cell(cents, self.style.amount_style) if cents else self.money(0)

    def header(self, reason: str | None) -> None:
        labels = HEADER_LABELS[self.style.header_style]
        self.emit({name: labels[name] for name in self.columns}, reason)

    def start(self) -> None:
        for row in self.preamble(1):
            self.emit_raw(row, None)
        self.expected.header_row = self.next_row
        self.expected.columns = list(self.columns)
        self.header(None)

    def page_break(self, debit: int, credit: int) -> None:
        if self.style.carry_rows:
            self.total("A reporter", debit, credit, "carry_forward")
        self.page += 1
        for row in self.preamble(self.page):
            self.emit_raw(row, "blank" if not row else "preamble")
        self.header("header")
        if self.style.carry_rows:
            self.total("Report", debit, credit, "carry_forward")

    def group_row(self, code: str, suffix: str = "") -> None:
        label = _label_of(self.kind, code) + suffix
        group = self.style.group_style
        if group == "split_cells":
            self.emit_raw([self.code_cell(code), label], None)
            return
        text = {
            "dash": f"{code} - {label}",
            "space": f"{code} {label}",
            "compte_colon": f"Compte : {code} {label}",
            "compte_dash": f"Compte {code} - {label}",
        }[group]
        self.emit_raw([text], None)

    def entry(self, line: Line, code: str, balance: int) -> None:
        cells: dict[str, Cell] = {
            "date": date_cell(line.date, self.style.date_style),
            "journal": line.journal,
            "piece": line.piece,
            "label": line.label,
            "debit": self.money(line.debit),
            "credit": self.money(line.credit),
            "balance": self.signed(balance),
            "lettrage": line.lettrage,
            "due_date": date_cell(line.due_date, self.style.date_style) if line.due_date else None,
        }
        if self.kind == "grand_livre_comptes":
            cells["account"] = self.code_cell(code)
            cells["account_label"] = _label_of(self.kind, code)
        else:
            cells["tiers"] = code
            cells["collectif"] = self.code_cell(line.account)
        if self.record_entries:
            self.expected.entry_rows.append((self.next_row, line))
        self.expected.entry_lines += 1
        self.emit(cells, None)

    def total(self, text: str, debit: int, credit: int, reason: str) -> None:
        self.emit({"label": text, "debit": self.money(debit), "credit": self.money(credit)}, reason)


def stream_ledger(
    kind: LedgerKind,
    ordered: Iterable[Line],
    style: LedgerStyle,
    preamble: Callable[[int], list[list[Cell]]],
    sink: RowSink,
    *,
    record_entries: bool = True,
) -> LedgerExpectation:
    """Send the rows of a grand livre to `sink`; `ordered` is sorted by account (tiers code)."""
    r = _Renderer(kind, style, preamble, sink, record_entries=record_entries)
    r.start()
    grand_debit = grand_credit = on_page = 0
    previous: str | None = None
    for code, group in groupby(ordered, key=lambda line: _account_of(kind, line)):
        if previous is not None:
            _close_account(r, previous, code)
        if style.layout == "grouped":
            r.group_row(code)
            r.expected.account_labels[code] = _label_of(kind, code)
        if style.opening_rows:
            r.emit({"label": "Solde antérieur"}, "balance")
        debit = credit = 0
        for line in group:
            if style.page_size and on_page == style.page_size:
                r.page_break(grand_debit, grand_credit)
                on_page = 0
                if style.layout == "grouped":
                    r.group_row(code, " (suite)")
            debit += line.debit
            credit += line.credit
            r.entry(line, code, debit - credit)
            on_page += 1
        grand_debit += debit
        grand_credit += credit
        if style.account_totals:
            text = f"Total compte {code}" if style.total_style == "total_compte" else f"Total {code}"
            r.total(text, debit, credit, "total_account")
        r.expected.per_account[code] = (cents_to_decimal(debit), cents_to_decimal(credit))
        previous = code
    if previous is not None:
        _close_account(r, previous, None)
    if style.grand_total:
        r.total("Total général", grand_debit, grand_credit, "total_general")
    r.expected.total_debit = cents_to_decimal(grand_debit)
    r.expected.total_credit = cents_to_decimal(grand_credit)
    r.expected.skipped = dict(r.skipped)
    return r.expected


def _close_account(r: _Renderer, code: str, following: str | None) -> None:
    """Rows after an account's total: the class total when the class changes, a blank row."""
    if r.style.class_totals and (following is None or following[0] != code[0]):
        r.total(f"Total classe {code[0]}", 0, 0, "subtotal")
    if r.style.blank_between_groups and (following is not None or r.style.grand_total):
        r.emit_raw([], "blank")


def render_ledger(
    kind: LedgerKind,
    lines: Sequence[Line],
    style: LedgerStyle,
    preamble: Callable[[int], list[list[Cell]]],
) -> RenderedLedger:
    """Rows of a grand livre listing `lines` (sorted by account, then date and piece)."""
    if kind == "grand_livre_tiers":
        lines = [line for line in lines if line.tiers is not None]
    ordered = sorted(lines, key=lambda line: (_account_of(kind, line), line.date, line.piece))
    rows: list[list[Cell]] = []
    expected = stream_ledger(kind, ordered, style, preamble, lambda _index, row: rows.append(row))
    return RenderedLedger(rows, expected)
