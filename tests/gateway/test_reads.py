"""Ledger data (docs/api.md, Ledger data): trial balance and ledger lines of the current loads, from chdb.

Tenant A has January loaded twice (the first load kept as a backup) and February once; tenant B has
January. Only the current loads of the tenant asked for may ever show.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from comptaflow.common import loads
from comptaflow.common.contracts import BatchStatus
from comptaflow.common.settings import Settings
from comptaflow.common.tokens import Role
from comptaflow.common.warehouse import Warehouse
from tests.gateway.support import Gateway, running_gateway
from tests.gateway.test_auth_tenants import assert_error
from tests.gateway.test_loads import FEB, JAN, make_batch

pytestmark = pytest.mark.infra

# (date, journal, piece, account, account_label, label, debit, credit, lettrage)
Line = tuple[date, str, str | None, str, str | None, str, str, str, str | None]

JAN_OLD: list[Line] = [
    (date(2024, 1, 10), "VT", "F0", "411000", "Old", "Ancienne facture", "500.00", "0.00", None),
    (date(2024, 1, 10), "VT", "F0", "706000", "Old", "Ancienne facture", "0.00", "500.00", None),
]
JAN_CURRENT: list[Line] = [
    (date(2024, 1, 5), "VT", "F1", "411000", "Clients (GL)", "Facture F1", "120.00", "0.00", "A"),
    (date(2024, 1, 5), "VT", "F1", "706000", None, "Facture F1", "0.00", "100.00", None),
    (date(2024, 1, 5), "VT", "F1", "445710", "TVA collectée", "Facture F1", "0.00", "20.00", None),
    (date(2024, 1, 20), "BQ", "R1", "512000", "Banque", "Règlement F1", "120.00", "0.00", None),
    (date(2024, 1, 20), "BQ", None, "411000", "Clients (GL)", "Règlement F1", "0.00", "120.00", "A"),
]
FEB_CURRENT: list[Line] = [
    (date(2024, 2, 10), "VT", "F2", "411000", None, "Facture F2", "1234.50", "0.00", None),
    (date(2024, 2, 10), "VT", "F2", "706000", "Ventes", "Facture F2", "0.00", "1234.50", None),
]
OTHER_TENANT: list[Line] = [
    (date(2024, 1, 5), "VT", "X1", "411000", "Clients", "Autre client", "999.99", "0.00", None),
    (date(2024, 1, 5), "VT", "X1", "706000", "Ventes", "Autre client", "0.00", "999.99", None),
]


def ledger_parquet(tenant: str, load_id: uuid.UUID, lines: list[Line]) -> tuple[bytes, list[str]]:
    frame = pl.DataFrame(
        {
            "tenant_id": [tenant] * len(lines),
            "load_id": [str(load_id)] * len(lines),
            "row": list(range(len(lines))),
            "date": [line[0] for line in lines],
            "journal": [line[1] for line in lines],
            "piece": [line[2] for line in lines],
            "account": [line[3] for line in lines],
            "account_label": [line[4] for line in lines],
            "label": [line[5] for line in lines],
            "debit": [Decimal(line[6]) for line in lines],
            "credit": [Decimal(line[7]) for line in lines],
            "lettrage": [line[8] for line in lines],
            "due_date": [None] * len(lines),
            "collectif": [None] * len(lines),
        },
        schema_overrides={
            "row": pl.UInt32,
            "piece": pl.String,
            "account_label": pl.String,
            "debit": pl.Decimal(18, 2),
            "credit": pl.Decimal(18, 2),
            "lettrage": pl.String,
            "due_date": pl.Date,
            "collectif": pl.String,
        },
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue(), frame.columns


def plan_parquet(tenant: str, load_id: uuid.UUID, accounts: dict[str, str]) -> tuple[bytes, list[str]]:
    frame = pl.DataFrame(
        {
            "tenant_id": [tenant] * len(accounts),
            "load_id": [str(load_id)] * len(accounts),
            "account": list(accounts),
            "label": list(accounts.values()),
            "account_type": [None] * len(accounts),
        },
        schema_overrides={"account_type": pl.String},
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue(), frame.columns


@pytest.fixture
async def warehouse(chdb_url: str) -> AsyncIterator[Warehouse]:
    the_warehouse = Warehouse(chdb_url)
    await the_warehouse.open()
    await the_warehouse.migrate()
    yield the_warehouse
    await the_warehouse.close()


@pytest.fixture
async def gateway(settings: Settings, chdb_url: str, warehouse: Warehouse) -> AsyncIterator[Gateway]:
    async with running_gateway(settings.model_copy(update={"clickhouse_url": chdb_url})) as running:
        yield running


async def load(
    gw: Gateway, warehouse: Warehouse, tenant: str, period: tuple[date, date], lines: list[Line], **plan: str
) -> uuid.UUID:
    """Write a load's rows to the warehouse, then make it the current load of its period."""
    batch_id = await make_batch(gw, tenant, BatchStatus.COMPLETED, period)
    await warehouse.insert_parquet("grand_livre", *ledger_parquet(tenant, batch_id, lines))
    # The same lines in the tiers ledger: never counted by the trial balance nor listed by the ledger.
    await warehouse.insert_parquet("grand_livre_tiers", *ledger_parquet(tenant, batch_id, lines))
    if plan:
        await warehouse.insert_parquet("plan_comptes", *plan_parquet(tenant, batch_id, plan))
    async with gw.infra.db.acquire() as conn, conn.transaction():
        await loads.switch(
            conn, tenant_id=tenant, start=period[0], end=period[1], batch_id=batch_id, kind="excel", backup_prefix="b/"
        )
    return batch_id


