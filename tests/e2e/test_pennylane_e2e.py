"""The Pennylane sync end to end, through the public API and the real broker.

The gateway (uvicorn on a port) and the `pennylane-sync` worker, each with its own connections to the
machine's PostgreSQL, RabbitMQ and SeaweedFS; Pennylane is the fake (`comptaflow.fakes.pennylane`) over
real HTTP in this process. A tenant is created and connected through the API, synced in full, changed on
the fake's side, synced incrementally, then read through its BI login; each time its schema must hold
what the fake serves, row by row. Then the same service as `comptaflow up` and `comptaflow serve` run it,
and its scheduler asking for a newly connected tenant's first sync by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import pytest
import websockets
from pydantic import SecretStr

from comptaflow.cli.embedded import S3Endpoint, free_port
from comptaflow.cli.runtime import HttpServer
from comptaflow.common import bi_logins, db, jobs, outbox, tenants
from comptaflow.common.contracts import PennylaneSyncRequested, SyncMode
from comptaflow.common.infra import Infra, open_infra
from comptaflow.common.pennylane import connections
from comptaflow.common.pennylane.tables import BY_NAME, NAMES, Strategy
from comptaflow.common.secrets import Keyring, generate_key
from comptaflow.common.settings import Settings
from comptaflow.common.tokens import Role, mint
from comptaflow.common.worker import Worker
from comptaflow.fakes.pennylane import FakePennylane, FakeServer
from comptaflow.gateway.app import create_app
from comptaflow.pennylane_sync.scheduler import Schedule, Scheduler
from comptaflow.pennylane_sync.service import SERVICE as PENNYLANE_SYNC
from tests.e2e.test_up import _env, _wait_ready
from tests.pennylane_sync.support import Client, expected, stored

pytestmark = pytest.mark.infra

JWT_SECRET = "a-test-secret-of-sufficient-length-0123456789"
FAST = {"pennylane_rate_limit": 1000, "pennylane_rate_window_s": 1.0}
"""Our pacing, far above what these tests send: the fakes allow as much."""
FINAL = ("SUCCEEDED", "FAILED")
CHANGELOG = frozenset(t.name for t in BY_NAME.values() if t.strategy is Strategy.CHANGELOG)

Rows = dict[tuple[Any, ...], dict[str, Any]]


def new_fake() -> FakePennylane:
    return FakePennylane(rate_limit=10_000, rate_window=1.0, export_delay=0.1)


# --- the platform under test ------------------------------------------------------------------------------


@dataclass
class Stack:
    """The gateway on a port and the pennylane-sync worker, as separate components."""

    base_url: str
    settings: Settings
    gateway: Infra
    worker: Infra

    def token(self, *tenant_ids: str, role: Role = Role.ACCOUNTANT) -> str:
        assert self.settings.jwt_secret is not None
        return mint(self.settings.jwt_secret.get_secret_value(), sub="e2e", role=role, tenants=tenant_ids, ttl=600)

    def client(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def admin(self) -> httpx.AsyncClient:
        return self.client(self.token("*", role=Role.ADMIN))

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/api/v1/ws"

    @property
    def pool(self) -> asyncpg.Pool:
        return self.gateway.db


@contextlib.asynccontextmanager
async def running_stack(settings: Settings) -> AsyncIterator[Stack]:
    assert settings.jwt_secret is not None
    async with (
        open_infra(settings, service="gateway") as gateway,
        open_infra(settings, service=PENNYLANE_SYNC.name) as worker_infra,
    ):
        worker = Worker(PENNYLANE_SYNC, worker_infra)
        await worker.start()
        http = HttpServer(
            create_app(gateway, jwt_secret=settings.jwt_secret.get_secret_value()), host="127.0.0.1", port=0
        )
        port = await http.start()
        try:
            yield Stack(f"http://127.0.0.1:{port}", settings, gateway, worker_infra)
        finally:
            await http.stop()
            await worker.stop(grace=5)


@pytest.fixture
def sync_settings(amqp_settings: Settings) -> Settings:
    """Real RabbitMQ, PostgreSQL and S3; a key for tenant secrets; no schedule (syncs run when asked)."""
    return amqp_settings.model_copy(
        update={"secret_key": SecretStr(generate_key()), "pennylane_schedule": False, **FAST}
    )


@pytest.fixture
async def stack(sync_settings: Settings) -> AsyncIterator[Stack]:
    async with running_stack(sync_settings) as running:
        yield running


@pytest.fixture
async def connected(pool: asyncpg.Pool) -> AsyncIterator[list[str]]:
    """Tenants a test connects on the session's database, disabled at teardown: their fake is gone, and the
    schedule of a later `comptaflow up` on that database is not to keep asking for their syncs."""
    made: list[str] = []
    yield made
    await pool.execute("UPDATE pennylane_connections SET enabled = false WHERE tenant_id = ANY($1::text[])", made)


@pytest.fixture
def database(pg_dsn: str) -> Iterator[str]:
    """A migrated database of its own on the test server (a schedule there sees no other test's tenants)."""
    name = f"cf_test_{uuid.uuid4().hex[:12]}"
    base, _, _ = pg_dsn.rpartition("/")
    dsn = f"{base}/{name}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(pg_dsn, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def migrate() -> None:
        pool = await db.create_pool(dsn, max_size=1)
        try:
            await db.migrate(pool)
        finally:
            await pool.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    asyncio.run(migrate())
    yield dsn
    asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- through the API ----------------------------------------------------------------------------------------


async def create_tenant(admin: httpx.AsyncClient) -> str:
    tenant = f"pl-{uuid.uuid4().hex[:10]}"
    response = await admin.post("/api/v1/tenants", json={"id": tenant, "name": "Cabinet Lefèvre SARL"})
    assert response.status_code == 201, response.text
    return tenant


async def connect(http: httpx.AsyncClient, tenant: str, fake: FakePennylane, base_url: str, *, seed: int) -> Client:
    """A company of the fake with its own token, connected to `tenant` with `PUT …/pennylane`."""
    token = f"pl-token-{uuid.uuid4().hex}"
    company = fake.add_company(seed=seed, size="small", token=token)
    response = await http.put(f"/api/v1/tenants/{tenant}/pennylane", json={"api_token": token, "base_url": base_url})
    assert response.status_code == 200, response.text
    assert token not in response.text
    body = response.json()
    assert (body["configured"], body["base_url"], body["enabled"]) == (True, base_url, True)
    assert body["company"] == {"id": company.id, "name": company.name}
    assert body["missing_scopes"] == {}
    return Client(tenant, company.id, token, base_url, base_url.removesuffix("/api/external/v2"))


async def start_sync(http: httpx.AsyncClient, tenant: str, mode: SyncMode) -> str:
    response = await http.post(f"/api/v1/tenants/{tenant}/pennylane/sync", json={"mode": mode.value})
    assert response.status_code == 202, response.text
    assert set(response.json()) == {"job_id"}
    job_id: str = response.json()["job_id"]
    return job_id


async def job_of(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def wait_for_job(http: httpx.AsyncClient, job_id: str, *, within: float = 45) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        job = await job_of(http, job_id)
        if job["status"] in FINAL:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {within:.0f} s: {job}")
        await asyncio.sleep(0.1)


async def state_of(http: httpx.AsyncClient, tenant: str) -> dict[str, dict[str, Any]]:
    response = await http.get(f"/api/v1/tenants/{tenant}/pennylane/state")
    assert response.status_code == 200, response.text
    entries = response.json()["tables"]
    assert [e["table"] for e in entries] == list(NAMES)
    return {e["table"]: e for e in entries}


async def synced_live(stack: Stack, http: httpx.AsyncClient, tenant: str, mode: SyncMode) -> tuple[str, list[Any]]:
    """Ask for a sync while subscribed to the tenant's events; the job and its events, up to the final one."""
    async with websockets.connect(f"{stack.ws_url}?token={stack.token(tenant)}") as ws:
        await ws.send(json.dumps({"subscribe": {"tenant_id": tenant}}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack == {"type": "subscribed", "tenant_id": tenant}
        job_id = await start_sync(http, tenant, mode)
        events: list[Any] = []
        while not events or events[-1]["status"] not in FINAL:
            event = json.loads(await asyncio.wait_for(ws.recv(), 45))
            assert event.get("job_id") == job_id, event  # the tenant's only job
            events.append(event)
    return job_id, events


def assert_announced(events: list[Any], tenant: str, job_id: str, tables: list[str]) -> None:
    """One event per table (its stage), in order, the last one the job's SUCCEEDED."""
    assert all(e["type"] == "status" and e["tenant_id"] == tenant and e["job_id"] == job_id for e in events)
    assert all(e["service"] == "pennylane-sync" for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress)
    assert [e["status"] for e in events] == ["RUNNING"] * (len(events) - 1) + ["SUCCEEDED"]
    stages = [e["stage"] for e in events]
    assert (stages[0], stages[-1]) == ("connect", "succeeded")
    assert sorted(stages[1:-1]) == sorted(tables)
    assert all(e["message"].startswith(f"{e['stage']}: ") for e in events[1:-1])


# --- the schema ---------------------------------------------------------------------------------------------


async def snapshot(pool: asyncpg.Pool, client: Client) -> dict[str, Rows]:
    """Every table of the tenant's schema, by key."""
    return {table: await stored(pool, client, table) for table in NAMES}


def assert_mirrors(have: Mapping[str, Rows], want: Mapping[str, Rows]) -> None:
    """Every table but the FEC (which the fake does not dump) equal to what the fake serves, row by row."""
    assert set(want) == set(NAMES) - {"fec"}
    for table, rows in want.items():
        assert set(have[table]) == set(rows), f"{table}: {len(have[table])} rows stored, {len(rows)} served"
        different = [key for key in rows if have[table][key] != rows[key]]
        assert not different, f"{table}: {len(different)} rows differ, e.g. {different[0]}"


def written(before: Rows, after: Rows) -> dict[str, int]:
    """What a sync from `before` to `after` writes: rows inserted, rows whose item changed, rows deleted."""
    return {
        "inserted": len(after.keys() - before.keys()),
        "updated": sum(1 for key in after.keys() & before.keys() if after[key] != before[key]),
        "deleted": len(before.keys() - after.keys()),
    }


def stats_by_table(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["table"]: row for row in job["stats"]["tables"]}


async def bi_login(creds: Mapping[str, Any]) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=creds["host"],
        port=creds["port"],
        database=creds["database"],
        user=creds["user"],
        password=creds["password"],
        timeout=10,
    )


# --- 1. the whole flow ----------------------------------------------------------------------------------------


async def test_a_tenant_connected_through_the_api_is_synced_full_then_incrementally_and_read_by_its_bi_login(
    stack: Stack, connected: list[str]
) -> None:
    fake = new_fake()
    pool = stack.pool
    async with FakeServer(fake) as base_url, stack.admin() as admin:
        tenant = await create_tenant(admin)
        connected.append(tenant)
        async with stack.client(stack.token(tenant)) as http:
            client = await connect(http, tenant, fake, base_url, seed=3)
            got = await http.get(f"/api/v1/tenants/{tenant}/pennylane")
            assert got.json()["configured"] is True
            assert client.token not in got.text

            # Full: every table, the FEC included, one stage per table on the WebSocket.
            job_id, events = await synced_live(stack, http, tenant, SyncMode.FULL)
            job = await wait_for_job(http, job_id)
            assert (job["status"], job["kind"], job["errors"]) == ("SUCCEEDED", "pennylane.sync", [])
            assert_announced(events, tenant, job_id, list(NAMES))
            assert job["message"] == f"{len(NAMES)} tables synced, {job['stats']['requests']} requests"
            served = expected(fake, client)
            full = await snapshot(pool, client)
            assert_mirrors(full, served)
            assert len(full["customers"]) == len(fake.dump("customers", client.company_id)) > 0
            assert len(full["ledger_entry_lines"]) == len(fake.dump("ledger_entry_lines", client.company_id)) > 0
            assert len(full["fec"]) > 0
            full_stats = stats_by_table(job)
            for table, rows in full.items():
                counts = {k: full_stats[table][k] for k in ("inserted", "updated", "deleted", "rows")}
                assert counts == {"inserted": len(rows), "updated": 0, "deleted": 0, "rows": len(rows)}, table
            state = await state_of(http, tenant)
            for table, entry in state.items():
                assert (entry["status"], entry["mode"], entry["error"]) == ("SUCCEEDED", "full", None), entry
                assert entry["rows"] == len(full[table]), table
                assert (entry["cursor_at"] is not None) is (table in CHANGELOG), entry

            # Changes on Pennylane's side: customers and ledger lines for sure, then anything.
            changes = fake.mutate(client.company_id, inserts=2, updates=2, deletes=1, seed=11, resources=["customers"])
            changes += fake.mutate(
                client.company_id, inserts=1, updates=1, deletes=1, seed=12, resources=["ledger_entry_lines"]
            )
            changes += fake.mutate(client.company_id, inserts=4, updates=4, deletes=2, seed=13)
            assert {"customers", "ledger_entry_lines"} <= {c["resource"] for c in changes}

            # Incremental: the changelogs since each checkpoint; every table but the FEC.
            job_id, events = await synced_live(stack, http, tenant, SyncMode.INCREMENTAL)
            job = await wait_for_job(http, job_id)
            assert (job["status"], job["errors"]) == ("SUCCEEDED", [])
            incremental_tables = [t for t in NAMES if t != "fec"]
            assert_announced(events, tenant, job_id, incremental_tables)
            served = expected(fake, client)
            after = await snapshot(pool, client)
            assert_mirrors(after, served)
            assert after["fec"] == full["fec"]  # an incremental sync leaves the FEC alone
            assert after["customers"] != full["customers"]
            assert after["ledger_entry_lines"] != full["ledger_entry_lines"]
            incremental_stats = stats_by_table(job)
            assert sorted(incremental_stats) == sorted(incremental_tables)
            for table in incremental_tables:
                row = incremental_stats[table]
                assert row["mode"] == "incremental"
                assert "fallback" not in row, row  # read from the changelog, not listed again
                counts = {k: row[k] for k in ("inserted", "updated", "deleted")}
                assert counts == written(full[table], after[table]), table
                assert row["rows"] == len(after[table]), table
            state = await state_of(http, tenant)
            for table, entry in state.items():
                mode = "full" if table == "fec" else "incremental"
                assert (entry["status"], entry["mode"], entry["rows"]) == ("SUCCEEDED", mode, len(after[table]))
            assert all(client.token not in text for text in (json.dumps(job), json.dumps(state), json.dumps(events)))

        # Another tenant, synced too: its schema is no business of the first one's login.
        other = await create_tenant(admin)
        connected.append(other)
        async with stack.client(stack.token(other)) as http:
            await connect(http, other, fake, base_url, seed=4)
            other_job = await wait_for_job(http, await start_sync(http, other, SyncMode.INCREMENTAL))
            assert other_job["status"] == "SUCCEEDED", other_job["errors"]

        try:
            issued = await admin.post(f"/api/v1/tenants/{tenant}/bi-credentials")
            assert issued.status_code == 201, issued.text
            assert issued.headers["cache-control"] == "no-store"
            creds = issued.json()
            assert creds["user"] == "cf_bi_" + tenant.replace("-", "_")
            login = await bi_login(creds)
            try:
                schema = connections.schema_name(tenant)
                count = await login.fetchval(f"SELECT count(*) FROM {schema}.customers")  # noqa: S608 — test names
                assert count == len(fake.dump("customers", client.company_id)) == len(after["customers"])
                assert await login.fetchval("SELECT count(*) FROM ledger_entry_lines") == len(
                    fake.dump("ledger_entry_lines", client.company_id)
                )
                for forbidden in (
                    f"{connections.schema_name(other)}.customers",
                    "public.tenant_secrets",
                    "public.jobs",
                ):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await login.fetchval(f"SELECT count(*) FROM {forbidden}")  # noqa: S608 — test names
            finally:
                await login.close()
        finally:
            async with pool.acquire() as conn, conn.transaction():
                await bi_logins.revoke(conn, tenant)


# --- 3. as `comptaflow up` and `comptaflow serve` run it ---------------------------------------------------------


def _infrastructure(pg_dsn: str, amqp_url: str, s3: S3Endpoint, secret_key: str) -> dict[str, str]:
    return {
        "COMPTAFLOW_DATABASE_URL": pg_dsn,
        "COMPTAFLOW_AMQP_URL": amqp_url,
        "COMPTAFLOW_S3_ENDPOINT": s3.endpoint,
        "COMPTAFLOW_S3_ACCESS_KEY": s3.access_key,
        "COMPTAFLOW_S3_SECRET_KEY": s3.secret_key,
        "COMPTAFLOW_S3_BUCKET": "comptaflow-pennylane-test",
        "COMPTAFLOW_JWT_SECRET": JWT_SECRET,
        "COMPTAFLOW_DELIVERY_LIMIT": "3",  # the session's queues were declared with the test settings' limit
        "COMPTAFLOW_SECRET_KEY": secret_key,
        "COMPTAFLOW_PENNYLANE_SCHEDULE": "false",  # the session's database holds other tests' tenants
        "COMPTAFLOW_PENNYLANE_RATE_LIMIT": str(FAST["pennylane_rate_limit"]),
        "COMPTAFLOW_PENNYLANE_RATE_WINDOW_S": str(FAST["pennylane_rate_window_s"]),
    }


@pytest.fixture
def services_env(pg_dsn: str, amqp_url: str, s3: S3Endpoint) -> dict[str, str]:
    """What a `comptaflow` child process needs to run on the session's services, with a key of its own."""
    return _infrastructure(pg_dsn, amqp_url, s3, generate_key())


def _logs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def _stopped(process: subprocess.Popen[str], sig: signal.Signals) -> int:
    process.send_signal(sig)
    return process.wait(timeout=60)


def _spawn(command: str, *args: str, env: dict[str, str], stdout: int | None, stderr: IO[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 — our own CLI, fixed arguments
        [sys.executable, "-m", "comptaflow.cli.main", command, *args], env=env, stdout=stdout, stderr=stderr, text=True
    )


def _kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


async def _full_sync_through(
    base_url: str, pool: asyncpg.Pool, fake: FakePennylane, fake_url: str, connected: list[str]
) -> None:
    """Create and connect a tenant through the API at `base_url`, sync it in full, check its schema."""
    admin_token = mint(JWT_SECRET, sub="e2e", role=Role.ADMIN, tenants=["*"], ttl=600)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60
    ) as http:
        tenant = await create_tenant(http)
        connected.append(tenant)
        client = await connect(http, tenant, fake, fake_url, seed=5)
        job = await wait_for_job(http, await start_sync(http, tenant, SyncMode.FULL))
        assert (job["status"], job["errors"]) == ("SUCCEEDED", []), job
        state = await state_of(http, tenant)
        assert {e["status"] for e in state.values()} == {"SUCCEEDED"}
        assert_mirrors(await snapshot(pool, client), expected(fake, client))


@pytest.mark.slow
async def test_up_runs_the_pennylane_sync_worker(
    tmp_path: Path, services_env: dict[str, str], pool: asyncpg.Pool, connected: list[str]
) -> None:
    env = _env(tmp_path / "home", free_port(), services_env)
    stderr_path = tmp_path / "up.stderr"
    fake = new_fake()
    with stderr_path.open("w") as stderr, FakeServer(fake) as fake_url:
        process = _spawn("up", env=env, stdout=subprocess.PIPE, stderr=stderr)
        try:
            base_url = await asyncio.to_thread(_wait_ready, process, time.monotonic() + 120, stderr_path)
            await _full_sync_through(base_url, pool, fake, fake_url, connected)
            assert await asyncio.to_thread(_stopped, process, signal.SIGINT) == 0
        finally:
            _kill(process)
    started = {line["service"] for line in _logs(stderr_path) if line.get("event") == "worker_started"}
    assert "pennylane-sync" in started


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 — a local test URL
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_healthy(process: subprocess.Popen[str], port: int, stderr: Path) -> None:
    """Wait until the worker's `/healthz` answers (the process must stay alive meanwhile)."""
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, stderr.read_text()[-3000:]
        try:
            status, body = _get(f"http://127.0.0.1:{port}/healthz")
        except OSError:
            status, body = 0, None
        if status == 200:
            assert body == {"status": "ok"}
            return
        assert time.monotonic() < deadline, "the health endpoint did not answer"
        time.sleep(0.1)


async def test_serve_runs_the_pennylane_sync_worker_alone_with_its_probes_and_stops_on_sigterm(
    tmp_path: Path, services_env: dict[str, str], pool: asyncpg.Pool, connected: list[str]
) -> None:
    key = services_env["COMPTAFLOW_SECRET_KEY"]
    health = free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home, free_port(), services_env | {"COMPTAFLOW_HEALTH_PORT": str(health)})
    stderr_path = tmp_path / "serve.stderr"
    fake = new_fake()
    with stderr_path.open("w") as stderr, FakeServer(fake) as fake_url:
        process = _spawn("serve", "pennylane-sync", env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            await asyncio.to_thread(_wait_healthy, process, health, stderr_path)
            status, ready = await asyncio.to_thread(_get, f"http://127.0.0.1:{health}/readyz")
            assert status == 200, ready
            assert ready["status"] == "ok"
            assert {"database", "bus", "storage"} <= set(ready["checks"])
            assert all(ready["checks"].values())
            # A job and its message committed in the outbox: the worker's own relay publishes it.
            token = f"pl-token-{uuid.uuid4().hex}"
            company = fake.add_company(seed=6, size="small", token=token)
            tenant = f"pl-{uuid.uuid4().hex[:10]}"
            connected.append(tenant)
            client = Client(tenant, company.id, token, fake_url, fake_url.removesuffix("/api/external/v2"))
            async with pool.acquire() as conn, conn.transaction():
                await tenants.create_tenant(conn, tenant, "Served client")
                await connections.put_connection(
                    conn,
                    Keyring.from_setting(key),
                    tenant,
                    token=SecretStr(token),
                    base_url=fake_url,
                    enabled=True,
                    scopes=[],
                    company_id=company.id,
                    company_name=company.name,
                )
                job, _ = await jobs.create_job(conn, tenant, "pennylane.sync", {"mode": "full", "tables": None})
                await outbox.enqueue(conn, PennylaneSyncRequested(tenant_id=tenant, job_id=job.id, mode=SyncMode.FULL))
            done = await _job_in_db(pool, job.id, within=45)
            assert (done.status.value, done.errors) == ("SUCCEEDED", [])
            assert_mirrors(await snapshot(pool, client), expected(fake, client))
            assert await asyncio.to_thread(_stopped, process, signal.SIGTERM) == 0
        finally:
            _kill(process)
    logs = _logs(stderr_path)
    events = [line.get("event") for line in logs]
    assert "worker_started" in events
    assert "worker_stopping" in events
    assert not [line for line in logs if line.get("level") in ("error", "critical")]
    assert token not in stderr_path.read_text()


async def _job_in_db(pool: asyncpg.Pool, job_id: uuid.UUID, *, within: float) -> jobs.Job:
    deadline = time.monotonic() + within
    while True:
        async with pool.acquire() as conn:
            job = await jobs.get_job(conn, job_id)
        assert job is not None
        if job.status.value in FINAL:
            return job
        assert time.monotonic() < deadline, f"job still {job.status.value} after {within:.0f} s"
        await asyncio.sleep(0.1)


# --- the schedule -------------------------------------------------------------------------------------------


async def test_the_schedule_of_a_running_worker_asks_for_a_full_sync_of_a_newly_connected_tenant(
    sync_settings: Settings, database: str
) -> None:
    settings = sync_settings.model_copy(update={"database_url": SecretStr(database)})
    fake = new_fake()
    async with running_stack(settings) as stack, FakeServer(fake) as fake_url, stack.admin() as admin:
        scheduler = Scheduler(stack.worker.db, Schedule(), tick_s=0.2, standby_s=0.2)
        await scheduler.start()
        try:
            tenant = await create_tenant(admin)
            client = await connect(admin, tenant, fake, fake_url, seed=7)
            # Nobody asks: the schedule does, once, with the slot in its idempotency key.
            deadline = time.monotonic() + 30
            while not (found := (await admin.get(f"/api/v1/tenants/{tenant}/jobs")).json()["items"]):
                assert time.monotonic() < deadline, "the schedule asked for no sync"
                await asyncio.sleep(0.1)
            (first,) = found
            done = await wait_for_job(admin, first["job_id"])
            assert (done["kind"], done["status"], done["errors"]) == ("pennylane.sync", "SUCCEEDED", [])
            assert scheduler.leading
            async with stack.pool.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT params, idempotency_key FROM jobs WHERE id = $1", uuid.UUID(first["job_id"])
                )
            assert row is not None
            assert row["params"] == {"mode": "full", "tables": None, "scheduled": True}
            assert row["idempotency_key"].startswith("full:")
            assert {t: s["mode"] for t, s in stats_by_table(done).items()} == dict.fromkeys(NAMES, "full")
            assert_mirrors(await snapshot(stack.pool, client), expected(fake, client))
            # Many ticks later, nothing more is due: its full slot and its incremental slot are served.
            await asyncio.sleep(1.5)
            again = (await admin.get(f"/api/v1/tenants/{tenant}/jobs")).json()["items"]
            assert [j["job_id"] for j in again] == [first["job_id"]]
        finally:
            await scheduler.stop()
