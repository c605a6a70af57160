"""A tenant's Pennylane schema: migrations applied once, under the tenant's lock, and typed columns that
are exact projections of the stored items (the items: the spec's example values for each endpoint)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from comptaflow.common.db import Conn
from comptaflow.common.locks import Namespace, advisory_xact_lock
from comptaflow.common.pennylane import tables
from comptaflow.common.pennylane.connections import schema_name
from comptaflow.pennylane_sync import schema
from comptaflow.pennylane_sync.schema import (
    EXTRA,
    KEYS,
    OPTIONAL_KEYS,
    REQUIRED_KEYS,
    migrate_tenant,
    migration_versions,
    missing_keys,
)

SYNCED_AT = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
T = datetime(2023, 8, 30, 10, 8, 8, 146343, tzinfo=UTC)
"""The spec's example timestamp, "2023-08-30T10:08:08.146343Z"."""
TS = "2023-08-30T10:08:08.146343Z"
API = "https://app.pennylane.com/api/external/v2"


def tenant_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def verbatim(item: Mapping[str, Any], names: str) -> dict[str, Any]:
    """The expected values of text columns that hold the item's field as it is (names separated by spaces)."""
    return {name: item[name] for name in names.split()}


# One item per table (two for customers, a oneOf), from the spec's `example` values of each endpoint's
# response schema; fields without an example get a realistic value, and distinct ids where the spec repeats
# one (so that a column reading the wrong reference shows). Each with the plain columns the writer fills
# besides the item's own keys and the typed values its generated columns must hold, every one of them.

ADDRESS = {"address": "4 rue de Lisbonne", "postal_code": "75008", "city": "Paris", "country_alpha2": "FR"}
CUSTOMER_COMMON = {
    "billing_iban": "FR1420041010050500013M02606",
    "payment_conditions": "30_days",
    "recipient": "John Doe",
    "phone": "+33612345678",
    "reference": "REF-1234",
    "notes": "Some notes",
    "emails": ["hello@example.org"],
    "billing_address": ADDRESS,
    "delivery_address": {
        "address": "1 quai Saint-Antoine",
        "postal_code": "69002",
        "city": "Lyon",
        "country_alpha2": "FR",
    },
    "created_at": TS,
    "updated_at": TS,
    "external_reference": "0e67fc3c-c632-4feb-ad34-e18ed5fbf66a",
    "billing_language": "fr_FR",
    "mandates": {"url": f"{API}/gocardless_mandates?filter=%5B%5D"},
    "pro_account_mandates": {"url": f"{API}/pro_account/mandates?filter=%5B%5D"},
    "contacts": {"url": f"{API}/customers/42/contacts"},
}
COMPANY = {
    "id": 42,
    "name": "My company",
    **CUSTOMER_COMMON,
    "vat_number": "FR12345678901",
    "reg_no": "123456789",
    "ledger_account": {"id": 4110042},
    "customer_type": "company",
}
INDIVIDUAL = {
    "id": 43,
    "name": "John Doe",
    **CUSTOMER_COMMON,
    "first_name": "John",
    "last_name": "Doe",
    "delivery_address": {
        "address": "3 cours du Chapeau-Rouge",
        "postal_code": "33000",
        "city": "Bordeaux",
        "country_alpha2": "FR",
    },
    "ledger_account": None,
    "customer_type": "individual",
}
CUSTOMER_TYPED = {
    **verbatim(COMPANY, "billing_iban payment_conditions recipient phone reference notes external_reference"),
    "billing_language": "fr_FR",
    "billing_address_postal_code": "75008",
    "billing_address_city": "Paris",
    "billing_address_country_alpha2": "FR",
    "created_at": T,
    "updated_at": T,
}

SUPPLIER = {
    "id": 456,
    "name": "Pennylane",
    "establishment_no": "82762938500014",
    "reg_no": "827629385",
    "vat_number": "FR32123456789",
    "ledger_account": {"id": 4010456},
    "emails": ["hello@example.org"],
    "iban": "FRXXXXXXXXXXXXXXXXXXXXXXXXX",
    "postal_address": ADDRESS,
    "supplier_payment_method": "automatic_transfer",
    "supplier_due_date_delay": 30,
    "supplier_due_date_rule": "days",
    "external_reference": "FR123",
    "created_at": TS,
    "updated_at": TS,
}

PRODUCT = {
    "id": 1,
    "label": "Product 1",
    "description": "This is product 1",
    "external_reference": "0e67fc3c-c632-4feb-ad34-e18ed5fbf66a",
    "price_before_tax": "12.5",
    "vat_rate": "FR_200",
    "price": "13.6",
    "unit": "piece",
    "currency": "EUR",
    "reference": "REF-123",
    "ledger_account": {"id": 7060001},
    "archived_at": "2023-09-30T10:08:08.146343Z",
    "created_at": TS,
    "updated_at": TS,
}

