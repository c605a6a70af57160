"""Read queries of the ledger data (docs/api.md, Ledger data): trial balance and ledger lines.

Callers resolve the current loads first (`comptaflow.common.loads.current_load_ids`) and pass their ids:
every query reads `WHERE tenant_id = {tenant} AND load_id IN {loads}` only, so a reader sees whole loads
(never a backup, never a load in progress, never another tenant). Values are bound server-side
(`{name:Type}`); the optional filters only choose among constant SQL fragments.

Amounts and dates travel as ClickHouse text (`toString`) and are parsed here, so they are exact whatever
the transport (HTTP server or embedded chdb): amounts are `Decimal` with two places.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from comptaflow.common.warehouse.client import Warehouse

CENT = Decimal("0.01")


def amount(text: str) -> Decimal:
    """A ClickHouse decimal printed as text → `Decimal` with exactly two places."""
    return Decimal(text).quantize(CENT)


@dataclass(frozen=True, slots=True)
class TrialBalanceRow:
    account: str
    label: str | None
    debit: Decimal
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        return self.debit - self.credit


@dataclass(frozen=True, slots=True)
class LedgerPosition:
    """Where a line sits in the ledger's order (date, account, load_id, row): a keyset cursor."""

    date: date
    account: str
    load_id: uuid.UUID
    row: int


@dataclass(frozen=True, slots=True)
class LedgerLine:
    date: date
    journal: str
    piece: str | None
    account: str
    label: str
    debit: Decimal
    credit: Decimal
    lettrage: str | None
    load_id: uuid.UUID
    row: int

    @property
    def position(self) -> LedgerPosition:
        return LedgerPosition(date=self.date, account=self.account, load_id=self.load_id, row=self.row)


def _range_filter(start: date | None, end: date | None, params: dict[str, Any]) -> str:
    clauses = ""
    if start is not None:
        clauses += " AND date >= {start:Date}"
        params["start"] = start
    if end is not None:
        clauses += " AND date <= {end:Date}"
        params["end"] = end
    return clauses


async def trial_balance(
    warehouse: Warehouse,
    tenant_id: str,
    load_ids: Sequence[uuid.UUID],
    *,
    start: date | None = None,
    end: date | None = None,
) -> list[TrialBalanceRow]:
    """One row per account of the general ledger lines of `load_ids` dated inside [start, end], by account.

    The label is the account's label in the chart of accounts (`plan_comptes`) of those loads, else the
    ledger's `account_label`; when several loads disagree, the load listed last in `load_ids` wins (callers
    pass them by period, so the latest period's wording), and within a load the ledger's first line.
    """
    if not load_ids:
        return []
    db = warehouse.database
    params: dict[str, Any] = {"tenant": tenant_id, "loads": list(load_ids)}
    dated = _range_filter(start, end, params)
    # `db` is a checked identifier and `dated` a choice of constant fragments; values are bound.
    sql = f"""
        SELECT g.account,
               if(p.plan_label != '', p.plan_label, g.ledger_label) AS label,
               toString(g.debit), toString(g.credit)
        FROM (
            SELECT account,
                   sum(debit) AS debit,
                   sum(credit) AS credit,
                   ifNull(argMinIf(account_label,
                                   (toInt64(0) - toInt64(indexOf({{loads:Array(UUID)}}, load_id)), row),
                                   ifNull(account_label, '') != ''), '') AS ledger_label
            FROM {db}.grand_livre
            WHERE tenant_id = {{tenant:String}} AND load_id IN {{loads:Array(UUID)}}{dated}
            GROUP BY account
        ) AS g
        LEFT JOIN (
            SELECT account,
                   ifNull(argMax(label, indexOf({{loads:Array(UUID)}}, load_id)), '') AS plan_label
            FROM {db}.plan_comptes
            WHERE tenant_id = {{tenant:String}} AND load_id IN {{loads:Array(UUID)}} AND ifNull(label, '') != ''
            GROUP BY account
        ) AS p ON p.account = g.account
        ORDER BY g.account
    """  # noqa: S608
    rows = await warehouse.query(sql, params)
    return [
        TrialBalanceRow(account=str(account), label=str(label) or None, debit=amount(debit), credit=amount(credit))
        for account, label, debit, credit in rows
    ]


async def ledger_lines(
    warehouse: Warehouse,
    tenant_id: str,
    load_ids: Sequence[uuid.UUID],
    *,
    limit: int,
    start: date | None = None,
    end: date | None = None,
    account: str | None = None,
    journal: str | None = None,
    after: LedgerPosition | None = None,
) -> list[LedgerLine]:
    """Up to `limit` general ledger lines of `load_ids`, in (date, account, load_id, row) order, after `after`."""
    if not load_ids or limit <= 0:
        return []
    db = warehouse.database
    params: dict[str, Any] = {"tenant": tenant_id, "loads": list(load_ids), "limit": limit}
    where = _range_filter(start, end, params)
    if account is not None:
        where += " AND account = {account:String}"
        params["account"] = account
    if journal is not None:
        where += " AND journal = {journal:String}"
        params["journal"] = journal
    if after is not None:
        where += (
            " AND (date, account, load_id, row)"
            " > ({after_date:Date}, {after_account:String}, {after_load:UUID}, {after_row:UInt32})"
        )
        params.update(after_date=after.date, after_account=after.account, after_load=after.load_id, after_row=after.row)
    # `db` is a checked identifier and `where` a choice of constant fragments; values are bound.
    sql = f"""
        SELECT toString(date), journal, piece, account, label, toString(debit), toString(credit), lettrage,
               toString(load_id), row
        FROM {db}.grand_livre
        WHERE tenant_id = {{tenant:String}} AND load_id IN {{loads:Array(UUID)}}{where}
        ORDER BY date, account, load_id, row
        LIMIT {{limit:UInt32}}
    """  # noqa: S608
    rows = await warehouse.query(sql, params)
    return [
        LedgerLine(
            date=date.fromisoformat(day),
            journal=str(journal_code),
            piece=piece,
            account=str(acct),
            label=str(label),
            debit=amount(debit),
            credit=amount(credit),
            lettrage=lettrage,
            load_id=uuid.UUID(load_id),
            row=int(row),
        )
        for day, journal_code, piece, acct, label, debit, credit, lettrage, load_id, row in rows
    ]
