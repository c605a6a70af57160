"""The deterministic generator: `generate(company, anchor=…)` fills a company from its seed and size.

The same (seed, size, anchor) gives the same company, row for row: every draw comes from
`random.Random(f"{seed}:{size}")`, and every timestamp is placed relative to `anchor` (the start of the
UTC day the fake's clock started in, by default). Ids also depend on the company's rank in its fake
(`store`): they never repeat across companies, and the first company of every fake has the same ones.
The books span 2 (small) or 3 fiscal years, the last one open and containing the anchor, the earlier
ones closed; the accounting dates run up to the day before the anchor.

Everything is made by one time-ordered plan (set-up, then third parties, invoices, payments, bank
movements and OD entries at their instants), so ids grow with created_at in every table, as they do in
Pennylane. Then the changelog is derived from the rows (`Company.rebuild_history`), and a few records
of every changelog resource are created and deleted in the last half hour before the anchor, so that a
fresh company's changelogs already hold inserts, updates and deletes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from comptaflow.fakes.pennylane import chart
from comptaflow.fakes.pennylane.books import Books
from comptaflow.fakes.pennylane.formats import cents
from comptaflow.fakes.pennylane.store import Company, Row


@dataclass(frozen=True, slots=True)
class Size:
    customers: int
    suppliers: int
    products: int
    customer_invoices: int
    supplier_invoices: int
    transactions: int
    misc_entries: int
    banks: int
    fiscal_years: int
    categories: int
    ghosts: int


SIZES: dict[str, Size] = {
    "small": Size(15, 10, 12, 25, 15, 30, 14, 2, 2, 6, 1),
    "medium": Size(150, 90, 60, 300, 150, 600, 250, 3, 3, 12, 3),
    "large": Size(500, 300, 200, 2000, 1000, 10000, 7000, 4, 3, 20, 5),
}


def default_anchor(now: datetime) -> datetime:
    """The start of `now`'s UTC day: the instant generated data is placed before."""
    return datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)


def generate(company: Company, *, anchor: datetime) -> None:
    size = SIZES[company.size]
    rng = random.Random(f"{company.seed}:{company.size}")  # noqa: S311 - seeded test data, not security
    build = Books(company, rng)
    last_day = anchor.date() - timedelta(days=1)
    years = range(anchor.year - size.fiscal_years + 1, anchor.year + 1)
    first_day = date(years[0], 1, 1)
    setup = datetime.combine(first_day, time(9), tzinfo=UTC) - timedelta(days=30)
    _set_up(build, size, years, setup)
    plan = _Plan(build, anchor, setup, first_day, last_day)
    plan.third_parties(size)
    payments = plan.invoices("customer_invoices", size.customer_invoices)
    payments += plan.invoices("supplier_invoices", size.supplier_invoices)
    for _ in range(max(0, size.transactions - payments)):
        plan.schedule("bank_movement", plan.accounting_day())
    for _ in range(size.misc_entries):
        plan.schedule("misc_entry", plan.accounting_day())
    plan.run()
    for invoice in company.rows("customer_invoices").values():
        if invoice["status"] == "upcoming" and invoice["deadline"] < anchor.date():
            invoice["status"] = "late"
    company.rebuild_history(rng)
    _ghosts(build, size.ghosts, anchor)