CUSTOMER_INVOICE = {
    "id": 42,
    "label": "Invoice label",
    "invoice_number": "F20230001",
    "currency": "EUR",
    "amount": "230.32",
    "currency_amount": "230.32",
    "currency_amount_before_tax": "196.32",
    "exchange_rate": "1.0",
    "date": "2023-08-30",
    "deadline": "2020-09-02",
    "currency_tax": "34.0",
    "tax": "34.0",
    "language": "fr_FR",
    "paid": False,
    "status": "partially_paid",
    "discount": {"type": "absolute", "value": "25"},
    "ledger_entry": {"id": 42002},
    "public_file_url": "https://app.pennylane.com/public/invoice/pdf?encrypted_id=bzjoVJe...3D%3D",
    "filename": "my_file.pdf",
    "remaining_amount_with_tax": "20.0",
    "remaining_amount_without_tax": "16.0",
    "draft": False,
    "special_mention": "Additional details",
    "customer": {"id": 42, "url": f"{API}/customers/42"},
    "invoice_line_sections": {"url": f"{API}/customer_invoices/42/invoice_line_sections"},
    "invoice_lines": {"url": f"{API}/customer_invoices/42/invoice_lines"},
    "custom_header_fields": {"url": f"{API}/customer_invoices/42/custom_header_fields"},
    "categories": {"url": f"{API}/customer_invoices/42/categories"},
    "pdf_invoice_free_text": "Thanks for paying this invoice",
    "pdf_invoice_subject": "Invoice subject",
    "pdf_description": "Invoice description",
    "billing_subscription": {"id": 7},
    "credited_invoice": {"id": 40, "url": f"{API}/customer_invoices/40"},
    "customer_invoice_template": {"id": 3},
    "transaction_reference": {
        "banking_provider": "bank",
        "provider_field_name": "label",
        "provider_field_value": "invoice_number",
    },
    "payments": {"url": f"{API}/customer_invoices/42/payments"},
    "matched_transactions": {"url": f"{API}/customer_invoices/42/matched_transactions"},
    "appendices": {"url": f"{API}/customer_invoices/42/appendices"},
    "quote": {"id": 41},
    "external_reference": "FR123",
    "e_invoicing": {"status": "accepted", "reason": None},
    "archived_at": TS,
    "created_at": TS,
    "updated_at": TS,
}

CUSTOMER_INVOICE_LINE = {
    "id": 444,
    "label": "Demo label",
    "unit": "piece",
    "quantity": "12",
    "amount": "50.4",
    "currency_amount": "50.4",
    "description": "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor",
    "product": {"id": 3049, "url": f"{API}/products/3049"},
    "vat_rate": "FR_200",
    "currency_amount_before_tax": "30",
    "currency_tax": "10",
    "tax": "10",
    "raw_currency_unit_price": "5",
    "discount": {"type": "absolute", "value": 25},  # a JSON number in the spec's example
    "section_rank": 1,
    "imputation_dates": {"start_date": "2020-06-30", "end_date": "2021-06-30"},
    "created_at": TS,
    "updated_at": TS,
}

SUPPLIER_INVOICE = {
    "id": 123,
    "label": "Demo label",
    "invoice_number": "F20230001",
    "currency": "USD",
    "amount": "230.32",
    "currency_amount": "251.05",
    "currency_amount_before_tax": "213.99",
    "exchange_rate": "1.09",
    "date": "2023-08-30",
    "deadline": "2023-09-30",
    "currency_tax": "37.06",
    "tax": "34.0",
    "reconciled": True,
    "accounting_status": "validation_needed",
    "filename": "my_file.pdf",
    "public_file_url": "https://app.pennylane.com/public/invoice/pdf?encrypted_id=bzjoVJe...3D%3D",
    "remaining_amount_with_tax": "20.0",
    "remaining_amount_without_tax": "16.0",
    "ledger_entry": {"id": 42003},
    "supplier": {"id": 456, "url": f"{API}/suppliers/456"},
    "invoice_lines": {"url": f"{API}/supplier_invoices/123/invoice_lines"},
    "categories": {"url": f"{API}/supplier_invoices/123/categories"},
    "transaction_reference": None,
    "payment_status": "to_be_paid",
    "payments": {"url": f"{API}/supplier_invoices/123/payments"},
    "matched_transactions": {"url": f"{API}/supplier_invoices/123/matched_transactions"},
    "external_reference": "FR123",
    "e_invoicing": {"status": "waiting_for_validation", "reason": "incorrect_vat_rate"},
    "archived_at": None,
    "created_at": TS,
    "updated_at": TS,
}

SUPPLIER_INVOICE_LINE = {
    "id": 445,
    "label": "Demo label",
    "amount": "50.4",
    "currency_amount": "50.4",
    "description": "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor",
    "vat_rate": "FR_200",
    "currency_amount_before_tax": "30",
    "currency_tax": "10",
    "tax": "10",
    "imputation_dates": None,
    "created_at": TS,
    "updated_at": TS,
}

CATEGORY_OF_LINE = {
    "id": 421,
    "label": "HR - Salaries",
    "weight": "0.25",
    "category_group": {"id": 229},
    "analytical_code": "CODE123",
    "created_at": TS,
    "updated_at": TS,
}

