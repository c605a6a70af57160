"""Coherent business records, each posted as a balanced ledger entry (`Books`, a `Builder`):

- a customer invoice: lines (quantity x unit price, VAT per line) summing to the invoice, and a VE entry
  (411 debit = amount, 7xx credit = amounts before tax, 445710 credit = VAT); a credit note the reverse;
- a supplier invoice: lines and an HA entry (6xx and 445660 debit, 401 credit);
- a bank transaction: a bank-journal entry (512 against the counterpart); a payment letters the invoice's
  third-party line with its own, marks the invoice paid, and counts as a change of both;
- a miscellaneous (OD) entry: payroll, depreciation, VAT return, or 3 to 8 lines balanced on 471000.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from comptaflow.fakes.pennylane import chart
from comptaflow.fakes.pennylane.builder import Builder, Posting
from comptaflow.fakes.pennylane.formats import ZERO, cents
from comptaflow.fakes.pennylane.store import Row


class Books(Builder):
    # --- invoices -----------------------------------------------------------------------------------

    def customer_invoice(
        self,
        at: datetime,
        when: date,
        customer: Row,
        *,
        credit_of: Row | None = None,
        draft: bool = False,
    ) -> Row:
        rng, company = self.rng, self.company
        products = list(company.rows("products").values())
        sign = Decimal(-1) if credit_of is not None else Decimal(1)
        prefix = "AV" if credit_of is not None else "F"
        number = f"{prefix}-{when.year}-{company.next_count(f'{prefix}{when.year}'):04d}"
        invoice_id = company.new_id("customer_invoices")
        lines: list[Row] = []
        for rank in range(1, rng.randint(1, 4) + 1):
            product = rng.choice(products)
            quantity = Decimal(rng.choice((1, 1, 2, 3, 5, 10))) if product["unit"] != "hour" else Decimal("1.5")
            before_tax = cents(quantity * product["price_before_tax"]) * sign
            tax = cents(before_tax * chart.VAT_RATES[product["vat_rate"]])
            lines.append(
                {
                    "id": company.new_id("customer_invoice_lines"),
                    "invoice_id": invoice_id,
                    "rank": rank,
                    "label": product["label"],
                    "unit": product["unit"],
                    "quantity": quantity * sign,
                    "amount": before_tax + tax,
                    "currency_amount": before_tax + tax,
                    "description": product["description"],
                    "product_id": product["id"],
                    "vat_rate": product["vat_rate"],
                    "currency_amount_before_tax": before_tax,
                    "currency_tax": tax,
                    "tax": tax,
                    "raw_currency_unit_price": product["price_before_tax"],
                    "discount": {"type": "relative", "value": "0"},
                    "section_rank": None,
                    "imputation_dates": None,
                    "revenue_account_id": product["ledger_account_id"],
                    "created_at": at,
                    "updated_at": at,
                }
            )
        before_tax = sum((line["currency_amount_before_tax"] for line in lines), ZERO)
        tax = sum((line["tax"] for line in lines), ZERO)
        amount = before_tax + tax
        deadline = when + timedelta(days=30)
        label = (
            f"Facture {customer['name']} - {number}" if credit_of is None else f"Avoir {customer['name']} - {number}"
        )
        postings: list[Posting] = [_side(customer["ledger_account_id"], amount, label)]
        by_account: dict[int, Decimal] = {}
        for line in lines:
            account = line["revenue_account_id"]
            by_account[account] = by_account.get(account, ZERO) + line["currency_amount_before_tax"]
        postings += [_side(account, -value, label) for account, value in by_account.items()]
        if tax:
            postings.append(_side(self.account_id(chart.VAT_COLLECTED), -tax, label))
        entry = self.post(
            company.journal_ids[chart.SALES_JOURNAL[0]], when, label, postings, at,
            piece=number, invoice_number=number, due=deadline,
        )  # fmt: skip
        status = "draft" if draft else "credit_note" if credit_of is not None else "upcoming"
        invoice = company.insert(
            "customer_invoices",
            {
                "id": invoice_id,
                "label": label,
                "invoice_number": number,
                "currency": "EUR",
                "amount": amount,
                "currency_amount": amount,
                "currency_amount_before_tax": before_tax,
                "exchange_rate": Decimal("1.0"),
                "date": when,
                "deadline": deadline,
                "currency_tax": tax,
                "tax": tax,
                "language": "fr_FR",
                "paid": False,
                "status": status,
                "discount": {"type": "relative", "value": "0"},
                "ledger_entry_id": entry["id"],
                "remaining_amount_with_tax": amount,
                "remaining_amount_without_tax": before_tax,
                "draft": draft,
                "credit_note": credit_of is not None,
                "customer_id": customer["id"],
                "credited_invoice_id": credit_of["id"] if credit_of is not None else None,
                "pdf_invoice_free_text": "",
                "pdf_invoice_subject": "",
                "external_reference": self.uuid(),
                "category_weights": self.categories(0.1),
                "created_at": at,
                "updated_at": at,
            },
        )
        for line in lines:
            company.insert("customer_invoice_lines", line)
        return invoice

    def supplier_invoice(self, at: datetime, when: date, supplier: Row) -> Row:
        rng, company = self.rng, self.company
        number = f"FA{rng.randint(10000, 99999)}-{company.next_count('supplier_invoice'):05d}"
        invoice_id = company.new_id("supplier_invoices")
        vat = rng.choices([code for code, _ in chart.VAT_WEIGHTS], [w for _, w in chart.VAT_WEIGHTS])[0]
        lines: list[Row] = []
        for index in range(rng.randint(1, 3)):
            before_tax = self.amount(20, 2500)
            tax = cents(before_tax * chart.VAT_RATES[vat])
            lines.append(
                {
                    "id": company.new_id("supplier_invoice_lines"),
                    "invoice_id": invoice_id,
                    "label": f"{supplier['name']} - ligne {index + 1}",
                    "amount": before_tax + tax,
                    "currency_amount": before_tax + tax,
                    "description": f"Prestation {supplier['name']} {when:%m/%Y}",
                    "vat_rate": vat,
                    "currency_amount_before_tax": before_tax,
                    "currency_tax": tax,
                    "tax": tax,
                    "imputation_dates": None,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        before_tax = sum((line["currency_amount_before_tax"] for line in lines), ZERO)
        tax = sum((line["tax"] for line in lines), ZERO)
        amount = before_tax + tax
        deadline = when + timedelta(days=supplier["supplier_due_date_delay"] or 30)
        label = f"Facture {supplier['name']} - {number}"
        postings: list[Posting] = [
            (supplier["expense_account_id"], before_tax, ZERO, label, self.categories(0.2)),
        ]
        if tax:
            postings.append((self.account_id(chart.VAT_DEDUCTIBLE), tax, ZERO, label, ()))
        postings.append((supplier["ledger_account_id"], ZERO, amount, label, ()))
        entry = self.post(
            company.journal_ids[chart.PURCHASES_JOURNAL[0]], when, label, postings, at,
            piece=number, invoice_number=number, due=deadline,
        )  # fmt: skip
        invoice = company.insert(
            "supplier_invoices",
            {
                "id": invoice_id,
                "label": label,
                "invoice_number": number,
                "currency": "EUR",
                "amount": amount,
                "currency_amount": amount,
                "currency_amount_before_tax": before_tax,
                "exchange_rate": Decimal("1.0"),
                "date": when,
                "deadline": deadline,
                "currency_tax": tax,
                "tax": tax,
                "reconciled": False,
                "accounting_status": "complete" if rng.random() < 0.9 else "validation_needed",
                "remaining_amount_with_tax": amount,
                "remaining_amount_without_tax": before_tax,
                "ledger_entry_id": entry["id"],
                "supplier_id": supplier["id"],
                "payment_status": "to_be_paid",
                "external_reference": self.uuid(),
                "category_weights": self.categories(0.1),
                "created_at": at,
                "updated_at": at,
            },
        )
        for line in lines:
            company.insert("supplier_invoice_lines", line)
        return invoice

    def delete_transaction(self, transaction_id: int, at: datetime) -> None:
        """A transaction and its bank-journal entry go together."""
        transaction = self.company.delete("transactions", transaction_id, at)
        if transaction is not None:
            self.delete_entry(transaction["ledger_entry_id"], at)

    def delete_invoice(self, resource: str, invoice_id: int, at: datetime) -> None:
        """An invoice, its lines and its ledger entry (with the entry's lines) go together."""
        invoice = self.company.delete(resource, invoice_id, at)
        if invoice is None:
            return
        lines = self.company.rows(resource.removesuffix("s") + "_lines")
        for line_id in [line["id"] for line in lines.values() if line["invoice_id"] == invoice_id]:
            self.company.delete(resource.removesuffix("s") + "_lines", line_id, at)
        self.delete_entry(invoice["ledger_entry_id"], at)

    # --- bank ---------------------------------------------------------------------------------------

    def transaction(
        self,
        at: datetime,
        when: date,
        amount: Decimal,
        label: str,
        counterpart_id: int,
        *,
        bank: Row | None = None,
        customer_id: int | None = None,
        supplier_id: int | None = None,
        attachment_required: bool = False,
    ) -> Row:
        """A bank movement (`amount` > 0 is money in) and its bank-journal entry."""
        company = self.company
        bank = bank or self.rng.choice(list(company.rows("bank_accounts").values()))
        categories = self.categories(0.2)
        postings: list[Posting] = [
            _side(bank["ledger_account_id"], amount, label),
            (*_side(counterpart_id, -amount, label)[:4], categories),
        ]
        entry = self.post(bank["journal_id"], when, label, postings, at, piece=f"TX{company.next_count('piece'):06d}")
        return company.insert(
            "transactions",
            {
                "id": company.new_id("transactions"),
                "label": label,
                "attachment_required": attachment_required,
                "date": when,
                "outstanding_balance": ZERO,
                "currency": "EUR",
                "currency_amount": amount,
                "amount": amount,
                "currency_fee": None,
                "fee": None,
                "journal_id": bank["journal_id"],
                "bank_account_id": bank["id"],
                "customer_id": customer_id,
                "supplier_id": supplier_id,
                "category_weights": categories,
                "interbank_code": None,
                "ledger_entry_id": entry["id"],
                "archived_at": None,
                "created_at": at,
                "updated_at": at,
            },
        )

    def pay(self, resource: str, invoice: Row, at: datetime, when: date) -> Row:
        """The payment of a customer or supplier invoice: a transaction lettered with the invoice."""
        company = self.company
        if resource == "customer_invoices":
            party = company.rows("customers")[invoice["customer_id"]]
            amount, label = invoice["amount"], f"VIR SEPA {party['name'].upper()} {invoice['invoice_number']}"
            transaction = self.transaction(at, when, amount, label, party["ledger_account_id"], customer_id=party["id"])
            invoice.update(paid=True, status="paid")
        else:
            party = company.rows("suppliers")[invoice["supplier_id"]]
            amount, label = -invoice["amount"], f"PRLV SEPA {party['name'].upper()} {invoice['invoice_number']}"
            transaction = self.transaction(at, when, amount, label, party["ledger_account_id"], supplier_id=party["id"])
            invoice.update(reconciled=True, payment_status="fully_paid")
        invoice.update(remaining_amount_with_tax=ZERO, remaining_amount_without_tax=ZERO)
        transaction["matched_invoice_id"] = invoice["id"]
        company.touch(resource, invoice, at)
        account = party["ledger_account_id"]
        invoice_entry = company.rows("ledger_entries")[invoice["ledger_entry_id"]]
        payment_entry = company.rows("ledger_entries")[transaction["ledger_entry_id"]]
        matched = [
            line
            for line in self.entry_lines(invoice_entry) + self.entry_lines(payment_entry)
            if line["ledger_account_id"] == account
        ]
        company.letter(matched, when)
        for line in matched:
            if line["created_at"] < at:
                company.touch("ledger_entry_lines", line, at)
        return transaction

    def bank_movement(self, at: datetime, when: date) -> Row:
        """A bank line that settles no invoice: fees, card spending, payroll, social charges, VAT, income."""
        rng, company = self.rng, self.company
        kind = rng.choices(("fees", "card", "salary", "urssaf", "vat", "income"), (20, 35, 15, 10, 5, 15))[0]
        if kind == "card" and company.rows("suppliers"):
            supplier = rng.choice(list(company.rows("suppliers").values()))
            return self.transaction(
                at, when, -self.amount(5, 350), f"CB {supplier['name'].upper()} {when:%d/%m}",
                supplier["expense_account_id"], supplier_id=supplier["id"], attachment_required=True,
            )  # fmt: skip
        if kind == "salary":
            person = f"{rng.choice(chart.FIRST_NAMES)} {rng.choice(chart.LAST_NAMES)}".upper()
            return self.transaction(
                at, when, -self.amount(1400, 3800), f"VIR SALAIRE {person}", self.account_id("421000")
            )
        if kind == "urssaf":
            return self.transaction(at, when, -self.amount(400, 2500), "PRLV SEPA URSSAF", self.account_id("431000"))
        if kind == "vat":
            return self.transaction(at, when, -self.amount(300, 6000), "PRLV DGFIP TVA", self.account_id(chart.VAT_DUE))
        if kind == "income":
            return self.transaction(at, when, self.amount(50, 2000), "VIR REMBOURSEMENT", self.account_id("758000"))
        return self.transaction(
            at, when, -self.amount(1.5, 45), "FRAIS TENUE DE COMPTE", self.account_id(chart.BANK_FEES)
        )

    # --- miscellaneous entries ----------------------------------------------------------------------

    def misc_entry(self, at: datetime, when: date) -> Row:
        rng = self.rng
        journal_id = self.company.journal_ids[chart.MISC_JOURNAL[0]]
        kind = rng.choices(("payroll", "depreciation", "vat", "other"), (25, 8, 7, 60))[0]
        acc = self.account_id
        if kind == "payroll":
            gross = self.amount(1800, 4500)
            employer, net = cents(gross * Decimal("0.42")), cents(gross * Decimal("0.78"))
            label = f"Salaires {when:%m/%Y}"
            postings: list[Posting] = [
                (acc("641000"), gross, ZERO, label, self.categories(0.3)),
                (acc("645000"), employer, ZERO, label, ()),
                (acc("421000"), ZERO, net, label, ()),
                (acc("431000"), ZERO, gross + employer - net, label, ()),
            ]
        elif kind == "depreciation":
            value, label = self.amount(50, 900), f"Dotation aux amortissements {when:%m/%Y}"
            postings = [(acc("681100"), value, ZERO, label, ()), (acc("281830"), ZERO, value, label, ())]
        elif kind == "vat":
            collected = self.amount(500, 8000)
            deductible = cents(collected * Decimal(rng.randint(10, 90)) / 100)
            label = f"Déclaration de TVA {when:%m/%Y}"
            postings = [
                (acc(chart.VAT_COLLECTED), collected, ZERO, label, ()),
                (acc(chart.VAT_DEDUCTIBLE), ZERO, deductible, label, ()),
                (acc(chart.VAT_DUE), ZERO, collected - deductible, label, ()),
            ]
        else:
            label = rng.choice(("Régularisation", "Écriture de reclassement", "Charges constatées d'avance"))
            label = f"{label} {when:%m/%Y}"
            postings = []
            net = ZERO
            pool = (*chart.EXPENSE_ACCOUNTS, "408100", "486000", "455000", chart.VAT_DEDUCTIBLE)
            for _ in range(rng.randint(3, 8) - 1):
                value = self.amount(10, 1500)
                debit = rng.random() < 0.6
                postings.append(
                    (acc(rng.choice(pool)), value if debit else ZERO, ZERO if debit else value, label,
                     self.categories(0.2))
                )  # fmt: skip
                net += value if debit else -value
            if net == ZERO:
                net = Decimal("0.01")
                postings[0] = (postings[0][0], postings[0][1] + net, postings[0][2], label, postings[0][4])
            postings.append(_side(acc("471000"), -net, label))
        return self.post(journal_id, when, label, postings, at, piece=f"OD{self.company.next_count('piece'):06d}")


def _side(account_id: int, signed: Decimal, label: str) -> Posting:
    """A posting of `signed` on one account: positive is a debit, negative a credit."""
    if signed >= 0:
        return (account_id, signed, ZERO, label, ())
    return (account_id, ZERO, -signed, label, ())