class _Plan:
    """Steps of the company's history, each at its instant, run in time order."""

    def __init__(self, build: Books, anchor: datetime, setup: datetime, first_day: date, last_day: date) -> None:
        self.build = build
        self.rng = build.rng
        self.anchor = anchor
        self.setup = setup
        self.first_day = first_day
        self.last_day = last_day
        self.steps: list[tuple[datetime, int, str, tuple[Any, ...]]] = []
        self.credited: list[Row] = []

    def schedule(self, kind: str, day: date | None, *args: Any, at: datetime | None = None) -> None:
        """A step `kind` on accounting day `day` (at a random working hour), or at the instant `at`."""
        if at is None:
            assert day is not None
            seconds = self.rng.randint(8 * 3600, 19 * 3600)
            at = datetime.combine(day, time(), tzinfo=UTC) + timedelta(
                seconds=seconds, microseconds=self.rng.randint(0, 999999)
            )
        self.steps.append((at, len(self.steps), kind, (day, *args)))

    def accounting_day(self) -> date:
        return self.first_day + timedelta(days=self.rng.randint(0, (self.last_day - self.first_day).days))

    def spread(self, count: int) -> list[datetime]:
        """Creation instants of master data: a fifth at set-up, the rest over the whole span."""
        early = max(1, count // 5)
        span = (self.anchor - timedelta(hours=1) - self.setup).total_seconds()
        times = [self.setup + timedelta(minutes=10 + index) for index in range(early)]
        times += [self.setup + timedelta(seconds=self.rng.uniform(3600, span)) for _ in range(count - early)]
        return sorted(times)

    def third_parties(self, size: Size) -> None:
        for resource, count in (
            ("customers", size.customers),
            ("suppliers", size.suppliers),
            ("products", size.products),
        ):
            for at in self.spread(count):
                self.schedule(resource, None, at=at)
            for _ in range(max(1, count // 7)):
                later = self.anchor - timedelta(seconds=self.rng.uniform(3600, 60 * 86400))
                self.schedule("edit", None, resource, at=later)

    def invoices(self, resource: str, count: int) -> int:
        """`count` invoices, most of the due ones paid; the number of payments planned."""
        payments = 0
        for _ in range(count):
            day = self.accounting_day()
            made: list[Row] = []
            kind = "invoice"
            if resource == "customer_invoices":
                kind = self.rng.choices(("invoice", "credit_note", "draft"), (92, 5, 3))[0]
            self.schedule("invoice", day, resource, kind, made)
            paid_on = day + timedelta(days=self.rng.randint(3, 60))
            if kind == "invoice" and paid_on <= self.last_day and self.rng.random() < 0.85:
                payments += 1
                self.schedule("pay", paid_on, resource, made)
        return payments

    def run(self) -> None:
        build = self.build
        for at, _, kind, (day, *args) in sorted(self.steps, key=lambda step: (step[0], step[1])):
            if kind in ("customers", "suppliers", "products"):
                getattr(build, kind.removesuffix("s"))(at)
            elif kind == "edit":
                _edit_one(build, args[0], at)
            elif kind == "invoice":
                resource, invoice_kind, made = args
                made.append(_invoice(build, resource, at, day, kind=invoice_kind, credited=self.credited))
            elif kind == "pay":
                resource, made = args
                build.pay(resource, made[0], at, day)
            elif kind == "bank_movement":
                build.bank_movement(at, day)
            else:
                build.misc_entry(at, day)


def _set_up(build: Books, size: Size, years: range, setup: datetime) -> None:
    company = build.company
    for number, label in chart.GENERAL_ACCOUNTS:
        build.account(number, label, setup)
    for code, label, kind in (chart.SALES_JOURNAL, chart.PURCHASES_JOURNAL, chart.MISC_JOURNAL):
        build.journal(code, label, kind, setup)
    for index in range(size.banks):
        build.bank_account(index, setup + timedelta(seconds=index + 1))
    for index, year in enumerate(years):
        created = setup if index == 0 else datetime(year - 1, 12, 1, 10, tzinfo=UTC)
        status = "open" if year == years[-1] else "closed"
        build.fiscal_year(date(year, 1, 1), date(year, 12, 31), status, created)
    groups = [company.new_id("categories") for _ in chart.CATEGORY_GROUPS]
    for index in range(size.categories):
        build.category(chart.CATEGORY_LABELS[index % len(chart.CATEGORY_LABELS)], groups[index % len(groups)], setup)


def _invoice(build: Books, resource: str, at: datetime, day: date, *, kind: str, credited: list[Row]) -> Row:
    company, rng = build.company, build.rng
    if resource == "supplier_invoices":
        return build.supplier_invoice(at, day, rng.choice(list(company.rows("suppliers").values())))
    customers = company.rows("customers")
    if kind == "credit_note" and credited:
        original = rng.choice(credited)
        return build.customer_invoice(at, day, customers[original["customer_id"]], credit_of=original)
    invoice = build.customer_invoice(at, day, rng.choice(list(customers.values())), draft=kind == "draft")
    credited.append(invoice)
    return invoice


def _edit_one(build: Books, resource: str, at: datetime) -> None:
    rows = build.company.rows(resource)
    candidates = [row for row in rows.values() if row["created_at"] < at]
    if candidates:
        edit(build, resource, build.rng.choice(candidates), at)


def edit(build: Books, resource: str, row: Row, at: datetime) -> None:
    """One plausible change of a customer, supplier or product (a phone, notes, an IBAN, a price)."""
    rng = build.rng
    if resource == "customers":
        row.update(phone=build.phone(), notes=rng.choice(("Relancer en fin de mois", "Client fidèle", None)))
    elif resource == "suppliers":
        row.update(iban=build.iban(), supplier_due_date_delay=rng.choice((30, 45, 60)))
    elif resource == "products":
        price = build.amount(15, 1200)
        row.update(price_before_tax=price, price=cents(price * (1 + chart.VAT_RATES[row["vat_rate"]])))
    build.company.touch(resource, row, at)


def _ghosts(build: Books, count: int, anchor: datetime) -> None:
    """`count` records per changelog resource created 30 min and deleted 10 min before the anchor."""
    company = build.company
    born = anchor - timedelta(minutes=30)
    gone = anchor - timedelta(minutes=10)
    made: list[tuple[str, int]] = []
    customer = next(iter(company.rows("customers").values()))
    supplier = next(iter(company.rows("suppliers").values()))
    for index in range(count):
        at = born + timedelta(seconds=index)
        day = (anchor - timedelta(days=1)).date()
        made.append(("customers", build.customer(at)["id"]))
        made.append(("suppliers", build.supplier(at)["id"]))
        made.append(("products", build.product(at)["id"]))
        made.append(("customer_invoices", build.customer_invoice(at, day, customer)["id"]))
        made.append(("supplier_invoices", build.supplier_invoice(at, day, supplier)["id"]))
        made.append(("transactions", build.bank_movement(at, day)["id"]))
        made.append(("ledger_entries", build.misc_entry(at, day)["id"]))
    for index, (resource, row_id) in enumerate(made):
        at = gone + timedelta(milliseconds=index)
        if resource in ("customer_invoices", "supplier_invoices"):
            build.delete_invoice(resource, row_id, at)
        elif resource == "transactions":
            build.delete_transaction(row_id, at)
        elif resource == "ledger_entries":
            build.delete_entry(row_id, at)
        else:
            company.delete(resource, row_id, at)