TRANSACTION = {
    "id": 42,
    "label": "VIR SEPA MY SUPPLIER SAS",
    "attachment_required": True,
    "date": "2023-08-30",
    "outstanding_balance": "49.3",
    "created_at": TS,
    "updated_at": TS,
    "archived_at": None,
    "currency": "EUR",
    "currency_amount": "120.00",
    "amount": "120.00",
    "currency_fee": "0.35",
    "fee": "0.35",
    "journal": {"id": 234, "url": f"{API}/journals/234"},
    "bank_account": {"id": 53, "url": f"{API}/bank_accounts/53"},
    "pro_account_expense": {
        "employee": {"id": 42, "first_name": "John", "last_name": "Doe"},
        "card_masked_number": "123456XXXXXX7890",
    },
    "customer": None,
    "supplier": {"id": 456, "url": f"{API}/supplier/456"},
    "categories": [CATEGORY_OF_LINE],
    "matched_invoices": {"url": f"{API}/transactions/42/matched_invoices"},
    "interbank_code": "B1D",
}

LEDGER_ENTRY_LINE = {
    "id": 42,
    "debit": "100.00",
    "credit": "0.00",
    "label": "Employees - Jean Dupont / Salary May 2023",
    "categories": [CATEGORY_OF_LINE],
    "ledger_account": {"id": 987, "number": "411000", "url": f"{API}/ledger_accounts/987"},
    "journal": {"id": 123, "url": f"{API}/journals/123"},
    "date": "2023-08-30",
    "ledger_entry": {"id": 123001},
    "lettered_ledger_entry_lines": {"ids": [42, 1271004], "url": f"{API}/ledger_entry_lines/42/lettered"},
    "created_at": TS,
    "updated_at": TS,
}

LEDGER_ENTRY = {
    "id": 1,
    "created_at": "2023-06-14T12:12:56.146343Z",
    "updated_at": TS,
    "label": "Payment for Services",
    "piece_number": "TENSNYLUGV",
    "date": "2023-08-30",
    "due_date": "2023-09-29",
    "invoice_number": "FAC-2024-001",
    "journal_id": 123,
    "journal": {"id": 123, "url": f"{API}/journals/123"},
    "categories": [CATEGORY_OF_LINE],
    "ledger_attachment_filename": "filename.pdf",
    "attachment": {"filename": "filename.pdf", "url": "http://www.pennylane.com/rails/active_storage/blobs/f.pdf"},
}

LEDGER_ACCOUNT = {
    "id": 124,
    "number": "512",
    "label": "Secondary Account",
    "vat_rate": "any",
    "country_alpha2": "FR",
    "enabled": True,
    "type": "custom",
    "letterable": False,
    "created_at": TS,
    "updated_at": TS,
}

JOURNAL = {"id": 67, "code": "HA", "label": "Achats", "type": "purchase"}

BANK_ACCOUNT = {
    "id": 53,
    "name": "Main account",
    "currency": "EUR",
    "balance": "100.15",
    "created_at": TS,
    "updated_at": TS,
    "bank_establishment": {"id": 42},
    "journal": {"id": 7, "url": f"{API}/journals/7"},
    "ledger_account": {"id": 8, "url": f"{API}/ledger_accounts/8"},
}

FISCAL_YEAR = {
    "id": 12,
    "start": "2023-01-01",
    "finish": "2023-12-31",
    "status": "open",
    "created_at": TS,
    "updated_at": TS,
}

CATEGORY = {
    "id": 42,
    "label": "Alimentaire",
    "direction": "cash_in",
    "created_at": TS,
    "updated_at": TS,
    "category_group": {"id": 348},
    "analytical_code": "CODE123",
}

TRIAL_BALANCE = {
    "number": "512",
    "formatted_number": "51200000",
    "label": "Capital souscrit - appelé, versé",
    "debits": "45353.95",
    "credits": "2343.05",
}

# A line of tests/fixtures/fec/000000000FEC20231231.txt, as `fec.rows` reads it.
FEC_LINE = {
    "JournalCode": "ac",
    "JournalLib": "Achats",
    "EcritureNum": "0",
    "EcritureDate": "20230131",
    "CompteNum": "40100000",
    "CompteLib": "FOURNISSEURS",
    "CompAuxNum": "FITFOOD",
    "CompAuxLib": "ITALIAN FOOD",
    "PieceRef": "01/01",
    "PieceDate": "20230131",
    "EcritureLib": "ITALIAN FOOD F.374",
    "Debit": "0,00",
    "Credit": "683,23",
    "EcritureLet": "C",
    "DateLet": "20230630",
    "ValidDate": "",
    "Montantdevise": "",
    "Idevise": "",
}

PERIOD = {"fiscal_year_id": 12, "period_start": date(2023, 1, 1), "period_end": date(2023, 12, 31)}

CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "customers",
        COMPANY,
        {},
        {
            **CUSTOMER_TYPED,
            "customer_type": "company",
            "name": "My company",
            "first_name": None,
            "last_name": None,
            "vat_number": "FR12345678901",
            "reg_no": "123456789",
            "ledger_account_id": 4110042,
        },
    ),
    (
        "customers",
        INDIVIDUAL,
        {},
        {
            **CUSTOMER_TYPED,
            "customer_type": "individual",
            "name": "John Doe",
            "first_name": "John",
            "last_name": "Doe",
            "vat_number": None,
            "reg_no": None,
            "ledger_account_id": None,
        },
    ),
    (
        "suppliers",
        SUPPLIER,
        {},
        {
            **verbatim(
                SUPPLIER, "name establishment_no reg_no vat_number iban supplier_payment_method supplier_due_date_rule"
            ),
            "external_reference": "FR123",
            "ledger_account_id": 4010456,
            "postal_address_postal_code": "75008",
            "postal_address_city": "Paris",
            "postal_address_country_alpha2": "FR",
            "supplier_due_date_delay": 30,
            "created_at": T,
            "updated_at": T,
        },
    ),
    (
        "products",
        PRODUCT,
        {},
        {
            **verbatim(PRODUCT, "label description external_reference vat_rate unit currency reference"),
            "price_before_tax": Decimal("12.5"),
            "price": Decimal("13.6"),
            "ledger_account_id": 7060001,
            "archived_at": datetime(2023, 9, 30, 10, 8, 8, 146343, tzinfo=UTC),
            "created_at": T,
            "updated_at": T,
        },
    ),
    (
        "customer_invoices",
        CUSTOMER_INVOICE,
        {},
        {
            **verbatim(
                CUSTOMER_INVOICE,
                "label invoice_number currency language status public_file_url filename special_mention"
                " pdf_invoice_free_text pdf_invoice_subject pdf_description external_reference",
            ),
            "amount": Decimal("230.32"),
            "currency_amount": Decimal("230.32"),
            "currency_amount_before_tax": Decimal("196.32"),
            "exchange_rate": Decimal("1.0"),
            "date": date(2023, 8, 30),
            "deadline": date(2020, 9, 2),
            "currency_tax": Decimal("34.0"),
            "tax": Decimal("34.0"),
            "paid": False,
            "discount_type": "absolute",
            "discount_value": Decimal(25),
            "ledger_entry_id": 42002,
            "remaining_amount_with_tax": Decimal("20.0"),
            "remaining_amount_without_tax": Decimal("16.0"),
            "draft": False,
            "customer_id": 42,
            "billing_subscription_id": 7,
            "credited_invoice_id": 40,
            "customer_invoice_template_id": 3,
            "quote_id": 41,
            "e_invoicing_status": "accepted",
            "e_invoicing_reason": None,
            "archived_at": T,
            "created_at": T,
            "updated_at": T,
        },
    ),
    (
        "customer_invoice_lines",
        CUSTOMER_INVOICE_LINE,
        {"invoice_id": 42},
        {
            **verbatim(CUSTOMER_INVOICE_LINE, "label unit description vat_rate"),
            "quantity": Decimal(12),
            "amount": Decimal("50.4"),
            "currency_amount": Decimal("50.4"),
            "product_id": 3049,
            "currency_amount_before_tax": Decimal(30),
            "currency_tax": Decimal(10),
            "tax": Decimal(10),
            "raw_currency_unit_price": Decimal(5),
            "discount_type": "absolute",
            "discount_value": Decimal(25),
            "section_rank": 1,
            "imputation_dates_start_date": date(2020, 6, 30),
            "imputation_dates_end_date": date(2021, 6, 30),
            "created_at": T,
            "updated_at": T,
        },
    ),
    (
        "supplier_invoices",
        SUPPLIER_INVOICE,
        {},
        {
            **verbatim(
                SUPPLIER_INVOICE,
                "label invoice_number currency accounting_status filename public_file_url payment_status"
                " external_reference",
            ),
            "amount": Decimal("230.32"),
            "currency_amount": Decimal("251.05"),
            "currency_amount_before_tax": Decimal("213.99"),
            "exchange_rate": Decimal("1.09"),
            "date": date(2023, 8, 30),
            "deadline": date(2023, 9, 30),
            "currency_tax": Decimal("37.06"),
            "tax": Decimal("34.0"),
            "reconciled": True,
            "remaining_amount_with_tax": Decimal("20.0"),
            "remaining_amount_without_tax": Decimal("16.0"),
            "ledger_entry_id": 42003,
            "supplier_id": 456,
            "e_invoicing_status": "waiting_for_validation",
            "e_invoicing_reason": "incorrect_vat_rate",
            "archived_at": None,
            "created_at": T,
            "updated_at": T,
        },
    ),
    (
        "supplier_invoice_lines",
        SUPPLIER_INVOICE_LINE,
        {"invoice_id": 123},
        {
            **verbatim(SUPPLIER_INVOICE_LINE, "label description vat_rate"),
            "amount": Decimal("50.4"),
            "currency_amount": Decimal("50.4"),
            "currency_amount_before_tax": Decimal(30),
            "currency_tax": Decimal(10),
            "tax": Decimal(10),
            "imputation_dates_start_date": None,
            "imputation_dates_end_date": None,
            "created_at": T,
            "updated_at": T,
        },
    ),
    (
        "transactions",
        TRANSACTION,
        {},
        {
            **verbatim(TRANSACTION, "label currency interbank_code"),
            "attachment_required": True,
            "date": date(2023, 8, 30),
            "outstanding_balance": Decimal("49.3"),
            "currency_amount": Decimal("120.00"),
            "amount": Decimal("120.00"),
            "currency_fee": Decimal("0.35"),
            "fee": Decimal("0.35"),
            "journal_id": 234,
            "bank_account_id": 53,
            "customer_id": None,
            "supplier_id": 456,
            "archived_at": None,
            "created_at": T,
            "updated_at": T,
        },
    ),
    (
        "ledger_entry_lines",
        LEDGER_ENTRY_LINE,
        {},
        {
            "debit": Decimal("100.00"),
            "credit": Decimal("0.00"),
            "label": "Employees - Jean Dupont / Salary May 2023",
            "ledger_account_id": 987,
            "ledger_account_number": "411000",
            "journal_id": 123,
            "date": date(2023, 8, 30),
            "ledger_entry_id": 123001,
            "created_at": T,
            "updated_at": T,
        },
    ),
    (
        "ledger_entries",
        LEDGER_ENTRY,
        {},
        {
            **verbatim(LEDGER_ENTRY, "label piece_number invoice_number"),
            "date": date(2023, 8, 30),
            "due_date": date(2023, 9, 29),
            "journal_id": 123,
            "attachment_filename": "filename.pdf",
            "created_at": datetime(2023, 6, 14, 12, 12, 56, 146343, tzinfo=UTC),
            "updated_at": T,
        },
    ),
    (
        "ledger_accounts",
        LEDGER_ACCOUNT,
        {},
        {
            **verbatim(LEDGER_ACCOUNT, "number label vat_rate country_alpha2 type"),
            "enabled": True,
            "letterable": False,
            "created_at": T,
            "updated_at": T,
        },
    ),
    ("journals", JOURNAL, {}, {"code": "HA", "label": "Achats", "type": "purchase"}),
    (
        "bank_accounts",
        BANK_ACCOUNT,
        {},
        {
            "name": "Main account",
            "currency": "EUR",
            "balance": Decimal("100.15"),
            "bank_establishment_id": 42,
            "journal_id": 7,
            "ledger_account_id": 8,
            "created_at": T,
            "updated_at": T,
        },
    ),
    (
        "fiscal_years",
        FISCAL_YEAR,
        {},
        {"start": date(2023, 1, 1), "finish": date(2023, 12, 31), "status": "open", "created_at": T, "updated_at": T},
    ),
    (
        "categories",
        CATEGORY,
        {},
        {
            "label": "Alimentaire",
            "direction": "cash_in",
            "category_group_id": 348,
            "analytical_code": "CODE123",
            "created_at": T,
            "updated_at": T,
        },
    ),
    (
        "trial_balance",
        TRIAL_BALANCE,
        PERIOD,
        {
            "formatted_number": "51200000",
            "label": "Capital souscrit - appelé, versé",
            "debits": Decimal("45353.95"),
            "credits": Decimal("2343.05"),
            "balance": Decimal("43010.90"),
        },
    ),
    (
        "fec",
        FEC_LINE,
        {"fiscal_year_id": 12, "line_no": 2},
        {
            "journal_code": "ac",
            "journal_lib": "Achats",
            "ecriture_num": "0",
            "ecriture_date": date(2023, 1, 31),
            "compte_num": "40100000",
            "compte_lib": "FOURNISSEURS",
            "comp_aux_num": "FITFOOD",
            "comp_aux_lib": "ITALIAN FOOD",
            "piece_ref": "01/01",
            "piece_date": date(2023, 1, 31),
            "ecriture_lib": "ITALIAN FOOD F.374",
            "debit": Decimal("0.00"),
            "credit": Decimal("683.23"),
            "ecriture_let": "C",
            "date_let": date(2023, 6, 30),
            "valid_date": None,
            "montant_devise": None,
            "idevise": None,
        },
    ),
]
ITEMS = {table: item for table, item, _, _ in CASES}
PLAIN = {table: plain for table, _, plain, _ in CASES}
TYPED_COLUMNS = {table: set(expected) for table, _, _, expected in CASES}


