"""The tables a Pennylane sync keeps, how each is kept, and the scope each needs.

- `CHANGELOG`: the API keeps a changelog of the resource (`/changelogs/{resource}`): an incremental
  sync reads the events since its checkpoint and re-fetches the records they name.
- `REFRESH`: no changelog; every sync lists the resource whole, upserts it and deletes the ids that vanished.
  `ledger_entries` is the exception: an incremental sync re-fetches only the entries of changed lines.
- `LINES`: the lines of an invoice (a sub-resource): re-fetched for the invoices that changed.
- `TRIAL_BALANCE`: one trial balance per open fiscal year.
- `EXPORT`: the FEC of each open fiscal year, through the asynchronous `/exports/fecs`: full syncs only
  (and a sync that names the table), as it costs a file per fiscal year.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass


class Strategy(enum.StrEnum):
    CHANGELOG = "changelog"
    REFRESH = "refresh"
    LINES = "lines"
    TRIAL_BALANCE = "trial_balance"
    EXPORT = "export"


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    """The table in the tenant's schema, named as the API's resource."""
    strategy: Strategy
    path: str
    """The list endpoint under the base URL (for `LINES`, the parent's: `/{parent}/{id}/invoice_lines`)."""
    scopes: tuple[str, ...]
    """Read scopes needed (`x:readonly`; `x:all` grants it too)."""
    max_limit: int = 100
    parent: str | None = None
    """`LINES`: the invoice table whose changes re-fetch these lines."""


TABLES: tuple[Table, ...] = (
    Table("customers", Strategy.CHANGELOG, "/customers", ("customers:readonly",)),
    Table("suppliers", Strategy.CHANGELOG, "/suppliers", ("suppliers:readonly",)),
    Table("products", Strategy.CHANGELOG, "/products", ("products:readonly",)),
    Table("customer_invoices", Strategy.CHANGELOG, "/customer_invoices", ("customer_invoices:readonly",)),
    Table(
        "customer_invoice_lines",
        Strategy.LINES,
        "/customer_invoices",
        ("customer_invoices:readonly",),
        parent="customer_invoices",
    ),
    Table("supplier_invoices", Strategy.CHANGELOG, "/supplier_invoices", ("supplier_invoices:readonly",)),
    Table(
        "supplier_invoice_lines",
        Strategy.LINES,
        "/supplier_invoices",
        ("supplier_invoices:readonly",),
        parent="supplier_invoices",
    ),
    Table("transactions", Strategy.CHANGELOG, "/transactions", ("transactions:readonly",)),
    Table("ledger_entry_lines", Strategy.CHANGELOG, "/ledger_entry_lines", ("ledger_entries:readonly",)),
    Table("ledger_entries", Strategy.REFRESH, "/ledger_entries", ("ledger_entries:readonly",)),
    Table("ledger_accounts", Strategy.REFRESH, "/ledger_accounts", ("ledger_accounts:readonly",), max_limit=1000),
    Table("journals", Strategy.REFRESH, "/journals", ("journals:readonly",)),
    Table("bank_accounts", Strategy.REFRESH, "/bank_accounts", ("bank_accounts:readonly",)),
    Table("fiscal_years", Strategy.REFRESH, "/fiscal_years", ("fiscal_years:readonly",)),
    Table("categories", Strategy.REFRESH, "/categories", ("categories:readonly",)),
    Table(
        "trial_balance",
        Strategy.TRIAL_BALANCE,
        "/trial_balance",
        ("trial_balance:readonly", "fiscal_years:readonly"),
        max_limit=1000,
    ),
    Table("fec", Strategy.EXPORT, "/exports/fecs", ("exports:fec", "fiscal_years:readonly")),
)
BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}
NAMES: tuple[str, ...] = tuple(BY_NAME)
CHANGELOG_MAX_LIMIT = 1000

SCOPES: tuple[str, ...] = tuple(sorted({s for t in TABLES for s in t.scopes}))
"""Every scope a sync of every table needs."""


class UnknownTable(ValueError):
    def __init__(self, names: Collection[str]) -> None:
        super().__init__(f"unknown Pennylane table(s): {', '.join(sorted(names))}; known: {', '.join(NAMES)}")
        self.names = tuple(sorted(names))


def select(names: Iterable[str] | None) -> tuple[Table, ...]:
    """The tables named (in catalogue order), or all of them for None; `UnknownTable` for a name not in it."""
    if names is None:
        return TABLES
    wanted = set(names)
    unknown = wanted - set(NAMES)
    if unknown:
        raise UnknownTable(unknown)
    return tuple(t for t in TABLES if t.name in wanted)


def granted(needed: str, scopes: Collection[str]) -> bool:
    """Whether `scopes` (a token's, from `/me`) grant `needed`: `x:readonly` is granted by itself or `x:all`."""
    if needed in scopes:
        return True
    family, _, level = needed.rpartition(":")
    return level == "readonly" and f"{family}:all" in scopes


def missing_scopes(tables: Iterable[Table], scopes: Collection[str]) -> dict[str, tuple[str, ...]]:
    """For each table that `scopes` cannot read, the scopes it lacks."""
    out: dict[str, tuple[str, ...]] = {}
    for table in tables:
        lacking = tuple(s for s in table.scopes if not granted(s, scopes))
        if lacking:
            out[table.name] = lacking
    return out
