"""A real `comptaflow pennylane sync` process killed (SIGKILL) in the middle of a sync.

The tenant is synced once in full, its company then changes on the fake's side, and a second full sync runs
against a slow fake (every request delayed) until at least three tables have been applied; the process is
then killed, with no chance to clean up. Each unit of tables is applied in one transaction with its state,
so every table must be either as the first sync left it or as the fake serves it now, never in between,
and the tables of one unit together. A third run (a new job) brings every table to what the fake serves,
row by row, with the fake's counts: keys are primary keys, and nothing is applied twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from comptaflow.common import jobs, tenants
from comptaflow.common.contracts import JobStatus
from comptaflow.common.pennylane import connections
from comptaflow.common.pennylane.tables import NAMES
from comptaflow.common.secrets import Keyring, generate_key
from comptaflow.fakes.pennylane import FakePennylane, FakeServer
from comptaflow.pennylane_sync.sync import UNITS
from tests.e2e.test_pennylane_e2e import assert_mirrors, snapshot
from tests.pennylane_sync.support import Client, expected

pytestmark = [pytest.mark.infra, pytest.mark.slow]

LATENCY_MS = 250
"""Per request while the sync is to be killed: the invoice units take several seconds, the short ones less."""
APPLIED_BEFORE_KILL = 3


def _env(home: Path, pg_dsn: str, secret_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPTAFLOW_")}
    return env | {
        "COMPTAFLOW_HOME": str(home),
        "COMPTAFLOW_DATABASE_URL": pg_dsn,
        "COMPTAFLOW_SECRET_KEY": secret_key,
        "COMPTAFLOW_LOG_FORMAT": "json",
        "COMPTAFLOW_PENNYLANE_SCHEDULE": "false",
        "COMPTAFLOW_PENNYLANE_RATE_LIMIT": "1000",
        "COMPTAFLOW_PENNYLANE_RATE_WINDOW_S": "1",
    }


def _start(tenant: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 — our own CLI, fixed arguments
            [sys.executable, "-m", "comptaflow.cli.main", "pennylane", "sync", "--tenant", tenant, "--full"],
            env=env,
            stdout=out,
            stderr=out,
        )


async def _run(tenant: str, env: dict[str, str], log: Path) -> int:
    process = _start(tenant, env, log)
    try:
        return await asyncio.to_thread(process.wait, 60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
async def connected(pool: asyncpg.Pool) -> AsyncIterator[list[str]]:
    """Tenants connected on the session's database, disabled at teardown (their fake is gone: the schedule
    of a later `comptaflow up` on that database is not to keep asking for their syncs)."""
    made: list[str] = []
    yield made
    await pool.execute("UPDATE pennylane_connections SET enabled = false WHERE tenant_id = ANY($1::text[])", made)


async def _connected(pool: asyncpg.Pool, fake: FakePennylane, base_url: str, key: str) -> Client:
    tenant = f"pl-{uuid.uuid4().hex[:10]}"
    token = f"pl-token-{uuid.uuid4().hex}"
    company = fake.add_company(seed=8, size="small", token=token)
    async with pool.acquire() as conn, conn.transaction():
        await tenants.create_tenant(conn, tenant, "Client tué en route")
        await connections.put_connection(
            conn,
            Keyring.from_setting(key),
            tenant,
            token=SecretStr(token),
            base_url=base_url,
            enabled=True,
            scopes=[],
            company_id=company.id,
            company_name=company.name,
        )
    return Client(tenant, company.id, token, base_url, base_url.removesuffix("/api/external/v2"))


async def _applied_since(pool: asyncpg.Pool, tenant: str, since: datetime) -> set[str]:
    rows = await pool.fetch(
        "SELECT table_name FROM pennylane_tables WHERE tenant_id = $1 AND status = 'SUCCEEDED' AND last_synced_at > $2",
        tenant,
        since,
    )
    return {row["table_name"] for row in rows}


async def _jobs(pool: asyncpg.Pool, tenant: str) -> list[jobs.Job]:
    async with pool.acquire() as conn:
        found = await jobs.list_jobs(conn, tenant, kind="pennylane.sync", status=None, limit=50, after=None)
    return list(reversed(found))  # oldest first


async def test_a_sync_killed_midway_leaves_each_table_whole_and_the_next_run_completes_it(
    tmp_path: Path, pg_dsn: str, pool: asyncpg.Pool, connected: list[str]
) -> None:
    key = generate_key()
    env = _env(tmp_path / "home", pg_dsn, key)
    log = tmp_path / "sync.log"
    fake = FakePennylane(rate_limit=10_000, rate_window=1.0, export_delay=0.1)
    async with FakeServer(fake) as base_url:
        client = await _connected(pool, fake, base_url, key)
        tenant = client.tenant_id
        connected.append(tenant)

        assert await _run(tenant, env, log) == 0, log.read_text()[-3000:]
        before = await snapshot(pool, client)
        assert_mirrors(before, expected(fake, client))

        # Changes on Pennylane's side, in the long units (the invoices) and the short ones.
        fake.mutate(client.company_id, inserts=3, updates=3, deletes=1, seed=21, resources=["customer_invoices"])
        fake.mutate(client.company_id, inserts=2, updates=2, deletes=1, seed=22, resources=["customers"])
        fake.mutate(client.company_id, inserts=2, updates=2, deletes=1, seed=23)

        fake.faults.latency_ms = LATENCY_MS
        started = datetime.now(UTC)
        process = _start(tenant, env, log)
        try:
            deadline = time.monotonic() + 30
            while len(applied := await _applied_since(pool, tenant, started)) < APPLIED_BEFORE_KILL:
                assert process.poll() is None, f"the sync ended first:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"only {sorted(applied)} applied after 30 s"
                await asyncio.sleep(0.02)
            os.kill(process.pid, signal.SIGKILL)
            assert await asyncio.to_thread(process.wait, 30) == -signal.SIGKILL
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        fake.faults.latency_ms = 0

        at_kill = await snapshot(pool, client)
        async with pool.acquire() as conn:
            states = await connections.table_states(conn, tenant)
        (_, killed) = await _jobs(pool, tenant)
        assert killed.status is JobStatus.RUNNING
        applied = await _applied_since(pool, tenant, started)
        running = {name for name, state in states.items() if state.status == "RUNNING"}
        assert len(applied) >= APPLIED_BEFORE_KILL
        assert running, "the kill came after every table was applied"
        assert running.isdisjoint(applied)

        assert await _run(tenant, env, log) == 0, log.read_text()[-3000:]
        after = await snapshot(pool, client)
        served = expected(fake, client)
        assert_mirrors(after, served)

    # At the kill, each table was whole: as the first sync left it, or as the fake serves it now.
    for table in NAMES:
        assert at_kill[table] in (before[table], after[table]), f"{table} was half applied"
    for table in applied:
        assert at_kill[table] == after[table], table
    for table in running:
        assert at_kill[table] == before[table], table
        assert states[table].rows == len(before[table]), table
    # The kill did stop something that had changed (the invoices take longest).
    assert {"customer_invoices", "customer_invoice_lines"} <= running
    assert before["customer_invoices"] != after["customer_invoices"]
    # The tables of a unit moved together: their states, and their rows (none new beside one still old).
    for unit in UNITS:
        assert len({t in applied for t in unit}) == 1, unit
        moved = {at_kill[t] == after[t] for t in unit if before[t] != after[t]}
        assert len(moved) <= 1, unit

    # The rerun was a job of its own; the schema holds the fake's rows, once each.
    (first, killed_again, rerun) = await _jobs(pool, tenant)
    assert (first.status, killed_again.id, rerun.status) == (JobStatus.SUCCEEDED, killed.id, JobStatus.SUCCEEDED)
    async with pool.acquire() as conn:
        for table, rows in served.items():
            count = await conn.fetchval(f"SELECT count(*) FROM {client.schema}.{table}")  # noqa: S608 — test names
            assert count == len(rows), table
        states = await connections.table_states(conn, tenant)
    assert {state.status for state in states.values()} == {"SUCCEEDED"}
    assert {name: state.rows for name, state in states.items() if name != "fec"} == {
        table: len(rows) for table, rows in served.items()
    }
    assert states["fec"].rows == len(after["fec"]) > 0