def case_id(case: tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]) -> str:
    table, item, _, _ = case
    return f"{table}-{item['customer_type']}" if table == "customers" else table


async def insert(conn: Conn, schema_: str, table: str, item: Mapping[str, Any], plain: Mapping[str, Any]) -> None:
    """Write one row as the sync's writer does: keys and plain columns, the item, synced_at."""
    columns = (*KEYS[table], *EXTRA[table])
    values = [plain[c] if c in plain else item[c] for c in columns]
    listed = ", ".join((*columns, "item", "synced_at"))
    marks = ", ".join(f"${n}" for n in range(1, len(columns) + 3))
    await conn.execute(
        f"INSERT INTO {schema_}.{table} ({listed}) VALUES ({marks})",  # noqa: S608 — test constants
        *values,
        item,
        SYNCED_AT,
    )


async def generated_columns(conn: Conn, schema_: str) -> dict[str, dict[str, str]]:
    """Per table, each generated column and its generation expression."""
    rows = await conn.fetch(
        "SELECT table_name, column_name, generation_expression FROM information_schema.columns"
        " WHERE table_schema = $1 AND is_generated = 'ALWAYS' ORDER BY table_name, ordinal_position",
        schema_,
    )
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        out.setdefault(row["table_name"], {})[row["column_name"]] = row["generation_expression"]
    return out


