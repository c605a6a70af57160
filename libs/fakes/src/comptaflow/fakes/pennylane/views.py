"""What the API serves for a row: the spec's keys in the spec's order, every declared key present (null
where nullable), money as strings, references `{id, url}` pointing back at the serving host.

`View(company, base)` renders for one request; `base` is `<scheme>://<host>/api/external/v2`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from comptaflow.fakes.pennylane.formats import ZERO, day, money, timestamp
from comptaflow.fakes.pennylane.store import Company, Row

Item = dict[str, Any]


def _mandates_filter(customer_id: int) -> str:
    return quote(json.dumps([{"field": "customer_id", "operator": "eq", "value": str(customer_id)}]))


class View:
    def __init__(self, company: Company, base: str) -> None:
        self.company = company
        self.base = base
        self._balances: dict[int, Decimal] | None = None

    def ref(self, path: str, row_id: int | None) -> Item | None:
        return None if row_id is None else {"id": row_id, "url": f"{self.base}/{path}/{row_id}"}

    def link(self, path: str) -> Item:
        return {"url": f"{self.base}/{path}"}

    def categories(self, weights: Sequence[tuple[int, Decimal]]) -> list[Item]:
        table = self.company.rows("categories")
        items = []
        for category_id, weight in weights:
            category = table.get(category_id)
            if category is None:
                continue
            items.append(
                {
                    "id": category_id,
                    "label": category["label"],
                    "weight": str(weight),
                    "category_group": {"id": category["category_group_id"]},
                    "analytical_code": category["analytical_code"],
                    "created_at": timestamp(category["created_at"]),
                    "updated_at": timestamp(category["updated_at"]),
                }
            )
        return items

    def account_ref(self, account_id: int) -> Item:
        account = self.company.rows("ledger_accounts").get(account_id)
        number = account["number"] if account is not None else ""
        return {"id": account_id, "number": number, "url": f"{self.base}/ledger_accounts/{account_id}"}

    # --- third parties and products -----------------------------------------------------------------

    def customer(self, row: Row) -> Item:
        item: Item = {
            "id": row["id"],
            "name": row["name"],
            "billing_iban": row["billing_iban"],
            "payment_conditions": row["payment_conditions"],
            "recipient": row["recipient"],
            "phone": row["phone"],
            "reference": row["reference"],
            "notes": row["notes"],
        }
        if row["customer_type"] == "company":
            item |= {"vat_number": row["vat_number"], "reg_no": row["reg_no"]}
        else:
            item |= {"first_name": row["first_name"], "last_name": row["last_name"]}
        filter_ = _mandates_filter(row["id"])
        return item | {
            "ledger_account": {"id": row["ledger_account_id"]} if row["ledger_account_id"] else None,
            "emails": list(row["emails"]),
            "billing_address": dict(row["billing_address"]),
            "delivery_address": dict(row["delivery_address"]),
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
            "customer_type": row["customer_type"],
            "external_reference": row["external_reference"],
            "billing_language": row["billing_language"],
            "mandates": self.link(f"gocardless_mandates?filter={filter_}"),
            "pro_account_mandates": self.link(f"pro_account/mandates?filter={filter_}"),
            "contacts": self.link(f"customers/{row['id']}/contacts"),
        }

    def supplier(self, row: Row) -> Item:
        return {
            "id": row["id"],
            "name": row["name"],
            "establishment_no": row["establishment_no"],
            "reg_no": row["reg_no"],
            "vat_number": row["vat_number"],
            "ledger_account": {"id": row["ledger_account_id"]} if row["ledger_account_id"] else None,
            "emails": list(row["emails"]),
            "iban": row["iban"],
            "postal_address": dict(row["postal_address"]),
            "supplier_payment_method": row["supplier_payment_method"],
            "supplier_due_date_delay": row["supplier_due_date_delay"],
            "supplier_due_date_rule": row["supplier_due_date_rule"],
            "external_reference": row["external_reference"],
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
        }

    def product(self, row: Row) -> Item:
        return {
            "id": row["id"],
            "label": row["label"],
            "description": row["description"],
            "external_reference": row["external_reference"],
            "price_before_tax": money(row["price_before_tax"]),
            "vat_rate": row["vat_rate"],
            "price": money(row["price"]),
            "unit": row["unit"],
            "currency": row["currency"],
            "reference": row["reference"],
            "ledger_account": {"id": row["ledger_account_id"]} if row["ledger_account_id"] else None,
            "archived_at": _maybe_timestamp(row["archived_at"]),
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
        }

    # --- invoices -----------------------------------------------------------------------------------

    def _amounts(self, row: Row) -> Item:
        return {
            "id": row["id"],
            "label": row["label"],
            "invoice_number": row["invoice_number"],
            "currency": row["currency"],
            "amount": money(row["amount"]),
            "currency_amount": money(row["currency_amount"]),
            "currency_amount_before_tax": money(row["currency_amount_before_tax"]),
            "exchange_rate": str(row["exchange_rate"]),
            "date": _maybe_day(row["date"]),
            "deadline": _maybe_day(row["deadline"]),
            "currency_tax": money(row["currency_tax"]),
            "tax": money(row["tax"]),
        }

    def customer_invoice(self, row: Row) -> Item:
        path = f"customer_invoices/{row['id']}"
        return self._amounts(row) | {
            "language": row["language"],
            "paid": row["paid"],
            "status": row["status"],
            "discount": dict(row["discount"]),
            "ledger_entry": {"id": row["ledger_entry_id"]},
            "public_file_url": None,
            "filename": None,
            "remaining_amount_with_tax": _maybe_money(row["remaining_amount_with_tax"]),
            "remaining_amount_without_tax": _maybe_money(row["remaining_amount_without_tax"]),
            "draft": row["draft"],
            "special_mention": None,
            "customer": self.ref("customers", row["customer_id"]),
            "invoice_line_sections": self.link(f"{path}/invoice_line_sections"),
            "invoice_lines": self.link(f"{path}/invoice_lines"),
            "custom_header_fields": self.link(f"{path}/custom_header_fields"),
            "categories": self.link(f"{path}/categories"),
            "pdf_invoice_free_text": row["pdf_invoice_free_text"],
            "pdf_invoice_subject": row["pdf_invoice_subject"],
            "pdf_description": None,
            "billing_subscription": None,
            "credited_invoice": self.ref("customer_invoices", row["credited_invoice_id"]),
            "customer_invoice_template": None,
            "transaction_reference": None,
            "payments": self.link(f"{path}/payments"),
            "matched_transactions": self.link(f"{path}/matched_transactions"),
            "appendices": self.link(f"{path}/appendices"),
            "quote": None,
            "external_reference": row["external_reference"],
            "e_invoicing": None,
            "archived_at": None,
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
        }

    def supplier_invoice(self, row: Row) -> Item:
        path = f"supplier_invoices/{row['id']}"
        return self._amounts(row) | {
            "reconciled": row["reconciled"],
            "accounting_status": row["accounting_status"],
            "filename": None,
            "public_file_url": None,
            "remaining_amount_with_tax": _maybe_money(row["remaining_amount_with_tax"]),
            "remaining_amount_without_tax": _maybe_money(row["remaining_amount_without_tax"]),
            "ledger_entry": {"id": row["ledger_entry_id"]},
            "supplier": self.ref("suppliers", row["supplier_id"]),
            "invoice_lines": self.link(f"{path}/invoice_lines"),
            "categories": self.link(f"{path}/categories"),
            "transaction_reference": None,
            "payment_status": row["payment_status"],
            "payments": self.link(f"{path}/payments"),
            "matched_transactions": self.link(f"{path}/matched_transactions"),
            "external_reference": row["external_reference"],
            "e_invoicing": None,
            "archived_at": None,
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
        }

    def customer_invoice_line(self, row: Row) -> Item:
        return {
            "id": row["id"],
            "label": row["label"],
            "unit": row["unit"],
            "quantity": str(row["quantity"]),
            "amount": money(row["amount"]),
            "currency_amount": money(row["currency_amount"]),
            "description": row["description"],
            "product": self.ref("products", row["product_id"]),
            "vat_rate": row["vat_rate"],
            "currency_amount_before_tax": money(row["currency_amount_before_tax"]),
            "currency_tax": money(row["currency_tax"]),
            "tax": money(row["tax"]),
            "raw_currency_unit_price": money(row["raw_currency_unit_price"]),
            "discount": dict(row["discount"]),
            "section_rank": row["section_rank"],
            "imputation_dates": row["imputation_dates"],
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
        }

    def supplier_invoice_line(self, row: Row) -> Item:
        return {
            "id": row["id"],
            "label": row["label"],
            "amount": money(row["amount"]),
            "currency_amount": money(row["currency_amount"]),
            "description": row["description"],
            "vat_rate": row["vat_rate"],
            "currency_amount_before_tax": money(row["currency_amount_before_tax"]),
            "currency_tax": money(row["currency_tax"]),
            "tax": money(row["tax"]),
            "imputation_dates": row["imputation_dates"],
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
        }

    # --- bank ---------------------------------------------------------------------------------------

    def transaction(self, row: Row) -> Item:
        return {
            "id": row["id"],
            "label": row["label"],
            "attachment_required": row["attachment_required"],
            "date": day(row["date"]),
            "outstanding_balance": _maybe_money(row["outstanding_balance"]),
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
            "archived_at": _maybe_timestamp(row["archived_at"]),
            "currency": row["currency"],
            "currency_amount": money(row["currency_amount"]),
            "amount": money(row["amount"]),
            "currency_fee": _maybe_money(row["currency_fee"]),
            "fee": _maybe_money(row["fee"]),
            "journal": self.ref("journals", row["journal_id"]),
            "bank_account": self.ref("bank_accounts", row["bank_account_id"]),
            "pro_account_expense": None,
            "customer": self.ref("customers", row["customer_id"]),
            "supplier": self.ref("suppliers", row["supplier_id"]),
            "categories": self.categories(row["category_weights"]),
            "matched_invoices": self.link(f"transactions/{row['id']}/matched_invoices"),
            "interbank_code": row["interbank_code"],
        }

    def bank_account(self, row: Row) -> Item:
        if self._balances is None:
            self._balances = {}
            for transaction in self.company.rows("transactions").values():
                bank_id = transaction["bank_account_id"]
                self._balances[bank_id] = self._balances.get(bank_id, ZERO) + transaction["amount"]
        return {
            "id": row["id"],
            "name": row["name"],
            "currency": row["currency"],
            "balance": money(self._balances.get(row["id"], ZERO)),
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
            "bank_establishment": {"id": row["bank_establishment_id"]},
            "journal": self.ref("journals", row["journal_id"]),
            "ledger_account": self.ref("ledger_accounts", row["ledger_account_id"]),
        }

    # --- ledger -------------------------------------------------------------------------------------

    def ledger_entry_line(self, row: Row) -> Item:
        return {
            "id": row["id"],
            "debit": money(row["debit"]),
            "credit": money(row["credit"]),
            "label": row["label"],
            "categories": self.categories(row["category_weights"]),
            "ledger_account": self.account_ref(row["ledger_account_id"]),
            "journal": self.ref("journals", row["journal_id"]),
            "date": day(row["date"]),
            "ledger_entry": {"id": row["entry_id"]},
            "lettered_ledger_entry_lines": {
                "ids": self.company.lettered_with(row),
                "url": f"{self.base}/ledger_entry_lines/{row['id']}/lettered_ledger_entry_lines",
            },
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
        }

    def entry_line(self, row: Row) -> Item:
        """A line as `/ledger_entries/{id}/ledger_entry_lines` lists it."""
        return {
            "id": row["id"],
            "debit": money(row["debit"]),
            "credit": money(row["credit"]),
            "label": row["label"],
            "ledger_account_id": row["ledger_account_id"],
            "ledger_account": self.account_ref(row["ledger_account_id"]),
        }

    def ledger_entry(self, row: Row) -> Item:
        """An entry as `/ledger_entries` lists it."""
        return {
            "id": row["id"],
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
            "label": row["label"],
            "piece_number": row["piece_number"],
            "date": _maybe_day(row["date"]),
            "due_date": _maybe_day(row["due_date"]),
            "invoice_number": row["invoice_number"],
            "journal_id": row["journal_id"],
            "journal": self.ref("journals", row["journal_id"]),
            "categories": self.categories(row["category_weights"]),
            "ledger_attachment_filename": None,
            "attachment": None,
        }

    def ledger_entry_detail(self, row: Row) -> Item:
        """An entry as `/ledger_entries/{id}` returns it, its lines inline."""
        lines = self.company.rows("ledger_entry_lines")
        return {
            "id": row["id"],
            "label": row["label"] or "",
            "piece_number": row["piece_number"],
            "date": day(row["date"]),
            "due_date": _maybe_day(row["due_date"]),
            "invoice_number": row["invoice_number"],
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
            "journal": self.ref("journals", row["journal_id"]),
            "categories": self.categories(row["category_weights"]),
            "attachment": None,
            "ledger_entry_lines": [
                {
                    "id": line["id"],
                    "debit": money(line["debit"]),
                    "credit": money(line["credit"]),
                    "ledger_account": self.account_ref(line["ledger_account_id"]),
                    "label": line["label"],
                }
                for line in (lines[line_id] for line_id in row["line_ids"] if line_id in lines)
            ],
        }

    def ledger_account(self, row: Row) -> Item:
        return {
            "id": row["id"],
            "number": row["number"],
            "label": row["label"],
            "vat_rate": row["vat_rate"],
            "country_alpha2": row["country_alpha2"],
            "enabled": row["enabled"],
            "type": row["type"],
            "letterable": row["letterable"],
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
        }

    def journal(self, row: Row) -> Item:
        return {"code": row["code"], "id": row["id"], "label": row["label"], "type": row["type"]}

    def fiscal_year(self, row: Row) -> Item:
        return {
            "id": row["id"],
            "start": day(row["start"]),
            "finish": day(row["finish"]),
            "status": row["status"],
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
        }

    def category(self, row: Row) -> Item:
        return {
            "id": row["id"],
            "label": row["label"],
            "direction": row["direction"],
            "created_at": timestamp(row["created_at"]),
            "updated_at": timestamp(row["updated_at"]),
            "category_group": {"id": row["category_group_id"]},
            "analytical_code": row["analytical_code"],
        }

    def renderer(self, resource: str) -> Callable[[Row], Item]:
        """The list-item renderer of a table."""
        return {
            "customers": self.customer,
            "suppliers": self.supplier,
            "products": self.product,
            "customer_invoices": self.customer_invoice,
            "supplier_invoices": self.supplier_invoice,
            "customer_invoice_lines": self.customer_invoice_line,
            "supplier_invoice_lines": self.supplier_invoice_line,
            "transactions": self.transaction,
            "bank_accounts": self.bank_account,
            "ledger_entry_lines": self.ledger_entry_line,
            "ledger_entries": self.ledger_entry,
            "ledger_accounts": self.ledger_account,
            "journals": self.journal,
            "fiscal_years": self.fiscal_year,
            "categories": self.category,
        }[resource]


def _maybe_money(value: Decimal | None) -> str | None:
    return None if value is None else money(value)


def _maybe_day(value: Any) -> str | None:
    return None if value is None else day(value)


def _maybe_timestamp(value: Any) -> str | None:
    return None if value is None else timestamp(value)
