"""A tenant's Pennylane schema: its creation and migrations, and what a writer must know of its tables.

The schema (`connections.schema_name`: `pennylane_<tenant with - as _>`) holds one table per table of the
catalogue (`comptaflow.common.pennylane.tables`), created by the `NNNN_name.sql` files of
`comptaflow.pennylane_sync.migrations` (0001 explains the layout). A row is its key, a few plain columns,
`item` (the object as the API sent it) and `synced_at`; every other column is generated from `item`.
So a writer fills only these, named here for each table:

    KEYS[table]           the primary key, in order: ("id",) for the API's resources,
                          ("fiscal_year_id", "number") for trial_balance, ("fiscal_year_id", "line_no")
                          for fec. An upsert's ON CONFLICT target.
    EXTRA[table]          the other plain (NOT NULL) columns: ("invoice_id",) for the invoice lines (the
                          parent's id; lines are keyed by their own id alone), ("period_start",
                          "period_end") for trial_balance, () elsewhere.
    item, synced_at       every table.

and checks each item before writing it:

    REQUIRED_KEYS[table]  the top-level keys of `item` that generated columns read and that every item
                          has (the spec marks them required; a null value is fine). An item lacking one
                          is refused, since its columns would silently be NULL; `missing_keys` says which.
    OPTIONAL_KEYS[table]  keys generated columns read that an item may lack, a NULL column then meaning
                          what the absence means: the fields of one variant of a customer (company or
                          individual) and an invoice's `e_invoicing` (present for e-invoices only).

A value of the wrong form (a malformed date, an amount that is not a number) is refused by PostgreSQL
when written: the statement fails with a DataError (SQLSTATE class 22).

`migrate_tenant` creates the schema if missing and applies the files not yet applied (recorded in
`<schema>._migrations`), each in its own transaction with `search_path` set to the schema and the
tenant's `Namespace.PENNYLANE_SCHEMA` transaction lock held, so two processes never migrate one schema at
once. A schema is only ever migrated forward: never dropped nor re-created, its rows kept (a new generated
column is computed for them as it is added).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import structlog

from comptaflow.common import locks
from comptaflow.common.db import Conn
from comptaflow.common.pennylane.connections import schema_name

log = structlog.get_logger("comptaflow.pennylane_sync.schema")

MIGRATIONS_PACKAGE = "comptaflow.pennylane_sync.migrations"
MIGRATION_TIMEOUT = 1800.0
"""Seconds one migration file may run: adding a column rewrites the table, which may hold millions of rows."""

# PostgreSQL truncates an identifier to 63 bytes: a longer name would silently be another tenant's prefix.
_SCHEMA = re.compile(r"pennylane_[a-z0-9_]{1,53}")
"""What `schema_name` gives for a valid tenant id (63 bytes at most)."""

_BY_ID = ("id",)

KEYS: Mapping[str, tuple[str, ...]] = {
    "customers": _BY_ID,
    "suppliers": _BY_ID,
    "products": _BY_ID,
    "customer_invoices": _BY_ID,
    "customer_invoice_lines": _BY_ID,
    "supplier_invoices": _BY_ID,
    "supplier_invoice_lines": _BY_ID,
    "transactions": _BY_ID,
    "ledger_entry_lines": _BY_ID,
    "ledger_entries": _BY_ID,
    "ledger_accounts": _BY_ID,
    "journals": _BY_ID,
    "bank_accounts": _BY_ID,
    "fiscal_years": _BY_ID,
    "categories": _BY_ID,
    "trial_balance": ("fiscal_year_id", "number"),
    "fec": ("fiscal_year_id", "line_no"),
}
"""The primary-key columns of each table (see the module docstring)."""

EXTRA: Mapping[str, tuple[str, ...]] = {
    **dict.fromkeys(KEYS, ()),
    "customer_invoice_lines": ("invoice_id",),
    "supplier_invoice_lines": ("invoice_id",),
    "trial_balance": ("period_start", "period_end"),
}
"""The plain columns of each table a writer fills besides its keys, `item` and `synced_at`."""


def _keys(names: str) -> frozenset[str]:
    return frozenset(names.split())


_TIMESTAMPS = "created_at updated_at"
_INVOICE = (
    "label invoice_number currency amount currency_amount currency_amount_before_tax exchange_rate date deadline"
    " currency_tax tax filename public_file_url remaining_amount_with_tax remaining_amount_without_tax"
    " ledger_entry external_reference archived_at " + _TIMESTAMPS
)
_INVOICE_LINE = (
    "label amount currency_amount description vat_rate currency_amount_before_tax currency_tax tax"
    " imputation_dates " + _TIMESTAMPS
)

REQUIRED_KEYS: Mapping[str, frozenset[str]] = {
    "customers": _keys(
        "customer_type name billing_iban payment_conditions recipient phone reference notes ledger_account"
        " billing_address external_reference billing_language " + _TIMESTAMPS
    ),
    "suppliers": _keys(
        "name establishment_no reg_no vat_number ledger_account iban postal_address supplier_payment_method"
        " supplier_due_date_delay supplier_due_date_rule external_reference " + _TIMESTAMPS
    ),
    "products": _keys(
        "label description external_reference price_before_tax vat_rate price unit currency reference"
        " ledger_account archived_at " + _TIMESTAMPS
    ),
    "customer_invoices": _keys(
        _INVOICE + " language paid status discount draft special_mention customer pdf_invoice_free_text"
        " pdf_invoice_subject pdf_description billing_subscription credited_invoice customer_invoice_template quote"
    ),
    "customer_invoice_lines": _keys(
        _INVOICE_LINE + " unit quantity product raw_currency_unit_price discount section_rank"
    ),
    "supplier_invoices": _keys(_INVOICE + " reconciled accounting_status supplier payment_status"),
    "supplier_invoice_lines": _keys(_INVOICE_LINE),
    "transactions": _keys(
        "label attachment_required date outstanding_balance currency currency_amount amount currency_fee fee"
        " journal bank_account customer supplier interbank_code archived_at " + _TIMESTAMPS
    ),
    "ledger_entry_lines": _keys("debit credit label ledger_account journal date ledger_entry " + _TIMESTAMPS),
    "ledger_entries": _keys("label piece_number date due_date invoice_number journal attachment " + _TIMESTAMPS),
    "ledger_accounts": _keys("number label vat_rate country_alpha2 enabled type letterable " + _TIMESTAMPS),
    "journals": _keys("code label type"),
    "bank_accounts": _keys("name currency balance bank_establishment journal ledger_account " + _TIMESTAMPS),
    "fiscal_years": _keys("start finish status " + _TIMESTAMPS),
    "categories": _keys("label direction category_group analytical_code " + _TIMESTAMPS),
    "trial_balance": _keys("formatted_number label debits credits"),
    "fec": _keys(
        "JournalCode JournalLib EcritureNum EcritureDate CompteNum CompteLib CompAuxNum CompAuxLib PieceRef"
        " PieceDate EcritureLib Debit Credit EcritureLet DateLet ValidDate Montantdevise Idevise"
    ),
}
"""Per table, the top-level item keys its generated columns read that every item has (module docstring)."""

# A customer is a company or an individual (`customer_type`): each has fields the other lacks.
_CUSTOMER_VARIANTS: Mapping[str, frozenset[str]] = {
    "company": _keys("vat_number reg_no"),
    "individual": _keys("first_name last_name"),
}

OPTIONAL_KEYS: Mapping[str, frozenset[str]] = {
    **dict.fromkeys(KEYS, frozenset()),
    "customers": frozenset().union(*_CUSTOMER_VARIANTS.values()),
    "customer_invoices": _keys("e_invoicing"),
    "supplier_invoices": _keys("e_invoicing"),
}
"""Per table, the item keys its generated columns read that an item may lack (module docstring)."""


def missing_keys(table: str, item: Mapping[str, Any]) -> frozenset[str]:
    """The keys `item` lacks to be stored in `table` (none: it can be written).

    `REQUIRED_KEYS[table]`, and for a customer the fields of its own variant (a company's `vat_number` and
    `reg_no`, an individual's `first_name` and `last_name`).
    """
    wanted = REQUIRED_KEYS[table]
    if table == "customers":
        wanted = wanted | _CUSTOMER_VARIANTS.get(str(item.get("customer_type")), frozenset())
    return wanted.difference(item)


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files(MIGRATIONS_PACKAGE)
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name.removesuffix(".sql"), p.read_text(encoding="utf-8")) for p in files]


def migration_versions() -> list[str]:
    """Every migration of a tenant schema shipped, in the order they apply."""
    return [version for version, _ in _migrations()]


def _schema(tenant_id: str) -> str:
    schema = schema_name(tenant_id)
    if not _SCHEMA.fullmatch(schema):
        raise ValueError(f"tenant id {tenant_id!r:.80} gives no valid schema name")
    return schema


async def _applied(conn: Conn, schema: str) -> set[str]:
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}._migrations"):
        return set()
    rows = await conn.fetch(f"SELECT version FROM {schema}._migrations")  # noqa: S608 — validated identifier
    return {row["version"] for row in rows}


async def migrate_tenant(conn: Conn, tenant_id: str, *, migrations: Sequence[tuple[str, str]] | None = None) -> str:
    """Create the tenant's schema if missing and apply its pending migrations; return the schema's name.

    `migrations` are `(version, sql)` pairs in order, the package's files by default. Each pending one is
    applied in its own transaction under the tenant's schema lock, after checking again that no other
    process applied it meanwhile; with nothing pending, nothing is locked nor written. Call it outside a
    transaction: each migration commits on its own.
    """
    schema = _schema(tenant_id)
    if conn.is_in_transaction():
        raise RuntimeError("migrate_tenant runs outside a transaction: each migration commits on its own")
    done = await _applied(conn, schema)
    for version, sql in _migrations() if migrations is None else migrations:
        if version in done:
            continue
        async with conn.transaction():
            await locks.advisory_xact_lock(conn, locks.Namespace.PENNYLANE_SCHEMA, tenant_id)
            await conn.execute(
                f"CREATE SCHEMA IF NOT EXISTS {schema};"
                f" CREATE TABLE IF NOT EXISTS {schema}._migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            if await conn.fetchval(
                f"SELECT EXISTS (SELECT FROM {schema}._migrations WHERE version = $1)",  # noqa: S608 — validated
                version,
            ):
                continue  # another process applied it while this one waited for the lock
            await conn.execute(f"SET LOCAL search_path TO {schema}, pg_catalog")
            await conn.execute(sql, timeout=MIGRATION_TIMEOUT)
            await conn.execute(f"INSERT INTO {schema}._migrations (version) VALUES ($1)", version)  # noqa: S608
        log.info("pennylane_schema_migrated", tenant_id=tenant_id, schema=schema, version=version)
    return schema
