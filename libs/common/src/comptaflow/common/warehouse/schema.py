"""Warehouse tables: versioned DDL applied once per database, and the columns the loader writes.

Every table has the tenant first in its sorting key, then `load_id` (the batch id of the load that wrote
the row): rows are immutable, a load is made current by the pointer in PostgreSQL (`comptaflow.common.loads`).
Amounts are Decimal(18,2). `etl_metadata` keeps one row per load attempt (ReplacingMergeTree on
`updated_at`: the attempt's latest state wins; read it with FINAL).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

import structlog

from comptaflow.common.errors import ConfigurationError

if TYPE_CHECKING:
    from comptaflow.common.warehouse.client import Warehouse

log = structlog.get_logger("comptaflow.warehouse")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

_LEDGER_COLUMNS = """
    tenant_id LowCardinality(String),
    load_id UUID,
    row UInt32,
    date Date,
    journal LowCardinality(String),
    piece Nullable(String),
    account String,
    account_label Nullable(String),
    label String,
    debit Decimal(18, 2),
    credit Decimal(18, 2),
    lettrage Nullable(String),
    due_date Nullable(Date),
    collectif Nullable(String)
"""

# (version, statements); `{db}` is the database identifier. Append only: never edit an applied version.
MIGRATIONS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "0001_core",
        (
            f"CREATE TABLE IF NOT EXISTS {{db}}.grand_livre ({_LEDGER_COLUMNS})"
            " ENGINE = MergeTree ORDER BY (tenant_id, load_id, account, date, row)",
            f"CREATE TABLE IF NOT EXISTS {{db}}.grand_livre_tiers ({_LEDGER_COLUMNS})"
            " ENGINE = MergeTree ORDER BY (tenant_id, load_id, account, date, row)",
            """CREATE TABLE IF NOT EXISTS {db}.plan_comptes (
                tenant_id LowCardinality(String), load_id UUID,
                account String, label Nullable(String), account_type Nullable(String)
            ) ENGINE = MergeTree ORDER BY (tenant_id, load_id, account)""",
            """CREATE TABLE IF NOT EXISTS {db}.plan_tiers (
                tenant_id LowCardinality(String), load_id UUID,
                code String, name Nullable(String), collectif Nullable(String), tiers_type Nullable(String),
                siret Nullable(String), address Nullable(String), postal_code Nullable(String),
                city Nullable(String), country Nullable(String), email Nullable(String), phone Nullable(String)
            ) ENGINE = MergeTree ORDER BY (tenant_id, load_id, code)""",
            """CREATE TABLE IF NOT EXISTS {db}.code_journal (
                tenant_id LowCardinality(String), load_id UUID,
                code String, label Nullable(String), journal_type Nullable(String)
            ) ENGINE = MergeTree ORDER BY (tenant_id, load_id, code)""",
            """CREATE TABLE IF NOT EXISTS {db}.etl_metadata (
                tenant_id LowCardinality(String),
                batch_id UUID,
                attempt_id UUID,
                period_start Date,
                period_end Date,
                processing_start DateTime64(3, 'UTC'),
                processing_end Nullable(DateTime64(3, 'UTC')),
                status Enum8('running' = 1, 'success' = 2, 'failed' = 3),
                records_inserted UInt64,
                error_message Nullable(String),
                updated_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree(updated_at)
            ORDER BY (tenant_id, batch_id, processing_start, attempt_id)""",
        ),
    ),
    (
        # What a FEC carries besides the Excel grand livre columns (null for Excel loads). Date32: real files
        # hold placeholders such as PieceDate 19000101, outside Date's 1970-2149.
        "0002_fec_columns",
        tuple(
            f"ALTER TABLE {{db}}.{table} ADD COLUMN IF NOT EXISTS {column}"
            for table in ("grand_livre", "grand_livre_tiers")
            for column in (
                "entry_num Nullable(String)",
                "piece_date Nullable(Date32)",
                "lettrage_date Nullable(Date32)",
                "valid_date Nullable(Date32)",
                "currency_amount Nullable(Decimal(18, 2))",
                "currency Nullable(String)",
            )
        ),
    ),
)

LEDGER_COLUMNS: Final = (
    "row",
    "date",
    "journal",
    "piece",
    "account",
    "account_label",
    "label",
    "debit",
    "credit",
    "lettrage",
    "due_date",
    "collectif",
    "entry_num",
    "piece_date",
    "lettrage_date",
    "valid_date",
    "currency_amount",
    "currency",
)

# Warehouse table → (staged table name, columns written from it besides tenant_id and load_id).
DIMENSIONS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "plan_comptes": ("plan_comptes", ("account", "label", "account_type")),
    "plan_tiers": (
        "plan_tiers",
        (
            "code",
            "name",
            "collectif",
            "tiers_type",
            "siret",
            "address",
            "postal_code",
            "city",
            "country",
            "email",
            "phone",
        ),
    ),
    "code_journal": ("code_journal", ("code", "label", "journal_type")),
}
FACTS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "grand_livre": ("grand_livre_comptes", LEDGER_COLUMNS),
    "grand_livre_tiers": ("grand_livre_tiers", LEDGER_COLUMNS),
}
LOAD_TABLES: Final = (*DIMENSIONS, *FACTS)


def check_identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ConfigurationError(f"invalid warehouse database name {name!r}")
    return name


async def migrate(warehouse: Warehouse) -> list[str]:
    """Create the database and apply pending versions; return the versions applied now.

    Every statement is idempotent (IF NOT EXISTS), so two processes migrating at once is harmless.
    """
    db = check_identifier(warehouse.database)
    await warehouse.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    await warehouse.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations"
        " (version String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))"
        " ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = {row[0] for row in await warehouse.query(f"SELECT DISTINCT version FROM {db}.schema_migrations")}  # noqa: S608 — identifier from code
    applied: list[str] = []
    for version, statements in MIGRATIONS:
        if version in done:
            continue
        for statement in statements:
            await warehouse.command(statement.replace("{db}", db))
        await warehouse.command(
            f"INSERT INTO {db}.schema_migrations (version) VALUES ({{v:String}})",  # noqa: S608 — identifier from code
            {"v": version},
        )
        applied.append(version)
        log.info("warehouse_migration_applied", version=version, database=db)
    return applied