@pytest.fixture
async def tenant(gateway: Gateway, warehouse: Warehouse) -> str:
    """Tenant A (January reloaded: its first load is a backup; February), and tenant B beside it."""
    name = await gateway.create_tenant()
    await load(gateway, warehouse, name, JAN, JAN_OLD, **{"411000": "Old clients"})
    await load(gateway, warehouse, name, JAN, JAN_CURRENT, **{"411000": "Clients", "512000": ""})
    await load(gateway, warehouse, name, FEB, FEB_CURRENT)
    other = await gateway.create_tenant()
    await load(gateway, warehouse, other, JAN, OTHER_TENANT, **{"411000": "Leur client"})
    return name


def tb_row(account: str, label: str | None, debit: str, credit: str, balance: str) -> dict[str, Any]:
    return {"account": account, "label": label, "debit": debit, "credit": credit, "balance": balance}


async def get(gw: Gateway, tenant: str, path: str, **params: Any) -> Any:
    response = await gw.client.get(
        f"/api/v1/tenants/{tenant}/{path}", params=params, headers=gw.auth(tenant, role=Role.VIEWER)
    )
    assert response.status_code == 200, response.text
    return response.json()


# --- trial balance -----------------------------------------------------------------------------------


async def test_the_trial_balance_sums_the_current_loads_only(gateway: Gateway, tenant: str) -> None:
    assert await get(gateway, tenant, "trial-balance") == {
        "rows": [
            tb_row("411000", "Clients", "1354.50", "120.00", "1234.50"),
            tb_row("445710", "TVA collectée", "0.00", "20.00", "-20.00"),
            tb_row("512000", "Banque", "120.00", "0.00", "120.00"),
            tb_row("706000", "Ventes", "0.00", "1334.50", "-1334.50"),
        ],
        "total_debit": "1474.50",
        "total_credit": "1474.50",
    }


async def test_the_trial_balance_keeps_the_lines_dated_inside_the_range(gateway: Gateway, tenant: str) -> None:
    assert await get(gateway, tenant, "trial-balance", period_start="2024-01-01", period_end="2024-01-31") == {
        "rows": [
            tb_row("411000", "Clients", "120.00", "120.00", "0.00"),
            tb_row("445710", "TVA collectée", "0.00", "20.00", "-20.00"),
            tb_row("512000", "Banque", "120.00", "0.00", "120.00"),
            tb_row("706000", None, "0.00", "100.00", "-100.00"),
        ],
        "total_debit": "240.00",
        "total_credit": "240.00",
    }
    assert await get(gateway, tenant, "trial-balance", period_start="2024-01-10") == {
        "rows": [
            tb_row("411000", "Clients", "1234.50", "120.00", "1114.50"),
            tb_row("512000", "Banque", "120.00", "0.00", "120.00"),
            tb_row("706000", "Ventes", "0.00", "1234.50", "-1234.50"),
        ],
        "total_debit": "1354.50",
        "total_credit": "1354.50",
    }
    assert await get(gateway, tenant, "trial-balance", period_end="2023-12-31") == {
        "rows": [],
        "total_debit": "0.00",
        "total_credit": "0.00",
    }


async def test_a_tenant_without_loads_has_an_empty_trial_balance_and_ledger(gateway: Gateway) -> None:
    empty = await gateway.create_tenant()
    assert await get(gateway, empty, "trial-balance") == {"rows": [], "total_debit": "0.00", "total_credit": "0.00"}
    assert await get(gateway, empty, "ledger") == {"items": [], "next_cursor": None}


# --- ledger --------------------------------------------------------------------------------------------


