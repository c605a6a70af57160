"""A tenant connected to a fake Pennylane company, a sync run as the worker runs it, and the comparison
of its schema with the fake's data, table by table and row by row."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg
from pydantic import SecretStr

from comptaflow.common import jobs, tenants
from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.contracts import PennylaneSyncRequested, SyncMode
from comptaflow.common.pennylane import connections
from comptaflow.common.pennylane.tables import NAMES
from comptaflow.common.registry import discover
from comptaflow.common.secrets import Keyring, generate_key
from comptaflow.common.settings import Settings
from comptaflow.fakes.pennylane import FakePennylane
from comptaflow.pennylane_sync.handler import KIND, SyncHandler
from comptaflow.pennylane_sync.sync import Progress

KEYRING = Keyring.from_setting(generate_key())
OPEN = ("open", "reopen")


def settings_for(pg_dsn: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": SecretStr(pg_dsn),
        "delivery_limit": 3,
        "pennylane_rate_limit": 1000,
        "pennylane_rate_window_s": 1.0,
        "pennylane_overlap_s": 60.0,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Client:
    """A tenant of ours and the fake company its token reads."""

    tenant_id: str
    company_id: int
    token: str
    base_url: str
    origin: str

    @property
    def schema(self) -> str:
        return connections.schema_name(self.tenant_id)


async def connect(
    pool: asyncpg.Pool,
    fake: FakePennylane,
    base_url: str,
    *,
    seed: int = 1,
    size: str = "small",
    scopes: list[str] | None = None,
) -> Client:
    tenant = f"pl-{uuid.uuid4().hex[:10]}"
    token = f"token-{tenant}"
    company = fake.add_company(seed=seed, size=size, token=token, scopes=scopes)
    async with pool.acquire() as conn, conn.transaction():
        await tenants.create_tenant(conn, tenant, f"Client {tenant}")
        await connections.put_connection(
            conn,
            KEYRING,
            tenant,
            token=SecretStr(token),
            base_url=base_url,
            enabled=True,
            scopes=[],
            company_id=company.id,
            company_name=company.name,
        )
    origin = base_url.removesuffix("/api/external/v2")
    return Client(tenant, company.id, token, base_url, origin)


async def share(pool: asyncpg.Pool, client: Client) -> Client:
    """Another tenant of ours connected with `client`'s token (so to the same company)."""
    tenant = f"pl-{uuid.uuid4().hex[:10]}"
    async with pool.acquire() as conn, conn.transaction():
        await tenants.create_tenant(conn, tenant, f"Client {tenant}")
        await connections.put_connection(
            conn,
            KEYRING,
            tenant,
            token=SecretStr(client.token),
            base_url=client.base_url,
            enabled=True,
            scopes=[],
            company_id=client.company_id,
            company_name=None,
        )
    return Client(tenant, client.company_id, client.token, client.base_url, client.origin)


async def new_job(
    pool: asyncpg.Pool, client: Client, mode: SyncMode = SyncMode.INCREMENTAL, tables: Iterable[str] | None = None
) -> jobs.Job:
    """A PENDING sync job of the tenant, as the gateway or the scheduler creates it."""
    names = list(tables) if tables is not None else None
    async with pool.acquire() as conn:
        job, _ = await jobs.create_job(conn, client.tenant_id, KIND, {"mode": mode.value, "tables": names})
    return job


async def sync(
    pool: asyncpg.Pool,
    settings: Settings,
    client: Client,
    mode: SyncMode = SyncMode.INCREMENTAL,
    tables: Iterable[str] | None = None,
    *,
    progress: Progress | None = None,
    job_id: uuid.UUID | None = None,
) -> jobs.Job:
    """One sync as the worker runs it (the job, the lock, the handler); the job after."""
    names = tuple(tables) if tables is not None else None
    if job_id is None:
        job_id = (await new_job(pool, client, mode, names)).id
    bus = MemoryBus(service="pennylane-sync", topology=discover().topology)
    await bus.connect()
    try:
        handler = SyncHandler(pool=pool, bus=bus, settings=settings, keyring=KEYRING, progress=progress)
        event = PennylaneSyncRequested(tenant_id=client.tenant_id, job_id=job_id, mode=mode, tables=names)
        await handler.handle(event, None)
    finally:
        await bus.close()
    async with pool.acquire() as conn:
        done = await jobs.get_job(conn, job_id)
    assert done is not None
    return done


def _without(items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != key} for item in items]


def expected(fake: FakePennylane, client: Client) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """What the schema must hold after a sync: the fake's data as its API serves it, by table and key."""
    dump = {}
    for table in NAMES:
        if table in ("trial_balance", "fec"):
            continue
        items = fake.dump(table, client.company_id, origin=client.origin)
        if table.endswith("_invoice_lines"):
            dump[table] = {(i["id"],): item for i, item in zip(items, _without(items, "invoice_id"), strict=True)}
        else:
            dump[table] = {(item["id"],): item for item in items}
    balances: dict[tuple[Any, ...], dict[str, Any]] = {}
    for year in fake.dump("fiscal_years", client.company_id, origin=client.origin):
        if year["status"] not in OPEN:
            continue
        for item in fake.dump(
            "trial_balance",
            client.company_id,
            origin=client.origin,
            period_start=date.fromisoformat(year["start"]),
            period_end=date.fromisoformat(year["finish"]),
        ):
            balances[(year["id"], item["number"])] = item
    dump["trial_balance"] = balances
    return dump


async def stored(pool: asyncpg.Pool, client: Client, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    from comptaflow.pennylane_sync.schema import KEYS

    keys = KEYS[table]
    async with pool.acquire() as conn:
        rows = await conn.fetch(f"SELECT {', '.join(keys)}, item FROM {client.schema}.{table}")  # noqa: S608
    return {tuple(row[k] for k in keys): row["item"] for row in rows}


async def assert_mirrors(pool: asyncpg.Pool, fake: FakePennylane, client: Client) -> None:
    """Every table (but the FEC) equals the fake's data, row by row."""
    for table, want in expected(fake, client).items():
        have = await stored(pool, client, table)
        assert set(have) == set(want), f"{table}: keys differ ({len(have)} stored, {len(want)} expected)"
        different = [key for key in want if have[key] != want[key]]
        assert not different, f"{table}: {len(different)} rows differ, e.g. {different[0]}"