async def typed_row(
    conn: Conn, schema_: str, table: str, plain: Mapping[str, Any], item: Mapping[str, Any]
) -> dict[str, Any]:
    keys = KEYS[table]
    where = " AND ".join(f"{k} = ${n}" for n, k in enumerate(keys, start=1))
    values = [plain.get(k, item.get(k)) for k in keys]
    row = await conn.fetchrow(f"SELECT * FROM {schema_}.{table} WHERE {where}", *values)  # noqa: S608
    assert row is not None
    columns = (await generated_columns(conn, schema_))[table]
    return {column: row[column] for column in columns}


@pytest.fixture
async def migrated(pool: asyncpg.Pool) -> str:
    """A freshly migrated tenant schema."""
    async with pool.acquire() as conn:
        return await migrate_tenant(conn, tenant_id())


def test_every_table_of_the_catalogue_has_its_keys_and_plain_columns_named() -> None:
    assert set(KEYS) == set(EXTRA) == set(REQUIRED_KEYS) == set(OPTIONAL_KEYS) == set(tables.NAMES)
    assert {table for table, keys in KEYS.items() if keys != ("id",)} == {"trial_balance", "fec"}
    assert KEYS["trial_balance"] == ("fiscal_year_id", "number")
    assert KEYS["fec"] == ("fiscal_year_id", "line_no")
    assert {table: extra for table, extra in EXTRA.items() if extra} == {
        "customer_invoice_lines": ("invoice_id",),
        "supplier_invoice_lines": ("invoice_id",),
        "trial_balance": ("period_start", "period_end"),
    }
    assert all(not REQUIRED_KEYS[t] & OPTIONAL_KEYS[t] for t in KEYS)
    assert migration_versions() == ["0001_tables"]


def test_missing_keys_names_what_an_item_lacks_customers_by_their_own_variant() -> None:
    assert missing_keys("customer_invoices", CUSTOMER_INVOICE) == frozenset()
    lacking = {k: v for k, v in CUSTOMER_INVOICE.items() if k not in ("date", "customer", "e_invoicing")}
    assert missing_keys("customer_invoices", lacking) == {"date", "customer"}  # e_invoicing: e-invoices only
    assert missing_keys("customers", COMPANY) == missing_keys("customers", INDIVIDUAL) == frozenset()
    assert missing_keys("customers", {k: v for k, v in COMPANY.items() if k != "reg_no"}) == {"reg_no"}
    assert missing_keys("customers", {k: v for k, v in INDIVIDUAL.items() if k != "last_name"}) == {"last_name"}
    assert missing_keys("fec", {**FEC_LINE, "Idevise": None}) == frozenset()  # present, null
    assert missing_keys("fec", {k: v for k, v in FEC_LINE.items() if k != "Idevise"}) == {"Idevise"}


@pytest.mark.infra
async def test_the_keys_items_must_have_are_the_keys_the_generated_columns_read(
    migrated: str, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        generated = await generated_columns(conn, migrated)
    top_level = re.compile(r"\bitem ->>? '([^']+)'::text")
    read = {
        table: {key for expr in columns.values() for key in top_level.findall(expr)}
        for table, columns in generated.items()
    }
    assert read == {table: REQUIRED_KEYS[table] | OPTIONAL_KEYS[table] for table in KEYS}
    unread = [
        f"{t}.{c}" for t, columns in generated.items() for c, expr in columns.items() if not top_level.search(expr)
    ]
    assert unread == []


@pytest.mark.infra
async def test_the_plain_columns_are_the_keys_the_extras_item_and_synced_at(migrated: str, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        plain = await conn.fetch(
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns"
            " WHERE table_schema = $1 AND is_generated = 'NEVER' AND table_name <> '_migrations'",
            migrated,
        )
        primary = await conn.fetch(
            "SELECT k.table_name, k.column_name FROM information_schema.table_constraints c"
            " JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name)"
            " WHERE c.table_schema = $1 AND c.constraint_type = 'PRIMARY KEY' AND c.table_name <> '_migrations'"
            " ORDER BY k.table_name, k.ordinal_position",
            migrated,
        )
    columns: dict[str, set[str]] = {}
    for row in plain:
        assert row["is_nullable"] == "NO", f"{row['table_name']}.{row['column_name']}"
        columns.setdefault(row["table_name"], set()).add(row["column_name"])
    assert columns == {t: {*KEYS[t], *EXTRA[t], "item", "synced_at"} for t in KEYS}
    keys: dict[str, tuple[str, ...]] = {}
    for row in primary:
        keys[row["table_name"]] = (*keys.get(row["table_name"], ()), row["column_name"])
    assert keys == dict(KEYS)


@pytest.mark.infra
@pytest.mark.parametrize("case", CASES, ids=case_id)
async def test_each_generated_column_holds_the_typed_value_of_the_item(
    case: tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]], migrated: str, pool: asyncpg.Pool
) -> None:
    table, item, plain, expected = case
    assert missing_keys(table, item) == frozenset()
    async with pool.acquire() as conn:
        await insert(conn, migrated, table, item, plain)
        typed = await typed_row(conn, migrated, table, plain, item)
    assert typed == expected
    # Exact decimals, digits as sent: numeric keeps the scale ("120.00", not 120).
    assert {c: str(v) for c, v in typed.items() if isinstance(v, Decimal)} == {
        c: str(v) for c, v in expected.items() if isinstance(v, Decimal)
    }