def item(line: Line) -> dict[str, Any]:
    day, journal, piece, account, _account_label, label, debit, credit, lettrage = line
    return {
        "date": day.isoformat(),
        "journal": journal,
        "piece": piece,
        "account": account,
        "label": label,
        "debit": debit,
        "credit": credit,
        "lettrage": lettrage,
    }


# Ordered by date, then account (then load and line).
ALL_LINES = [
    item(JAN_CURRENT[0]),
    item(JAN_CURRENT[2]),
    item(JAN_CURRENT[1]),
    item(JAN_CURRENT[4]),
    item(JAN_CURRENT[3]),
    item(FEB_CURRENT[0]),
    item(FEB_CURRENT[1]),
]


async def test_the_ledger_lists_the_lines_of_the_current_loads_in_order(gateway: Gateway, tenant: str) -> None:
    assert await get(gateway, tenant, "ledger") == {"items": ALL_LINES, "next_cursor": None}


async def test_the_ledger_filters_by_account_journal_and_range(gateway: Gateway, tenant: str) -> None:
    by_account = await get(gateway, tenant, "ledger", account="411000")
    assert by_account == {"items": [ALL_LINES[0], ALL_LINES[3], ALL_LINES[5]], "next_cursor": None}
    by_journal = await get(gateway, tenant, "ledger", journal="BQ")
    assert by_journal == {"items": [ALL_LINES[3], ALL_LINES[4]], "next_cursor": None}
    in_range = await get(gateway, tenant, "ledger", journal="VT", period_start="2024-01-06", period_end="2024-02-29")
    assert in_range == {"items": ALL_LINES[5:], "next_cursor": None}
    assert (await get(gateway, tenant, "ledger", account="999999"))["items"] == []


@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7])
async def test_pagination_walks_every_line_once_in_order(gateway: Gateway, tenant: str, limit: int) -> None:
    seen: list[dict[str, Any]] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        page = await get(gateway, tenant, "ledger", **params)
        pages += 1
        assert len(page["items"]) <= limit
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["items"]) == limit
    assert seen == ALL_LINES
    assert pages == -(-len(ALL_LINES) // limit)


# --- refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("trial-balance", {"period_start": "2024-13-01"}, "VALIDATION_ERROR"),
        ("trial-balance", {"period_end": "20240131"}, "VALIDATION_ERROR"),
        ("trial-balance", {"period_start": "2024-02-01", "period_end": "2024-01-31"}, "VALIDATION_ERROR"),
        ("ledger", {"period_start": "1706745600"}, "VALIDATION_ERROR"),
        ("ledger", {"limit": "1001"}, "VALIDATION_ERROR"),
        ("ledger", {"limit": "0"}, "VALIDATION_ERROR"),
        ("ledger", {"cursor": "not-a-cursor"}, "INVALID_CURSOR"),
        ("ledger", {"cursor": "eyJkIjoiMjAyNC0wMS0wNSJ9"}, "INVALID_CURSOR"),  # {"d":"2024-01-05"}
    ],
)
async def test_bad_parameters_are_422(
    gateway: Gateway, tenant: str, path: str, params: dict[str, str], code: str
) -> None:
    response = await gateway.client.get(f"/api/v1/tenants/{tenant}/{path}", params=params, headers=gateway.auth(tenant))
    assert response.status_code == 422
    assert_error(response.json(), code)


async def test_a_limit_of_1000_is_allowed(gateway: Gateway, tenant: str) -> None:
    assert await get(gateway, tenant, "ledger", limit=1000) == {"items": ALL_LINES, "next_cursor": None}


@pytest.mark.parametrize("path", ["trial-balance", "ledger"])
async def test_other_tenants_and_anonymous_callers_are_refused(gateway: Gateway, tenant: str, path: str) -> None:
    hidden = await gateway.client.get(f"/api/v1/tenants/{tenant}/{path}", headers=gateway.auth("someone-else"))
    assert hidden.status_code == 404
    assert_error(hidden.json(), "NOT_FOUND")
    anonymous = await gateway.client.get(f"/api/v1/tenants/{tenant}/{path}")
    assert anonymous.status_code == 401
    assert_error(anonymous.json(), "UNAUTHORIZED")


@pytest.mark.parametrize("path", ["trial-balance", "ledger"])
async def test_without_a_warehouse_the_read_api_is_unavailable(settings: Settings, path: str) -> None:
    async with running_gateway(settings) as gw:
        name = await gw.create_tenant()
        response = await gw.client.get(f"/api/v1/tenants/{name}/{path}", headers=gw.auth(name))
    assert response.status_code == 503
    assert_error(response.json(), "SERVICE_UNAVAILABLE")
