"""The records of a company, one at a time: `Builder(company, rng)` makes set-up records (accounts,
journals, fiscal years, categories, bank accounts), third parties and products, and posts balanced
ledger entries; `books.Books` adds the invoices, payments and bank movements that post them.

A customer or supplier gets its own letterable account 411xxxxx / 401xxxxx. Every record is made at a
given instant (`at`, its created_at) and accounting date (`when`), so the bulk generator (`data`) and the
live mutations (`mutations`) make records that look alike.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from comptaflow.fakes.pennylane import chart
from comptaflow.fakes.pennylane.formats import ZERO, cents
from comptaflow.fakes.pennylane.store import Company, Row

# (ledger account id, debit, credit, label, category weights)
Posting = tuple[int, Decimal, Decimal, str, Sequence[tuple[int, Decimal]]]


def siren(rng: random.Random) -> str:
    """Nine digits passing the Luhn check, as a SIREN does."""
    digits = [rng.randint(0, 9) for _ in range(8)]
    for check in range(10):
        candidate = [*digits, check]
        total = 0
        for index, digit in enumerate(reversed(candidate)):
            doubled = digit * 2 if index % 2 else digit
            total += doubled - 9 if doubled > 9 else doubled
        if total % 10 == 0:
            return "".join(map(str, candidate))
    raise AssertionError("unreachable: one check digit always fits")


def vat_number(reg_no: str) -> str:
    key = (12 + 3 * (int(reg_no) % 97)) % 97
    return f"FR{key:02d}{reg_no}"


class Builder:
    def __init__(self, company: Company, rng: random.Random) -> None:
        self.company = company
        self.rng = rng

    # --- small values -------------------------------------------------------------------------------

    def amount(self, low: float, high: float) -> Decimal:
        return Decimal(self.rng.randint(int(low * 100), int(high * 100))) / 100

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def address(self) -> Row:
        postal_code, city = self.rng.choice(chart.CITIES)
        street = f"{self.rng.randint(1, 180)} {self.rng.choice(chart.STREETS)}"
        return {"address": street, "postal_code": postal_code, "city": city, "country_alpha2": "FR"}

    def iban(self) -> str:
        return "FR76" + "".join(str(self.rng.randint(0, 9)) for _ in range(23))

    def phone(self) -> str:
        return "+336" + "".join(str(self.rng.randint(0, 9)) for _ in range(8))

    def categories(self, chance: float) -> list[tuple[int, Decimal]]:
        table = self.company.rows("categories")
        if not table or self.rng.random() >= chance:
            return []
        ids = list(table)
        if self.rng.random() < 0.25 and len(ids) > 1:
            first, second = self.rng.sample(ids, 2)
            return [(first, Decimal("0.50")), (second, Decimal("0.50"))]
        return [(self.rng.choice(ids), Decimal("1.00"))]

    def account_id(self, number: str) -> int:
        return self.company.accounts_by_number[number]

    # --- set-up records -----------------------------------------------------------------------------

    def account(self, number: str, label: str, at: datetime, *, collective: str | None = None) -> Row:
        return self.company.insert(
            "ledger_accounts",
            {
                "id": self.company.new_id("ledger_accounts"),
                "number": number,
                "label": label,
                "vat_rate": "any",
                "country_alpha2": "FR",
                "enabled": True,
                "type": "custom",
                "letterable": collective is not None,
                "collective": collective,
                "created_at": at,
                "updated_at": at,
            },
        )

    def journal(self, code: str, label: str, kind: str, at: datetime) -> Row:
        return self.company.insert(
            "journals",
            {"id": self.company.new_id("journals"), "code": code, "label": label, "type": kind, "created_at": at},
        )

    def fiscal_year(self, start: date, finish: date, status: str, at: datetime) -> Row:
        return self.company.insert(
            "fiscal_years",
            {
                "id": self.company.new_id("fiscal_years"),
                "start": start,
                "finish": finish,
                "status": status,
                "created_at": at,
                "updated_at": at,
            },
        )

    def category(self, label: str, group_id: int, at: datetime) -> Row:
        rng = self.rng
        return self.company.insert(
            "categories",
            {
                "id": self.company.new_id("categories"),
                "label": label,
                "direction": rng.choice(("cash_in", "cash_out", None)),
                "category_group_id": group_id,
                "analytical_code": f"AN{rng.randint(100, 999)}" if rng.random() < 0.6 else None,
                "created_at": at,
                "updated_at": at,
            },
        )

    def bank_account(self, index: int, at: datetime) -> Row:
        name, establishment = chart.BANKS[index % len(chart.BANKS)]
        code = chart.BANK_JOURNAL_CODES[index % len(chart.BANK_JOURNAL_CODES)]
        account = self.account(f"{chart.BANK_ACCOUNT_PREFIX}{index + 1:02d}", f"Banque - {name}", at)
        journal = self.journal(code, f"Banque {name}", "bank", at)
        return self.company.insert(
            "bank_accounts",
            {
                "id": self.company.new_id("bank_accounts"),
                "name": name,
                "currency": "EUR",
                "bank_establishment_id": establishment,
                "journal_id": journal["id"],
                "ledger_account_id": account["id"],
                "created_at": at,
                "updated_at": at,
            },
        )

    # --- third parties and products -----------------------------------------------------------------

    def customer(self, at: datetime, *, individual: bool | None = None) -> Row:
        rng, company = self.rng, self.company
        individual = rng.random() < 0.2 if individual is None else individual
        number = company.next_count("customer")
        first, last = rng.choice(chart.FIRST_NAMES), rng.choice(chart.LAST_NAMES)
        if individual:
            name = f"{first} {last}"
        else:
            name = f"{rng.choice(chart.BUSINESS_WORDS)} {rng.choice(chart.LAST_NAMES)} {rng.choice(chart.LEGAL_FORMS)}"
        account = self.account(
            f"{chart.THIRD_PARTY_PREFIX['customer']}{number:05d}", name, at, collective=chart.CUSTOMERS_COLLECTIVE
        )
        slug = "".join(ch for ch in name.lower().replace(" ", "-") if ch.isascii() and (ch.isalnum() or ch == "-"))
        row: Row = {
            "id": company.new_id("customers"),
            "customer_type": "individual" if individual else "company",
            "name": name,
            "billing_iban": self.iban() if rng.random() < 0.3 else None,
            "payment_conditions": rng.choice(("30_days", "30_days", "45_days", "upon_receipt", "60_days")),
            "recipient": f"{first} {last}",
            "phone": self.phone(),
            "reference": f"CLI-{number:05d}" if rng.random() < 0.7 else None,
            "notes": None,
            "ledger_account_id": account["id"],
            "emails": [f"{first.lower()}@{slug}.fr" if not individual else f"{slug}@exemple.fr"],
            "billing_address": self.address(),
            "delivery_address": self.address(),
            "external_reference": self.uuid(),
            "billing_language": "fr_FR",
            "created_at": at,
            "updated_at": at,
        }
        if individual:
            row["first_name"], row["last_name"] = first, last
        else:
            row["reg_no"] = siren(rng)
            row["vat_number"] = vat_number(row["reg_no"])
        return company.insert("customers", row)

    def supplier(self, at: datetime) -> Row:
        rng, company = self.rng, self.company
        number = company.next_count("supplier")
        if number <= len(chart.SUPPLIER_NAMES):
            name = chart.SUPPLIER_NAMES[number - 1]
        else:
            name = f"{rng.choice(chart.BUSINESS_WORDS)} {rng.choice(chart.LAST_NAMES)} {rng.choice(chart.LEGAL_FORMS)}"
        account = self.account(
            f"{chart.THIRD_PARTY_PREFIX['supplier']}{number:05d}", name, at, collective=chart.SUPPLIERS_COLLECTIVE
        )
        reg_no = siren(rng)
        return company.insert(
            "suppliers",
            {
                "id": company.new_id("suppliers"),
                "name": name,
                "establishment_no": f"{reg_no}{rng.randint(1, 99999):05d}" if rng.random() < 0.8 else None,
                "reg_no": reg_no,
                "vat_number": vat_number(reg_no),
                "ledger_account_id": account["id"],
                "expense_account_id": self.account_id(rng.choice(chart.EXPENSE_ACCOUNTS)),
                "emails": [f"factures@{''.join(ch for ch in name.lower() if ch.isascii() and ch.isalnum())}.fr"],
                "iban": self.iban(),
                "postal_address": self.address(),
                "supplier_payment_method": rng.choice(("automatic_transfer", "manual_transfer", "card", None)),
                "supplier_due_date_delay": rng.choice((30, 45, 60, None)),
                "supplier_due_date_rule": rng.choice(("days", "days_or_end_of_month", None)),
                "external_reference": self.uuid(),
                "created_at": at,
                "updated_at": at,
            },
        )

    def product(self, at: datetime) -> Row:
        rng, company = self.rng, self.company
        number = company.next_count("product")
        label, unit, revenue = chart.PRODUCTS[(number - 1) % len(chart.PRODUCTS)]
        if number > len(chart.PRODUCTS):
            label = f"{label} ({(number - 1) // len(chart.PRODUCTS) + 1})"
        vat = rng.choices([code for code, _ in chart.VAT_WEIGHTS], [w for _, w in chart.VAT_WEIGHTS])[0]
        price = self.amount(15, 1200)
        return company.insert(
            "products",
            {
                "id": company.new_id("products"),
                "label": label,
                "description": f"{label} - tarif {at.year}",
                "external_reference": self.uuid(),
                "price_before_tax": price,
                "vat_rate": vat,
                "price": cents(price * (1 + chart.VAT_RATES[vat])),
                "unit": unit,
                "currency": "EUR",
                "reference": f"REF-{number:04d}" if rng.random() < 0.8 else None,
                "ledger_account_id": self.account_id(revenue),
                "archived_at": None,
                "created_at": at,
                "updated_at": at,
            },
        )

    # --- ledger -------------------------------------------------------------------------------------

    def post(
        self,
        journal_id: int,
        when: date,
        label: str,
        postings: Sequence[Posting],
        at: datetime,
        *,
        piece: str | None = None,
        invoice_number: str | None = None,
        due: date | None = None,
    ) -> Row:
        """A balanced entry and its lines (lines are changelog records; the entry is not)."""
        debit = sum((p[1] for p in postings), ZERO)
        credit = sum((p[2] for p in postings), ZERO)
        if debit != credit:
            raise ValueError(f"entry not balanced: debit {debit} != credit {credit}")
        company = self.company
        entry = company.insert(
            "ledger_entries",
            {
                "id": company.new_id("ledger_entries"),
                "label": label,
                "piece_number": piece,
                "date": when,
                "due_date": due,
                "invoice_number": invoice_number,
                "journal_id": journal_id,
                "category_weights": self.categories(0.05),
                "created_at": at,
                "updated_at": at,
                "line_ids": [],
            },
        )
        for posting in postings:
            entry["line_ids"].append(self.post_line(entry, posting, at)["id"])
        return entry

    def post_line(self, entry: Row, posting: Posting, at: datetime) -> Row:
        """One line of `entry` (the caller keeps the entry balanced and its `line_ids`)."""
        account_id, debit, credit, label, weights = posting
        return self.company.insert(
            "ledger_entry_lines",
            {
                "id": self.company.new_id("ledger_entry_lines"),
                "entry_id": entry["id"],
                "debit": debit,
                "credit": credit,
                "label": label,
                "ledger_account_id": account_id,
                "journal_id": entry["journal_id"],
                "date": entry["date"],
                "category_weights": list(weights),
                "lettering_id": None,
                "created_at": at,
                "updated_at": at,
            },
        )

    def entry_lines(self, entry: Row) -> list[Row]:
        table = self.company.rows("ledger_entry_lines")
        return [table[line_id] for line_id in entry["line_ids"] if line_id in table]

    def delete_entry(self, entry_id: int, at: datetime) -> None:
        entry = self.company.delete("ledger_entries", entry_id, at)
        for line_id in entry["line_ids"] if entry else ():
            self.company.delete("ledger_entry_lines", line_id, at)