@pytest.mark.infra
async def test_dates_and_timestamps_do_not_depend_on_the_session_settings(migrated: str, pool: asyncpg.Pool) -> None:
    item = {**LEDGER_ENTRY_LINE, "created_at": "2023-08-30T12:08:08.146343+02:00", "updated_at": "2023-08-30 10:08:08Z"}
    async with pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("SET LOCAL DateStyle = 'SQL, DMY'")
            await conn.execute("SET LOCAL TimeZone = 'Pacific/Chatham'")
            await insert(conn, migrated, "ledger_entry_lines", item, {})
        typed = await typed_row(conn, migrated, "ledger_entry_lines", {}, item)
    assert (typed["date"], typed["created_at"], typed["updated_at"]) == (date(2023, 8, 30), T, T.replace(microsecond=0))
    assert typed["created_at"].utcoffset().total_seconds() == 0


@pytest.mark.infra
@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("customer_invoices", "date", "30/08/2023"),  # read as 30 August or refused, depending on DateStyle
        ("customer_invoices", "deadline", "2023-02-30"),
        ("transactions", "date", "today"),
        ("ledger_entry_lines", "created_at", "2023-08-30T10:08:08.146343"),  # no offset: depends on TimeZone
        ("ledger_entries", "updated_at", "now"),
        ("customer_invoices", "amount", "230,32"),
        ("fec", "EcritureDate", "2023-01-31"),
        ("fec", "Debit", "1.234,56"),
    ],
)
async def test_a_malformed_value_fails_the_insert_with_a_data_error(
    table: str, key: str, value: str, migrated: str, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.DataError):
            await insert(conn, migrated, table, {**ITEMS[table], key: value}, PLAIN[table])
        assert await conn.fetchval(f"SELECT count(*) FROM {migrated}.{table}") == 0  # noqa: S608


@pytest.mark.infra
@pytest.mark.parametrize("table", KEYS)
async def test_null_values_give_null_columns(table: str, migrated: str, pool: asyncpg.Pool) -> None:
    keys = REQUIRED_KEYS[table] | OPTIONAL_KEYS[table]
    item = {**dict.fromkeys(keys), **{k: ITEMS[table][k] for k in KEYS[table] if k in ITEMS[table]}}
    async with pool.acquire() as conn:
        await insert(conn, migrated, table, item, PLAIN[table])
        typed = await typed_row(conn, migrated, table, PLAIN[table], item)
    assert set(typed) == TYPED_COLUMNS[table]
    assert typed == dict.fromkeys(typed)


@pytest.mark.infra
async def test_fec_blanks_are_null_and_amounts_may_group_thousands(migrated: str, pool: asyncpg.Pool) -> None:
    line = {
        **FEC_LINE,
        "EcritureLet": " ",
        "DateLet": "",
        "Debit": "1 234,56",
        "Credit": "0.5",
        "Montantdevise": "12\u00a0345,60",
        "Idevise": "USD",
    }
    async with pool.acquire() as conn:
        await insert(conn, migrated, "fec", line, {"fiscal_year_id": 12, "line_no": 3})
        typed = await typed_row(conn, migrated, "fec", {"fiscal_year_id": 12, "line_no": 3}, line)
    assert (typed["ecriture_let"], typed["date_let"]) == (None, None)
    assert (typed["debit"], typed["credit"], typed["montant_devise"], typed["idevise"]) == (
        Decimal("1234.56"),
        Decimal("0.5"),
        Decimal("12345.60"),
        "USD",
    )


async def applied(conn: Conn, schema_: str) -> list[tuple[str, datetime]]:
    rows = await conn.fetch(f"SELECT version, applied_at FROM {schema_}._migrations ORDER BY version")  # noqa: S608
    return [(r["version"], r["applied_at"]) for r in rows]


