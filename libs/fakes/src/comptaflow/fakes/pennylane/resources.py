"""The endpoints, as the spec declares them: scope, maximum `limit`, filterable fields and operators,
sortable fields, and whether the envelope keeps the deprecated page keys (present, null)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from comptaflow.fakes.pennylane.query import ALL_OPERATORS, Field
from comptaflow.fakes.pennylane.store import CHANGELOG_RESOURCES, Row

API_PREFIX = "/api/external/v2"
COMPARISONS = frozenset({"eq", "not_eq", "lt", "lteq", "gt", "gteq"})
MEMBERSHIP = frozenset({"eq", "not_eq", "in", "not_in"})


def _get(key: str) -> Callable[[Row], Any]:
    return lambda row: row.get(key)


def _categories(row: Row) -> list[int]:
    return [category_id for category_id, _ in row["category_weights"]]


def _day(key: str) -> Callable[[Row], Any]:
    """A sort key for a date column (ISO strings sort as dates and fit in a cursor)."""
    return lambda row: row[key].isoformat() if row.get(key) is not None else ""


def f(operators: frozenset[str] | set[str], kind: str, key: str) -> Field:
    return Field(frozenset(operators), kind, _get(key))


@dataclass(frozen=True, slots=True)
class Listing:
    table: str
    scope: str
    render: str
    max_limit: int = 100
    filters: Mapping[str, Field] = field(default_factory=dict)
    sorts: Mapping[str, Callable[[Row], Any]] = field(default_factory=lambda: {"id": _get("id")})
    page_keys: bool = False  # total_pages, current_page, per_page, total_items: present, null
    not_found: str | None = None  # the model named in 2026-style 404 bodies


BY_ID = {"id": _get("id")}
BY_ID_DATE = {"id": _get("id"), "date": _day("date")}

LISTINGS: dict[str, Listing] = {
    "customers": Listing(
        "customers",
        "customers:readonly",
        "customer",
        filters={
            "id": f(ALL_OPERATORS, "int", "id"),
            "customer_type": f({"eq", "not_eq"}, "str", "customer_type"),
            "ledger_account_id": f({"eq", "not_eq"}, "int", "ledger_account_id"),
            "name": f({"start_with", "eq"}, "str", "name"),
            "external_reference": f({"start_with", *MEMBERSHIP}, "str", "external_reference"),
            "reg_no": f(MEMBERSHIP, "str", "reg_no"),
            "emails": f({"in"}, "str", "emails"),
        },
    ),
    "suppliers": Listing(
        "suppliers",
        "suppliers:readonly",
        "supplier",
        filters={
            "id": f(ALL_OPERATORS, "int", "id"),
            "ledger_account_id": f({"eq", "not_eq"}, "int", "ledger_account_id"),
            "name": f({"start_with"}, "str", "name"),
            "external_reference": f(MEMBERSHIP, "str", "external_reference"),
            "emails": f({"in"}, "str", "emails"),
        },
    ),
    "customer_invoices": Listing(
        "customer_invoices",
        "customer_invoices:readonly",
        "customer_invoice",
        filters={
            "id": f(ALL_OPERATORS, "int", "id"),
            "date": f(ALL_OPERATORS, "date", "date"),
            "customer_id": f(ALL_OPERATORS, "int", "customer_id"),
            "billing_subscription_id": f(ALL_OPERATORS, "int", "billing_subscription_id"),
            "quote_id": f(ALL_OPERATORS, "int", "quote_id"),
            "invoice_number": f(MEMBERSHIP, "str", "invoice_number"),
            "draft": f({"eq"}, "bool", "draft"),
            "credit_note": f({"eq"}, "bool", "credit_note"),
            "external_reference": f({"eq"}, "str", "external_reference"),
            "category_id": Field(frozenset({"in"}), "int", _categories),
        },
        sorts=BY_ID_DATE,
    ),
    "supplier_invoices": Listing(
        "supplier_invoices",
        "supplier_invoices:readonly",
        "supplier_invoice",
        filters={
            "id": f(ALL_OPERATORS, "int", "id"),
            "supplier_id": f(ALL_OPERATORS, "int", "supplier_id"),
            "date": f(ALL_OPERATORS, "date", "date"),
            "invoice_number": f(MEMBERSHIP, "str", "invoice_number"),
            "external_reference": f(MEMBERSHIP, "str", "external_reference"),
            "payment_status": f(MEMBERSHIP, "str", "payment_status"),
            "category_id": Field(frozenset({"in"}), "int", _categories),
        },
        sorts=BY_ID_DATE,
    ),
    "products": Listing(
        "products",
        "products:readonly",
        "product",
        filters={
            "id": f(ALL_OPERATORS, "int", "id"),
            "label": f({"eq", "in"}, "str", "label"),
            "reference": f({"eq", "in"}, "str", "reference"),
            "external_reference": f(MEMBERSHIP, "str", "external_reference"),
        },
    ),
    "transactions": Listing(
        "transactions",
        "transactions:readonly",
        "transaction",
        filters={
            "id": f(MEMBERSHIP, "int", "id"),
            "bank_account_id": f(MEMBERSHIP, "int", "bank_account_id"),
            "journal_id": f(MEMBERSHIP, "int", "journal_id"),
            "date": f(COMPARISONS, "date", "date"),
        },
    ),
    "ledger_entries": Listing(
        "ledger_entries",
        "ledger_entries:readonly",
        "ledger_entry",
        filters={
            "id": f(ALL_OPERATORS, "int", "id"),
            "date": f(COMPARISONS, "date", "date"),
            "journal_id": f(ALL_OPERATORS, "int", "journal_id"),
        },
        sorts=BY_ID_DATE,
        page_keys=True,
        not_found="LedgerEntry",
    ),
    "ledger_entry_lines": Listing(
        "ledger_entry_lines",
        "ledger_entries:readonly",
        "ledger_entry_line",
        filters={
            "id": f(ALL_OPERATORS, "int", "id"),
            "journal_id": f(ALL_OPERATORS, "int", "journal_id"),
            "ledger_account_id": f(ALL_OPERATORS, "int", "ledger_account_id"),
            "date": f(ALL_OPERATORS, "date", "date"),
        },
        sorts=BY_ID_DATE,
        not_found="LedgerEntryLine",
    ),
    "ledger_accounts": Listing(
        "ledger_accounts",
        "ledger_accounts:readonly",
        "ledger_account",
        max_limit=1000,
        filters={
            "id": f(ALL_OPERATORS, "int", "id"),
            "number": f({"start_with", "eq", "in"}, "str", "number"),
            "enabled": f({"eq"}, "bool", "enabled"),
        },
        page_keys=True,
        not_found="LedgerAccount",
    ),
    "journals": Listing(
        "journals",
        "journals:readonly",
        "journal",
        filters={"type": f(MEMBERSHIP, "str", "type")},
        page_keys=True,
        not_found="Journal",
    ),
    "bank_accounts": Listing("bank_accounts", "bank_accounts:readonly", "bank_account"),
    "fiscal_years": Listing(
        "fiscal_years",
        "fiscal_years:readonly",
        "fiscal_year",
        sorts={"id": _get("id"), "start": _day("start")},
        page_keys=True,
    ),
    "categories": Listing(
        "categories",
        "categories:readonly",
        "category",
        filters={
            "id": f(ALL_OPERATORS, "int", "id"),
            "label": f({"start_with", "eq", "in"}, "str", "label"),
            "category_group_id": f(ALL_OPERATORS, "int", "category_group_id"),
            "analytical_code": f(MEMBERSHIP, "str", "analytical_code"),
        },
    ),
}

# Endpoints whose spec declares no `filter` parameter: a `filter` sent to them is ignored, like any
# undeclared query parameter.
UNFILTERED = frozenset({"bank_accounts", "fiscal_years"})

# `GET /{path}/{id}`: the listing whose table, scope and renderer serve it.
DETAILS: dict[str, str] = {
    name: name for name in (*CHANGELOG_RESOURCES, "ledger_accounts", "journals", "bank_accounts", "categories")
}

# Sub-collections: (parent listing, line table, sortable fields, filters, page keys).
SUB_LISTS: dict[str, tuple[str, str, Mapping[str, Callable[[Row], Any]], Mapping[str, Field], bool]] = {
    "customer_invoices": (
        "customer_invoices",
        "customer_invoice_lines",
        {"id": _get("id"), "rank": _get("rank")},
        {},
        False,
    ),
    "supplier_invoices": ("supplier_invoices", "supplier_invoice_lines", BY_ID, {}, False),
    "ledger_entries": (
        "ledger_entries",
        "ledger_entry_lines",
        BY_ID,
        {"ledger_account_id": f(ALL_OPERATORS, "int", "ledger_account_id")},
        True,
    ),
}

CHANGELOG_SCOPES: dict[str, str] = {
    "customers": "customers:readonly",
    "suppliers": "suppliers:readonly",
    "customer_invoices": "customer_invoices:readonly",
    "supplier_invoices": "supplier_invoices:readonly",
    "products": "products:readonly",
    "transactions": "transactions:readonly",
    "ledger_entry_lines": "ledger_entries:readonly",
}
CHANGELOG_MAX_LIMIT = 1000
TRIAL_BALANCE_SCOPE = "trial_balance:readonly"
EXPORT_SCOPES = {"fecs": "exports:fec", "general_ledgers": "exports:gl", "analytical_general_ledgers": "exports:agl"}

# Every `:readonly` scope of the spec, and the export scopes: what a token gets unless told otherwise.
READ_SCOPES: tuple[str, ...] = tuple(
    f"{family}:readonly"
    for family in (
        "bank_accounts",
        "bank_establishments",
        "billing_subscriptions",
        "categories",
        "commercial_documents",
        "customer_invoice_templates",
        "customer_invoices",
        "customer_mandates",
        "customers",
        "file_attachments",
        "fiscal_years",
        "journals",
        "ledger_accounts",
        "ledger_entries",
        "pa_registrations",
        "products",
        "purchase_requests",
        "quotes",
        "supplier_invoices",
        "suppliers",
        "transactions",
        "trial_balance",
    )
)
DEFAULT_SCOPES: tuple[str, ...] = (*READ_SCOPES, "exports:fec", "exports:gl", "exports:agl")
