"""Ledger data (docs/api.md, Ledger data): the trial balance and the general ledger lines of the current loads.

Each request resolves the tenant's current loads in PostgreSQL (`loads.current_load_ids`), then reads
the warehouse rows of exactly those loads: a reader sees the old data of a period or the new, never a
mix, never a backup, never another tenant's rows.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query

from comptaflow.common import loads
from comptaflow.common.errors import DependencyUnavailable
from comptaflow.common.tokens import Principal
from comptaflow.common.warehouse import Warehouse, reads
from comptaflow.gateway.auth import CurrentPrincipal, State, visible_tenant
from comptaflow.gateway.errors import ApiError, error_responses
from comptaflow.gateway.schemas import LedgerLineOut, LedgerPage, TrialBalanceOut, TrialBalanceRowOut, money
from comptaflow.gateway.state import GatewayState

router = APIRouter(prefix="/api/v1", tags=["ledger"])

DEFAULT_LEDGER_PAGE = 100
MAX_LEDGER_PAGE = 1000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

PeriodStart = Annotated[
    str | None, Query(description="YYYY-MM-DD; only lines dated on or after this day", examples=["2024-01-01"])
]
PeriodEnd = Annotated[
    str | None, Query(description="YYYY-MM-DD; only lines dated on or before this day", examples=["2024-12-31"])
]

_TRIAL_BALANCE_DESCRIPTION = """
One row per account over the general ledger lines (grand livre des comptes) of the tenant's current
loads dated inside the range (both bounds optional and included), ordered by account;
`balance = debit - credit`. Amounts are decimal strings with two decimals. The label is the account's
label in the chart of accounts of the load, else the ledger's. No loaded data → no rows, totals `"0.00"`.

422 `VALIDATION_ERROR` for a date that is not `YYYY-MM-DD` or a range that ends before it starts;
503 `SERVICE_UNAVAILABLE` when no warehouse is configured.
"""

_LEDGER_DESCRIPTION = f"""
The general ledger lines of the tenant's current loads, ordered by date, then account (then load and
line, for a stable order), optionally filtered by `account` (exact), `journal` (exact code) and a date
range. Pages of `limit` lines (default {DEFAULT_LEDGER_PAGE}, at most {MAX_LEDGER_PAGE}); pass `next_cursor`
back as `cursor` for the next page with the same filters; `next_cursor` is null on the last page.

422 `VALIDATION_ERROR` for a bad date, range or limit; 422 `INVALID_CURSOR` for a cursor this API did
not return; 503 `SERVICE_UNAVAILABLE` when no warehouse is configured.
"""


def _parse_day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        if not _DATE.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(
            422, "VALIDATION_ERROR", f"{name} must be a date YYYY-MM-DD", {"field": name, "value": value}
        ) from None


def _parse_range(start_text: str | None, end_text: str | None) -> tuple[date | None, date | None]:
    start, end = _parse_day(start_text, "period_start"), _parse_day(end_text, "period_end")
    if start is not None and end is not None and end < start:
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            "period_end is before period_start",
            {"period_start": start.isoformat(), "period_end": end.isoformat()},
        )
    return start, end


async def _current_loads(
    state: GatewayState, who: Principal, tenant_id: str, start: date | None, end: date | None
) -> tuple[Warehouse, list[uuid.UUID]]:
    await visible_tenant(state, who, tenant_id)
    async with state.infra.db.acquire() as conn:
        warehouse = state.infra.warehouse
        if warehouse is None:
            raise DependencyUnavailable("no warehouse is configured (COMPTAFLOW_CLICKHOUSE_URL)")
        load_ids = await loads.current_load_ids(conn, tenant_id, start, end)
    return warehouse, load_ids


@router.get(
    "/tenants/{tenant_id}/trial-balance",
    summary="Trial balance (balance générale) of the current loads",
    description=_TRIAL_BALANCE_DESCRIPTION,
    responses=error_responses(401, 404, 422, 503),
)
async def trial_balance(
    tenant_id: str,
    who: CurrentPrincipal,
    state: State,
    period_start: PeriodStart = None,
    period_end: PeriodEnd = None,
) -> TrialBalanceOut:
    start, end = _parse_range(period_start, period_end)
    warehouse, load_ids = await _current_loads(state, who, tenant_id, start, end)
    rows = await reads.trial_balance(warehouse, tenant_id, load_ids, start=start, end=end)
    return TrialBalanceOut(
        rows=[TrialBalanceRowOut.of(r) for r in rows],
        total_debit=money(sum((r.debit for r in rows), Decimal(0))),
        total_credit=money(sum((r.credit for r in rows), Decimal(0))),
    )


@router.get(
    "/tenants/{tenant_id}/ledger",
    summary="General ledger lines of the current loads (cursor pagination)",
    description=_LEDGER_DESCRIPTION,
    responses=error_responses(401, 404, 422, 503),
)
async def ledger(
    tenant_id: str,
    *,
    who: CurrentPrincipal,
    state: State,
    account: Annotated[str | None, Query(description="account number, exact match", max_length=64)] = None,
    journal: Annotated[str | None, Query(description="journal code, exact match", max_length=64)] = None,
    period_start: PeriodStart = None,
    period_end: PeriodEnd = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LEDGER_PAGE, description="lines per page")] = DEFAULT_LEDGER_PAGE,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> LedgerPage:
    start, end = _parse_range(period_start, period_end)
    after = decode_cursor(cursor) if cursor is not None else None
    warehouse, load_ids = await _current_loads(state, who, tenant_id, start, end)
    # One line more than the page tells whether another page follows (no empty last page).
    lines = await reads.ledger_lines(
        warehouse,
        tenant_id,
        load_ids,
        limit=limit + 1,
        start=start,
        end=end,
        account=account,
        journal=journal,
        after=after,
    )
    page = lines[:limit]
    next_cursor = encode_cursor(page[-1].position) if len(lines) > limit else None
    return LedgerPage(items=[LedgerLineOut.of(line) for line in page], next_cursor=next_cursor)


def encode_cursor(position: reads.LedgerPosition) -> str:
    """Opaque to clients: base64url of a small JSON object (the last line's place in the order)."""
    payload = {
        "d": position.date.isoformat(),
        "a": position.account,
        "l": str(position.load_id),
        "r": position.row,
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> reads.LedgerPosition:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload: Any = json.loads(raw)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
        row, account = payload["r"], payload["a"]
        if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < 2**32 or not isinstance(account, str):
            raise ValueError("bad row or account")
        return reads.LedgerPosition(
            date=date.fromisoformat(payload["d"]), account=account, load_id=uuid.UUID(payload["l"]), row=row
        )
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, AttributeError):
        raise ApiError(422, "INVALID_CURSOR", "the cursor is not one this API returned", {"cursor": cursor}) from None