@pytest.mark.infra
async def test_migrating_twice_applies_each_file_once_and_keeps_the_rows(pool: asyncpg.Pool) -> None:
    tenant = tenant_id()
    async with pool.acquire() as conn:
        with capture_logs() as first_logs:
            created = await migrate_tenant(conn, tenant)
        assert created == schema_name(tenant)
        names = {
            r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", created)
        }
        assert names == {*tables.NAMES, "_migrations"}
        before = await applied(conn, created)
        assert [version for version, _ in before] == migration_versions()
        await insert(conn, created, "journals", JOURNAL, {})
        with capture_logs() as second_logs:
            assert await migrate_tenant(conn, tenant) == created
        assert await applied(conn, created) == before
        assert await conn.fetchval(f"SELECT code FROM {created}.journals WHERE id = 67") == "HA"  # noqa: S608
    assert [e["version"] for e in first_logs if e["event"] == "pennylane_schema_migrated"] == migration_versions()
    assert second_logs == []


@pytest.mark.infra
async def test_concurrent_migrations_of_one_tenant_all_succeed_applying_each_file_once(pool: asyncpg.Pool) -> None:
    tenant = tenant_id()
    async with pool.acquire() as first, pool.acquire() as second, pool.acquire() as third:
        with capture_logs() as logs:
            results = await asyncio.gather(*(migrate_tenant(c, tenant) for c in (first, second, third)))
        assert results == [schema_name(tenant)] * 3
        assert [version for version, _ in await applied(first, schema_name(tenant))] == migration_versions()
    assert [e["version"] for e in logs if e["event"] == "pennylane_schema_migrated"] == migration_versions()


@pytest.mark.infra
async def test_a_migration_waits_for_the_tenants_schema_lock(pool: asyncpg.Pool) -> None:
    tenant = tenant_id()
    async with pool.acquire() as holder, pool.acquire() as conn:
        transaction = holder.transaction()
        await transaction.start()
        await advisory_xact_lock(holder, Namespace.PENNYLANE_SCHEMA, tenant)
        waiting = asyncio.create_task(migrate_tenant(conn, tenant))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        assert await holder.fetchval("SELECT to_regnamespace($1)", schema_name(tenant)) is None
        await transaction.rollback()
        assert await asyncio.wait_for(waiting, timeout=10) == schema_name(tenant)


@pytest.mark.infra
async def test_a_new_generated_column_is_backfilled_from_the_stored_items(pool: asyncpg.Pool) -> None:
    tenant = tenant_id()
    shipped = schema._migrations()
    addition = (
        "9999_delivery_city",
        "ALTER TABLE customers ADD COLUMN delivery_address_city text"
        " GENERATED ALWAYS AS (item->'delivery_address'->>'city') STORED;"
        " CREATE INDEX customers_delivery_address_city_idx ON customers (delivery_address_city);",
    )
    async with pool.acquire() as conn:
        created = await migrate_tenant(conn, tenant)
        await insert(conn, created, "customers", COMPANY, {})
        await insert(conn, created, "customers", INDIVIDUAL, {})
        assert await migrate_tenant(conn, tenant, migrations=[*shipped, addition]) == created
        rows = await conn.fetch(
            f"SELECT id, name, delivery_address_city, item, synced_at FROM {created}.customers ORDER BY id"  # noqa: S608
        )
        assert [v for v, _ in await applied(conn, created)] == [*migration_versions(), "9999_delivery_city"]
    assert [(r["id"], r["name"], r["delivery_address_city"]) for r in rows] == [
        (42, "My company", "Lyon"),
        (43, "John Doe", "Bordeaux"),
    ]
    assert [(r["item"], r["synced_at"]) for r in rows] == [(COMPANY, SYNCED_AT), (INDIVIDUAL, SYNCED_AT)]


@pytest.mark.infra
async def test_long_tenant_ids_get_distinct_schemas_postgres_does_not_truncate(pool: asyncpg.Pool) -> None:
    # Two 63-character ids sharing their first 60 characters: "pennylane_" + id would be cut at 63 bytes.
    prefix = tenant_id()[:20].ljust(60, "x")
    first, second = prefix + "aaa", prefix + "bbb"
    assert schema_name(first) != schema_name(second)
    assert len(schema_name(first)) == 63
    async with pool.acquire() as conn:
        try:
            for tenant in (first, second):
                assert await migrate_tenant(conn, tenant) == schema_name(tenant)
                assert await conn.fetchval("SELECT to_regnamespace($1) IS NOT NULL", schema_name(tenant))
        finally:
            for tenant in (first, second):
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema_name(tenant)} CASCADE")
        with pytest.raises(ValueError, match="no valid schema name"):
            await migrate_tenant(conn, "T; DROP SCHEMA public")


@pytest.mark.infra
async def test_migrating_inside_a_transaction_is_refused(pool: asyncpg.Pool) -> None:
    # Each migration commits on its own: inside the caller's transaction, its search_path would outlive it.
    tenant = tenant_id()
    async with pool.acquire() as conn:
        async with conn.transaction():
            with pytest.raises(RuntimeError, match="outside a transaction"):
                await migrate_tenant(conn, tenant)
        assert await conn.fetchval("SELECT to_regnamespace($1)", schema_name(tenant)) is None
