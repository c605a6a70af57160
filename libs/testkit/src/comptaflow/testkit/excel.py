"""The five Excel exports of a period, consistent with each other, and what a reader must find.

`write_period(directory, spec)` writes `grand_livre_comptes`, `grand_livre_tiers`, `plan_comptes`,
`plan_tiers` and `code_journal` (balanced ledger, every account, journal and third party in the
reference files) and returns their paths with the expected values, computed independently of any
reader. `render_period(spec)` returns the rows without writing them, so a test can alter one cell
first. `write_grand_livre_rows(path, n_lines)` streams a large grand livre for benchmarks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from comptaflow.testkit.dimensions import (
    TIERS_OPTIONAL_COLUMNS,
    PlanStyle,
    code_journal_rows,
    plan_comptes_rows,
    plan_tiers_rows,
)
from comptaflow.testkit.entries import Line, generate_lines, stream_account_lines
from comptaflow.testkit.ledger import (
    GroupStyle,
    HeaderStyle,
    Layout,
    LedgerExpectation,
    LedgerKind,
    LedgerStyle,
    TotalStyle,
    render_ledger,
    stream_ledger,
)
from comptaflow.testkit.notation import AmountStyle, DateStyle, ZeroStyle
from comptaflow.testkit.preamble import PeriodForm, preamble_rows
from comptaflow.testkit.sheet import Cell, Format, open_writer, write_sheet

GRAND_LIVRE_COMPTES = "grand_livre_comptes"
GRAND_LIVRE_TIERS = "grand_livre_tiers"
PLAN_COMPTES = "plan_comptes"
PLAN_TIERS = "plan_tiers"
CODE_JOURNAL = "code_journal"
KINDS: tuple[str, ...] = (GRAND_LIVRE_COMPTES, GRAND_LIVRE_TIERS, PLAN_COMPTES, PLAN_TIERS, CODE_JOURNAL)
_LEDGERS: tuple[LedgerKind, ...] = ("grand_livre_comptes", "grand_livre_tiers")

_TITLES = {
    GRAND_LIVRE_COMPTES: "Grand livre des comptes généraux",
    GRAND_LIVRE_TIERS: "Grand livre auxiliaire",
}


@dataclass(frozen=True, slots=True)
class ExportSpec:
    """Options of one generated period; every field picks one variant of docs/api.md, Excel exports.

    Ledger options apply to both grands livres unless a `tiers_*` override is given.

    - `fmt`: xlsx (xlsxwriter) or xls (xlwt); `seed`, `n_pieces`: the data; `period_*`: dates and
      how the preamble states them (`preamble.PERIOD_FORMS`); `tiers_period` makes them disagree;
    - `layout`: an account column (`flat`) or group rows (`grouped`, in `group_style`);
    - `account_totals` (`Total compte X` or, with `total_style="total_code"`, `Total X`),
      `grand_total`, `class_totals` (`Total classe N`), `opening_rows` (`Solde antérieur`);
    - `page_size`: entry lines per page, each break repeating preamble and header, framed by
      `A reporter` / `Report` rows when `carry_rows`;
    - `amount_style`, `zero_style`, `date_style`: cell notations (`notation`); `header_style`:
      label synonyms (`ledger.HEADER_LABELS`); `numeric_accounts`: codes as numeric cells (codes
      with a leading zero stay text); `optional_columns`: Pièce, Intitulé compte, Collectif, Solde,
      Lettrage, Échéance;
    - `plan_style`, `plan_tiers_columns`: the reference files; `empty_sheets_before`: empty sheets
      ahead of the data sheet of both grands livres.
    """

    fmt: Format = "xlsx"
    seed: int = 7
    n_pieces: int = 40
    period_start: date = date(2024, 1, 1)
    period_end: date = date(2024, 12, 31)
    period_form: PeriodForm = "periode_du_au"
    tiers_period_form: PeriodForm | None = None
    tiers_period: tuple[date, date] | None = None
    layout: Layout = "flat"
    tiers_layout: Layout | None = None
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
    plan_style: PlanStyle = "canonical"
    plan_tiers_columns: tuple[str, ...] = TIERS_OPTIONAL_COLUMNS
    empty_sheets_before: int = 0

    def ledger_style(self, kind: str) -> LedgerStyle:
        tiers = kind == GRAND_LIVRE_TIERS
        return LedgerStyle(
            layout=(self.tiers_layout or self.layout) if tiers else self.layout,
            group_style=self.group_style,
            account_totals=self.account_totals,
            total_style=self.total_style,
            grand_total=self.grand_total,
            class_totals=self.class_totals and not tiers,
            opening_rows=self.opening_rows,
            page_size=self.page_size,
            carry_rows=self.carry_rows,
            blank_between_groups=self.blank_between_groups,
            amount_style=self.amount_style,
            zero_style=self.zero_style,
            date_style=self.date_style,
            header_style=self.header_style,
            numeric_accounts=self.numeric_accounts,
            optional_columns=self.optional_columns,
        )


@dataclass(slots=True)
class RenderedPeriod:
    """The rows of the five files (by kind) and the expectations of both grands livres."""

    spec: ExportSpec
    rows: dict[str, list[list[Cell]]]
    ledgers: dict[str, LedgerExpectation]
    lines: list[Line]
    reference_counts: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class PeriodExport:
    """Written files (by kind) and what a correct reader must find in them."""

    paths: dict[str, Path]
    period_start: date
    period_end: date
    ledgers: dict[str, LedgerExpectation]
    lines: list[Line]
    reference_counts: dict[str, int]


def _preamble(kind: str, spec: ExportSpec) -> functools.partial[list[list[Cell]]]:
    tiers = kind == GRAND_LIVRE_TIERS
    form = (spec.tiers_period_form or spec.period_form) if tiers else spec.period_form
    start, end = (
        (spec.tiers_period or (spec.period_start, spec.period_end))
        if tiers
        else (
            spec.period_start,
            spec.period_end,
        )
    )
    return functools.partial(_preamble_page, _TITLES[kind], form, start, end)


def _preamble_page(title: str, form: PeriodForm, start: date, end: date, page: int) -> list[list[Cell]]:
    return preamble_rows(title, form, start, end, page=page)


def render_period(spec: ExportSpec) -> RenderedPeriod:
    lines = generate_lines(seed=spec.seed, n_pieces=spec.n_pieces, start=spec.period_start, end=spec.period_end)
    rows: dict[str, list[list[Cell]]] = {}
    ledgers: dict[str, LedgerExpectation] = {}
    for kind in _LEDGERS:
        rendered = render_ledger(kind, lines, spec.ledger_style(kind), _preamble(kind, spec))
        rows[kind] = rendered.rows
        ledgers[kind] = rendered.expected
    rows[PLAN_COMPTES] = plan_comptes_rows(spec.plan_style, numeric_accounts=spec.numeric_accounts)
    rows[PLAN_TIERS] = plan_tiers_rows(
        spec.plan_style, columns=spec.plan_tiers_columns, numeric_accounts=spec.numeric_accounts
    )
    rows[CODE_JOURNAL] = code_journal_rows(spec.plan_style)
    counts = {kind: len(rows[kind]) - 5 for kind in (PLAN_COMPTES, PLAN_TIERS, CODE_JOURNAL)}
    return RenderedPeriod(spec, rows, ledgers, lines, counts)


def write_rendered(directory: Path, rendered: RenderedPeriod) -> PeriodExport:
    directory.mkdir(parents=True, exist_ok=True)
    spec = rendered.spec
    paths: dict[str, Path] = {}
    for kind in KINDS:
        path = directory / f"{kind}.{spec.fmt}"
        empty = spec.empty_sheets_before if kind in _TITLES else 0
        paths[kind] = write_sheet(path, rendered.rows[kind], empty_sheets_before=empty)
    return PeriodExport(
        paths,
        spec.period_start,
        spec.period_end,
        rendered.ledgers,
        rendered.lines,
        rendered.reference_counts,
    )


def write_period(directory: Path, spec: ExportSpec | None = None) -> PeriodExport:
    """Write the five files of one period into `directory` (created if needed)."""
    return write_rendered(directory, render_period(spec or ExportSpec()))


def write_grand_livre_rows(
    path: Path,
    n_lines: int,
    *,
    seed: int = 1,
    layout: Layout = "flat",
    account_totals: bool = False,
    grand_total: bool = True,
    page_size: int | None = None,
    amount_style: AmountStyle = "number",
    date_style: DateStyle = "cell",
    period_start: date = date(2024, 1, 1),
    period_end: date = date(2024, 12, 31),
) -> LedgerExpectation:
    """Stream a balanced `grand_livre_comptes` of `n_lines` entry lines (xlsx constant-memory mode).

    Entry rows are not recorded in the returned expectation (`entry_rows` stays empty).
    """
    style = LedgerStyle(
        layout=layout,
        account_totals=account_totals,
        grand_total=grand_total,
        page_size=page_size,
        amount_style=amount_style,
        date_style=date_style,
        blank_between_groups=False,
    )
    writer = open_writer(path, constant_memory=True)
    try:
        return stream_ledger(
            "grand_livre_comptes",
            stream_account_lines(seed=seed, n_lines=n_lines, start=period_start, end=period_end),
            style,
            functools.partial(_preamble_page, _TITLES[GRAND_LIVRE_COMPTES], "periode_du_au", period_start, period_end),
            writer.write_row,
            record_entries=False,
        )
    finally:
        writer.close()
