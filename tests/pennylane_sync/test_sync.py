"""Syncs of tenants against the fake Pennylane over real HTTP into the real PostgreSQL (docs/pennylane.md,
How a sync works): what the schema holds after each, what was asked of the API, and what is kept when the
API refuses, fails, throttles or lies, or when the sync is killed midway."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from comptaflow.common import jobs
from comptaflow.common.contracts import JobStatus, SyncMode
from comptaflow.common.pennylane import api, connections
from comptaflow.common.pennylane.api import PennylaneClient
from comptaflow.common.pennylane.tables import BY_NAME, NAMES, Strategy
from comptaflow.common.settings import Settings
from comptaflow.fakes.pennylane import FakePennylane, FakeServer, fingerprint
from comptaflow.fakes.pennylane.faults import Fault
from comptaflow.fakes.pennylane.ratelimit import RateLimiter
from comptaflow.fakes.pennylane.reports import fec as fake_fec
from comptaflow.fakes.pennylane.resources import API_PREFIX, DEFAULT_SCOPES
from comptaflow.pennylane_sync import sync as engine
from comptaflow.pennylane_sync.schema import KEYS
from tests.pennylane_sync.support import (
    KEYRING,
    OPEN,
    Client,
    assert_mirrors,
    connect,
    expected,
    new_job,
    settings_for,
    share,
    stored,
    sync,
)

CHANGELOG_TABLES = tuple(t.name for t in BY_NAME.values() if t.strategy is Strategy.CHANGELOG)
REFRESHED = ("ledger_accounts", "journals", "bank_accounts", "fiscal_years", "categories")
EVERY_TABLE = frozenset(NAMES)


# --- the fake, the settings, the helpers ----------------------------------------------------------------


@pytest.fixture(autouse=True)
def quick_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries back off for milliseconds and exports are polled every tenth of a second (the fake's exports
    are ready after `export_delay`): the behaviour under test, without its waiting."""
    monkeypatch.setattr(api.RetryPolicy, "delay", lambda self, retry: 0.01)
    monkeypatch.setattr(engine, "EXPORT_POLL_S", (0.1,))


@pytest.fixture
def fake() -> FakePennylane:
    return FakePennylane(rate_limit=10_000, rate_window=1.0, export_delay=0.1)


@pytest.fixture
async def base_url(fake: FakePennylane) -> AsyncIterator[str]:
    async with FakeServer(fake) as url:
        yield url


@pytest.fixture
def sync_settings(pg_dsn: str) -> Settings:
    return settings_for(pg_dsn)


def requests_of(fake: FakePennylane, client: Client) -> list[dict[str, Any]]:
    """The API requests the fake received with the client's token, oldest first (paths without the prefix)."""
    mine = fingerprint(client.token)
    return [{**r, "path": r["path"].removeprefix(API_PREFIX)} for r in fake.traffic.requests() if r["token"] == mine]


def to(requests: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    """The requests to `path` itself or below it (`/customers` and `/customers/…`, not `/changelogs/customers`)."""
    return [r for r in requests if r["path"] == path or r["path"].startswith(path + "/")]


def by_table(job: jobs.Job) -> dict[str, dict[str, Any]]:
    """The job's per-table stats, by table."""
    return {entry["table"]: entry for entry in job.stats["tables"]}


async def table_states(pool: asyncpg.Pool, client: Client) -> dict[str, connections.TableState]:
    async with pool.acquire() as conn:
        return await connections.table_states(conn, client.tenant_id)


async def count(pool: asyncpg.Pool, client: Client, table: str) -> int:
    async with pool.acquire() as conn:
        value = await conn.fetchval(f"SELECT count(*) FROM {client.schema}.{table}")  # noqa: S608 — identifiers of the test tenant
    assert isinstance(value, int)
    return value


def open_years(fake: FakePennylane, client: Client) -> list[dict[str, Any]]:
    return [y for y in fake.dump("fiscal_years", client.company_id) if y["status"] in OPEN]


def fec_of(fake: FakePennylane, client: Client, year: dict[str, Any]) -> dict[int, dict[str, str]]:
    """The fake's FEC of a fiscal year, by line number in the file (the header is line 1)."""
    text = fake_fec(
        fake.company(client.company_id), date.fromisoformat(year["start"]), date.fromisoformat(year["finish"])
    )
    header, *lines = text.splitlines()
    names = header.split("\t")
    return {n: dict(zip(names, line.split("\t"), strict=True)) for n, line in enumerate(lines, start=2) if line}


async def stored_all(pool: asyncpg.Pool, client: Client, *names: str) -> dict[str, Any]:
    return {name: await stored(pool, client, name) for name in names}


async def assert_mirrors_but(pool: asyncpg.Pool, fake: FakePennylane, client: Client, *kept: str) -> None:
    """Every table but `kept` (and the FEC) equals the fake's data, row by row."""
    want = expected(fake, client)
    assert set(kept) <= set(want)
    for table in sorted(want.keys() - set(kept)):
        assert await stored(pool, client, table) == want[table], f"{table} differs from the fake"


async def budget_key_of(pool: asyncpg.Pool, client: Client) -> str:
    async with pool.acquire() as conn:
        connection = await connections.get_connection(conn, client.tenant_id)
    assert connection is not None
    return connection.budget_key


# --- 1. a full sync -------------------------------------------------------------------------------------


@pytest.mark.infra
async def test_a_full_sync_mirrors_every_table_records_each_tables_state_and_stores_the_fec_of_each_open_year(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    client = await connect(pool, fake, base_url)

    job = await sync(pool, sync_settings, client, SyncMode.FULL)

    assert job.status is JobStatus.SUCCEEDED, job.errors
    assert job.errors == []
    await assert_mirrors(pool, fake, client)
    want = expected(fake, client)
    stats = by_table(job)
    assert set(stats) == EVERY_TABLE
    states = await table_states(pool, client)
    assert set(states) == EVERY_TABLE
    counts = {name: await count(pool, client, name) for name in NAMES}
    for name, rows in counts.items():
        entry, state = stats[name], states[name]
        assert entry["ok"] is True, entry
        assert entry["mode"] == "full", entry
        assert (entry["inserted"], entry["updated"], entry["deleted"], entry["rows"]) == (rows, 0, 0, rows), name
        assert state.status == "SUCCEEDED", name
        assert state.error is None, name
        assert state.rows == rows, name
        assert (state.cursor_at is not None) == (name in CHANGELOG_TABLES), name
        if name != "fec":
            assert rows == len(want[name]) > 0, name
    assert job.stats["inserted"] == sum(counts.values())
    assert (job.stats["updated"], job.stats["deleted"], job.stats["throttled"]) == (0, 0, 0)
    assert job.stats["requests"] == len(requests_of(fake, client))

    years = open_years(fake, client)
    assert years
    async with pool.acquire() as conn:
        for year in years:
            lines = fec_of(fake, client, year)
            stored_lines = await conn.fetch(
                f"SELECT line_no, item FROM {client.schema}.fec WHERE fiscal_year_id = $1",  # noqa: S608 — identifiers of the test tenant
                year["id"],
            )
            assert {r["line_no"]: r["item"] for r in stored_lines} == lines
            unbalanced = await conn.fetch(
                f"SELECT ecriture_num, sum(debit) AS debit, sum(credit) AS credit FROM {client.schema}.fec"  # noqa: S608 — identifiers of the test tenant
                " WHERE fiscal_year_id = $1 GROUP BY ecriture_num HAVING sum(debit) <> sum(credit)",
                year["id"],
            )
            assert unbalanced == []
            entries = await conn.fetchval(
                f"SELECT count(DISTINCT ecriture_num) FROM {client.schema}.fec"  # noqa: S608 — identifiers of the test tenant
                " WHERE fiscal_year_id = $1 AND debit IS NOT NULL AND credit IS NOT NULL",
                year["id"],
            )
            assert entries == len({line["EcritureNum"] for line in lines.values()}) > 0
        assert (
            await conn.fetchval(
                f"SELECT count(*) FROM {client.schema}.fec WHERE fiscal_year_id <> ALL($1::bigint[])",  # noqa: S608 — identifiers of the test tenant
                [y["id"] for y in years],
            )
            == 0
        )
        balances = await conn.fetch(
            f"SELECT fiscal_year_id, sum(debits) AS debits, sum(credits) AS credits, min(period_start) AS start,"  # noqa: S608 — identifiers of the test tenant
            f" max(period_end) AS finish FROM {client.schema}.trial_balance GROUP BY fiscal_year_id"
        )
    assert {r["fiscal_year_id"] for r in balances} == {y["id"] for y in years}
    for r in balances:
        year = next(y for y in years if y["id"] == r["fiscal_year_id"])
        assert (r["start"], r["finish"]) == (date.fromisoformat(year["start"]), date.fromisoformat(year["finish"]))
        assert r["debits"] == r["credits"] > Decimal(0)


# --- 2. incremental syncs after changes -------------------------------------------------------------------


def _deleted(events: list[dict[str, Any]], resource: str) -> set[int]:
    return {e["id"] for e in events if e["resource"] == resource and e["operation"] == "delete"}


async def lines_of(pool: asyncpg.Pool, client: Client, table: str, invoices: set[int]) -> int:
    """How many lines of these invoices the table holds."""
    async with pool.acquire() as conn:
        value = await conn.fetchval(
            f"SELECT count(*) FROM {client.schema}.{table} WHERE invoice_id = ANY($1::bigint[])",  # noqa: S608 — identifiers of the test tenant
            list(invoices),
        )
    assert isinstance(value, int)
    return value


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def assert_asked_as_the_spec_says(
    requests: list[dict[str, Any]], checkpoints: dict[str, datetime | None], overlap: timedelta
) -> None:
    """One incremental's requests: each changelog from its checkpoint minus the overlap, `start_date` on its
    first page only and the cursor alone after; `filter id in` fetches with their sort; `limit`, never
    `per_page`."""
    changelogs = [r for r in requests if r["path"].startswith("/changelogs/")]
    for table in CHANGELOG_TABLES:
        pages = [r["query"] for r in changelogs if r["path"] == f"/changelogs/{table}"]
        assert pages, table
        checkpoint = checkpoints[table]
        assert checkpoint is not None
        assert pages[0] == {"start_date": _rfc3339(checkpoint - overlap), "limit": "5"}, table
        assert all(page == {"cursor": page.get("cursor"), "limit": "5"} and page["cursor"] for page in pages[1:])
    fetches = [r for r in requests if "filter" in r["query"]]
    assert fetches
    for r in fetches:
        where = json.loads(r["query"]["filter"])
        assert [(w["field"], w["operator"]) for w in where] == [("id", "in")]
        assert 0 < len(where[0]["value"]) <= api.ID_BATCH
        assert r["query"] == {"filter": r["query"]["filter"], "sort": "id", "limit": str(api.ID_BATCH)}
    lists = [r for r in requests if r["path"] != "/me"]
    assert all("limit" in r["query"] and "per_page" not in r["query"] for r in lists)
    assert all(r["status"] == 200 for r in requests)


@pytest.mark.infra
async def test_incrementals_after_rounds_of_changes_mirror_the_fake_and_ask_the_api_as_the_spec_says(
    pool: asyncpg.Pool,
    fake: FakePennylane,
    base_url: str,
    sync_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "CHANGELOG_MAX_LIMIT", 5)  # changelogs of several pages
    overlap = timedelta(seconds=sync_settings.pennylane_overlap_s)
    client = await connect(pool, fake, base_url)
    assert (await sync(pool, sync_settings, client, SyncMode.FULL)).status is JobStatus.SUCCEEDED

    def mutate(inserts: int, updates: int, deletes: int, seed: int, *resources: str) -> list[dict[str, Any]]:
        return fake.mutate(
            client.company_id, inserts=inserts, updates=updates, deletes=deletes, seed=seed, resources=resources
        )

    rounds: list[Callable[[], list[dict[str, Any]]]] = [
        lambda: mutate(6, 6, 4, 11),
        lambda: [
            *mutate(0, 0, 3, 12, "customer_invoices", "supplier_invoices"),
            *mutate(0, 3, 2, 13, "ledger_entry_lines"),
        ],
        lambda: mutate(3, 8, 3, 14),
    ]
    paged = 0
    for n, changes in enumerate(rounds):
        events = changes()
        gone = {
            table: _deleted(events, table.removesuffix("_lines") + "s")
            for table in ("customer_invoice_lines", "supplier_invoice_lines")
        }
        lines_before = await stored(pool, client, "ledger_entry_lines")
        entries_before = await stored(pool, client, "ledger_entries")
        changed_lines = {e["id"] for e in events if e["resource"] == "ledger_entry_lines"}
        entries = {lines_before[(i,)]["ledger_entry"]["id"] for i in changed_lines if (i,) in lines_before}
        checkpoints = {t: s.cursor_at for t, s in (await table_states(pool, client)).items()}
        had_lines = {table: await lines_of(pool, client, table, invoices) for table, invoices in gone.items()}
        fake.traffic.clear()

        job = await sync(pool, sync_settings, client)

        assert job.status is JobStatus.SUCCEEDED, (n, job.errors)
        await assert_mirrors(pool, fake, client)
        stats = by_table(job)
        assert all(stats[t]["mode"] == "incremental" and "fallback" not in stats[t] for t in CHANGELOG_TABLES)
        assert job.stats["inserted"] + job.stats["updated"] + job.stats["deleted"] > 0
        requests = requests_of(fake, client)
        assert_asked_as_the_spec_says(requests, checkpoints, overlap)
        paged += sum(1 for r in requests if "cursor" in r["query"] and r["path"].startswith("/changelogs/"))
        # The lines of the deleted invoices are gone with them.
        left = {table: await lines_of(pool, client, table, invoices) for table, invoices in gone.items()}
        assert left == dict.fromkeys(gone, 0)
        # The entries of the lines that changed were fetched again: as the fake has them now, or gone.
        now = {(e["id"],): e for e in fake.dump("ledger_entries", client.company_id, origin=client.origin)}
        entries_after = await stored(pool, client, "ledger_entries")
        assert all(entries_after.get((e,)) == now.get((e,)) for e in entries)
        assert any(entries_after.get((e,)) != entries_before.get((e,)) for e in entries)
        if n == 1:
            assert all(gone.values()), "the round deletes invoices of both kinds"
            assert all(had_lines.values()), "the deleted invoices had lines"
            assert _deleted(events, "ledger_entry_lines"), "the round deletes ledger lines"
    assert paged > 0, "no changelog had a second page"


@pytest.mark.infra
async def test_the_client_sends_the_filter_and_sort_again_with_every_cursor_page(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str
) -> None:
    client = await connect(pool, fake, base_url)
    ids = [c["id"] for c in fake.dump("customers", client.company_id)][:5]
    where = json.dumps([{"field": "id", "operator": "in", "value": ids}])

    async with PennylaneClient(base_url, SecretStr(client.token)) as pennylane:
        items = await pennylane.list_all("/customers", params={"filter": where, "sort": "-id"}, limit=2)

    assert [i["id"] for i in items] == sorted(ids, reverse=True)
    pages = requests_of(fake, client)
    assert len(pages) == 3
    assert [r["query"].get("cursor") is None for r in pages] == [True, False, False]
    assert all(r["query"]["filter"] == where and r["query"]["sort"] == "-id" for r in pages)
    assert all(r["query"]["limit"] == "2" and "per_page" not in r["query"] for r in pages)


# --- 3. nothing changed -------------------------------------------------------------------------------------


@pytest.mark.infra
async def test_an_incremental_with_nothing_new_writes_nothing_and_makes_only_the_minimum_requests(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    client = await connect(pool, fake, base_url)
    assert (await sync(pool, sync_settings, client, SyncMode.FULL)).status is JobStatus.SUCCEEDED
    fake.mutate(client.company_id, inserts=4, updates=4, deletes=2, seed=21)
    assert (await sync(pool, sync_settings, client)).status is JobStatus.SUCCEEDED
    fake.traffic.clear()

    # The changes of the last sync are read again (within the overlap), known as applied, and skipped.
    job = await sync(pool, sync_settings, client)

    assert job.status is JobStatus.SUCCEEDED
    assert (job.stats["inserted"], job.stats["updated"], job.stats["deleted"]) == (0, 0, 0)
    requests = requests_of(fake, client)
    years = open_years(fake, client)
    assert len(requests) == job.stats["requests"] == 1 + len(CHANGELOG_TABLES) + len(REFRESHED) + len(years) == 14
    assert sorted(r["path"] for r in requests) == sorted(
        ["/me", "/trial_balance"] + [f"/changelogs/{t}" for t in CHANGELOG_TABLES] + [f"/{t}" for t in REFRESHED]
    )
    await assert_mirrors(pool, fake, client)


# --- 4. the changelog's retention ------------------------------------------------------------------------------


@pytest.mark.infra
async def test_a_checkpoint_older_than_the_retention_lists_the_changelog_tables_whole_without_asking(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    client = await connect(pool, fake, base_url)
    assert (await sync(pool, sync_settings, client, SyncMode.FULL)).status is JobStatus.SUCCEEDED
    fake.clock.advance(timedelta(days=29).total_seconds())
    fake.mutate(client.company_id, inserts=4, updates=4, deletes=3, seed=31)
    fake.traffic.clear()

    job = await sync(pool, sync_settings, client)

    assert job.status is JobStatus.SUCCEEDED, job.errors
    stats = by_table(job)
    for table in (*CHANGELOG_TABLES, "customer_invoice_lines", "supplier_invoice_lines", "ledger_entries"):
        assert stats[table]["fallback"] == "retention", table
    assert not [r for r in requests_of(fake, client) if r["path"].startswith("/changelogs/")]
    await assert_mirrors(pool, fake, client)
    states = await table_states(pool, client)
    # The new checkpoints are on the API's clock, 29 days ahead of ours.
    now = fake.clock.now()
    for table in CHANGELOG_TABLES:
        cursor_at = states[table].cursor_at
        assert cursor_at is not None, table
        assert now - timedelta(minutes=1) < cursor_at <= now, table


@pytest.mark.infra
async def test_a_changelog_answering_422_for_an_expired_checkpoint_lists_the_table_whole(
    pool: asyncpg.Pool,
    fake: FakePennylane,
    base_url: str,
    sync_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "RETENTION", timedelta(days=3650))  # our own check never fires
    client = await connect(pool, fake, base_url)
    assert (await sync(pool, sync_settings, client, SyncMode.FULL)).status is JobStatus.SUCCEEDED
    fake.clock.advance(timedelta(days=29).total_seconds())
    fake.mutate(client.company_id, inserts=4, updates=4, deletes=3, seed=41)
    fake.traffic.clear()

    job = await sync(pool, sync_settings, client)

    assert job.status is JobStatus.SUCCEEDED, job.errors
    stats = by_table(job)
    assert all(stats[t]["fallback"] == "retention" for t in CHANGELOG_TABLES)
    changelogs = [r for r in requests_of(fake, client) if r["path"].startswith("/changelogs/")]
    assert sorted(r["path"] for r in changelogs) == sorted(f"/changelogs/{t}" for t in CHANGELOG_TABLES)
    assert {r["status"] for r in changelogs} == {422}
    await assert_mirrors(pool, fake, client)


# --- 5. the rate limit ---------------------------------------------------------------------------------------


@pytest.mark.infra
async def test_a_budget_above_the_apis_limit_gets_429s_obeys_them_and_the_sync_still_succeeds(
    pool: asyncpg.Pool, pg_dsn: str
) -> None:
    fake = FakePennylane(rate_limit=20, rate_window=1.0, export_delay=0.1)
    async with FakeServer(fake) as url:
        client = await connect(pool, fake, url)
        job = await sync(pool, settings_for(pg_dsn, pennylane_rate_limit=200), client, SyncMode.FULL)

        assert job.status is JobStatus.SUCCEEDED, job.errors
        await assert_mirrors(pool, fake, client)
    seen = fake.traffic.stats()[fingerprint(client.token) or ""]
    assert seen["throttled"] > 0
    assert job.stats["throttled"] == seen["throttled"]
    assert job.stats["requests"] == seen["requests"]
    key = await budget_key_of(pool, client)
    async with pool.acquire() as conn:
        throttled = await conn.fetchval("SELECT throttled FROM pennylane_budgets WHERE budget_key = $1", key)
    assert throttled == seen["throttled"]


@pytest.mark.infra
async def test_a_full_sync_paced_at_the_apis_limit_is_never_throttled(pool: asyncpg.Pool, pg_dsn: str) -> None:
    # 20 requests a second, over a window long enough that the pacing's margin (2 % of the window)
    # exceeds the local jitter of a first request on a new connection.
    fake = FakePennylane(rate_limit=50, rate_window=2.5, export_delay=0.1)
    async with FakeServer(fake) as url:
        client = await connect(pool, fake, url)
        paced = settings_for(pg_dsn, pennylane_rate_limit=50, pennylane_rate_window_s=2.5)
        job = await sync(pool, paced, client, SyncMode.FULL)

        assert job.status is JobStatus.SUCCEEDED, job.errors
        await assert_mirrors(pool, fake, client)
    seen = fake.traffic.stats()[fingerprint(client.token) or ""]
    assert seen["requests"] > 40  # long enough to have hit the limit, had it been exceeded
    assert seen["throttled"] == job.stats["throttled"] == 0


# --- 6. 5xx and 4xx ------------------------------------------------------------------------------------------


@pytest.mark.infra
async def test_a_few_503s_are_retried_and_the_sync_succeeds(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    client = await connect(pool, fake, base_url)
    fake.faults.add(Fault("status", count=2, path="/suppliers", status=503))

    job = await sync(pool, sync_settings, client, SyncMode.FULL)

    assert job.status is JobStatus.SUCCEEDED, job.errors
    assert [r["status"] for r in to(requests_of(fake, client), "/suppliers")] == [503, 503, 200]
    await assert_mirrors(pool, fake, client)


@pytest.mark.infra
async def test_persistent_503s_fail_that_table_alone_and_keep_its_previous_data(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    client = await connect(pool, fake, base_url)
    assert (await sync(pool, sync_settings, client, SyncMode.FULL)).status is JobStatus.SUCCEEDED
    before = await stored(pool, client, "customers")
    cursor_before = (await table_states(pool, client))["customers"].cursor_at
    fake.mutate(client.company_id, inserts=3, updates=3, seed=51, resources=["customers", "suppliers"])
    fake.traffic.clear()
    attempts = api.RetryPolicy().attempts
    fake.faults.add(Fault("status", count=attempts + 3, path="/customers", status=503))

    job = await sync(pool, sync_settings, client, SyncMode.FULL)

    assert job.status is JobStatus.FAILED
    assert [(e["code"], e["table"]) for e in job.errors] == [("PENNYLANE_UNAVAILABLE", "customers")]
    assert "/customers" in job.errors[0]["message"]
    assert [r["status"] for r in to(requests_of(fake, client), "/customers")] == [503] * attempts
    states = await table_states(pool, client)
    assert states["customers"].status == "FAILED"
    assert states["customers"].error == job.errors[0]["message"]
    assert states["customers"].cursor_at == cursor_before
    assert {t for t, s in states.items() if s.status == "SUCCEEDED"} == EVERY_TABLE - {"customers"}
    assert await stored(pool, client, "customers") == before != expected(fake, client)["customers"]
    await assert_mirrors_but(pool, fake, client, "customers")


@pytest.mark.infra
async def test_a_400_is_never_retried_and_fails_its_table_with_the_apis_message(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    client = await connect(pool, fake, base_url)
    fake.faults.add(Fault("status", count=3, path="/products", status=400))

    job = await sync(pool, sync_settings, client, SyncMode.FULL)

    assert job.status is JobStatus.FAILED
    assert [(e["code"], e["table"]) for e in job.errors] == [("PENNYLANE_REFUSED", "products")]
    assert "Bad Request" in job.errors[0]["message"]
    assert [r["status"] for r in to(requests_of(fake, client), "/products")] == [400]
    states = await table_states(pool, client)
    assert {t for t, s in states.items() if s.status == "SUCCEEDED"} == EVERY_TABLE - {"products"}


@pytest.mark.infra
async def test_a_5xx_that_is_not_retried_still_fails_its_table_as_pennylane_unavailable(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    client = await connect(pool, fake, base_url)
    fake.faults.add(Fault("status", count=10, path="/suppliers", status=502))

    job = await sync(pool, sync_settings, client, SyncMode.FULL, tables=["suppliers"])

    assert job.status is JobStatus.FAILED
    assert [(e["code"], e["table"]) for e in job.errors] == [("PENNYLANE_UNAVAILABLE", "suppliers")]
    assert "502" in job.errors[0]["message"]
    assert [r["status"] for r in to(requests_of(fake, client), "/suppliers")] == [502]


@pytest.mark.infra
async def test_me_answering_a_502_fails_the_job_as_pennylane_unavailable_and_asks_nothing_else(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    client = await connect(pool, fake, base_url)
    fake.faults.add(Fault("status", count=1, path="/me", status=502))

    job = await sync(pool, sync_settings, client, SyncMode.FULL)

    assert job.status is JobStatus.FAILED
    assert [e["code"] for e in job.errors] == ["PENNYLANE_UNAVAILABLE"]
    assert [(r["path"], r["status"]) for r in requests_of(fake, client)] == [("/me", 502)]


@pytest.mark.infra
async def test_an_export_answered_503_is_not_posted_again(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    client = await connect(pool, fake, base_url)
    fake.faults.add(Fault("status", count=1, path="/exports/fecs", status=503))

    job = await sync(pool, sync_settings, client, SyncMode.FULL, tables=["fec"])

    assert job.status is JobStatus.FAILED
    assert [(e["code"], e["table"]) for e in job.errors] == [("PENNYLANE_UNAVAILABLE", "fec")]
    posts = [r for r in requests_of(fake, client) if r["method"] == "POST"]
    assert [(r["path"], r["status"]) for r in posts] == [("/exports/fecs", 503)]
    assert await count(pool, client, "fec") == 0


async def test_an_export_file_still_answering_503_after_the_retries_is_pennylane_unavailable() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(503)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with http, PennylaneClient("https://pennylane.test/api/external/v2", SecretStr("t"), http=http) as client:
        with pytest.raises(api.Unavailable) as raised:
            await client.download("https://files.pennylane.test/fec.txt")

    assert raised.value.status == 503
    assert engine.error_code(raised.value) == "PENNYLANE_UNAVAILABLE"
    assert len(asked) == api.RetryPolicy().attempts


# --- 7. bad pages ---------------------------------------------------------------------------------------------


@pytest.mark.infra
async def test_a_malformed_page_or_an_item_missing_a_key_fails_its_unit_and_keeps_the_last_good_data(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    client = await connect(pool, fake, base_url)
    assert (await sync(pool, sync_settings, client, SyncMode.FULL)).status is JobStatus.SUCCEEDED
    kept = ("suppliers", "customer_invoices", "customer_invoice_lines")
    before = await stored_all(pool, client, *kept)
    states_before = await table_states(pool, client)
    fake.mutate(client.company_id, inserts=5, updates=5, deletes=2, seed=61)
    fake.faults.add(Fault("malformed", path="/suppliers"))
    fake.faults.add(Fault("drop_key", path="/customer_invoices", key="invoice_number"))

    job = await sync(pool, sync_settings, client, SyncMode.FULL)

    assert job.status is JobStatus.FAILED
    errors = {e["table"]: e for e in job.errors}
    assert set(errors) == set(kept)
    assert {e["code"] for e in job.errors} == {"PENNYLANE_BAD_RESPONSE"}
    assert "/suppliers" in errors["suppliers"]["message"]
    assert "not JSON" in errors["suppliers"]["message"]
    for table in ("customer_invoices", "customer_invoice_lines"):
        assert "an item of customer_invoices" in errors[table]["message"]
        assert "lacks invoice_number" in errors[table]["message"]
    assert await stored_all(pool, client, *kept) == before
    states = await table_states(pool, client)
    for table in kept:
        assert states[table].status == "FAILED"
        assert states[table].error == errors[table]["message"]
        assert states[table].cursor_at == states_before[table].cursor_at
        assert states[table].rows == states_before[table].rows
    want = expected(fake, client)
    assert before != {t: want[t] for t in kept}  # the fake moved on: what is kept is the last good data
    await assert_mirrors_but(pool, fake, client, *kept)

    # The next sync, with good pages, catches up from the kept checkpoints.
    assert (await sync(pool, sync_settings, client)).status is JobStatus.SUCCEEDED
    await assert_mirrors(pool, fake, client)


# --- 8. scopes and tokens ---------------------------------------------------------------------------------------


@pytest.mark.infra
async def test_a_token_without_a_scope_fails_that_table_naming_the_scope_and_never_asks_for_it(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    scopes = [s for s in DEFAULT_SCOPES if s != "suppliers:readonly"]
    client = await connect(pool, fake, base_url, scopes=scopes)

    job = await sync(pool, sync_settings, client, SyncMode.FULL)

    assert job.status is JobStatus.FAILED
    assert [(e["code"], e["table"]) for e in job.errors] == [("PENNYLANE_FORBIDDEN", "suppliers")]
    assert "suppliers:readonly" in job.errors[0]["message"]
    requests = requests_of(fake, client)
    assert to(requests, "/suppliers") == []
    assert to(requests, "/changelogs/suppliers") == []
    assert {r["status"] for r in requests} == {200, 201}  # 201: the FEC export created
    states = await table_states(pool, client)
    assert states["suppliers"].status == "FAILED"
    assert states["suppliers"].error == job.errors[0]["message"]
    assert {t for t, s in states.items() if s.status == "SUCCEEDED"} == EVERY_TABLE - {"suppliers"}
    assert await count(pool, client, "suppliers") == 0
    await assert_mirrors_but(pool, fake, client, "suppliers")


@pytest.mark.infra
async def test_an_all_scope_grants_its_readonly_and_the_scopes_me_answers_are_stored(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    scopes = [s for s in DEFAULT_SCOPES if s != "suppliers:readonly"] + ["suppliers:all"]
    client = await connect(pool, fake, base_url, scopes=scopes)

    job = await sync(pool, sync_settings, client, SyncMode.FULL, tables=["suppliers"])

    assert job.status is JobStatus.SUCCEEDED, job.errors
    assert await stored(pool, client, "suppliers") == expected(fake, client)["suppliers"]
    async with pool.acquire() as conn:
        connection = await connections.get_connection(conn, client.tenant_id)
    assert connection is not None
    assert connection.scopes == tuple(scopes)


@pytest.mark.infra
async def test_a_token_revoked_since_it_was_stored_fails_the_job_after_one_request(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    client = await connect(pool, fake, base_url)
    revoked = f"revoked-{uuid.uuid4().hex}"
    async with pool.acquire() as conn, conn.transaction():
        await connections.put_connection(
            conn,
            KEYRING,
            client.tenant_id,
            token=SecretStr(revoked),
            base_url=base_url,
            enabled=True,
            scopes=[],
            company_id=client.company_id,
            company_name=None,
        )

    job = await sync(pool, sync_settings, client, SyncMode.FULL)

    assert job.status is JobStatus.FAILED
    assert [e["code"] for e in job.errors] == ["PENNYLANE_UNAUTHORIZED"]
    sent = [r for r in fake.traffic.requests() if r["token"] == fingerprint(revoked)]
    assert [(r["path"].removeprefix(API_PREFIX), r["status"]) for r in sent] == [("/me", 401)]
    assert len(fake.traffic.requests()) == 1
    assert await table_states(pool, client) == {}


# --- 9. killed midway -----------------------------------------------------------------------------------------


async def _succeeded_in(pool: asyncpg.Pool, client: Client, mode: SyncMode) -> set[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT table_name FROM pennylane_tables WHERE tenant_id = $1 AND status = 'SUCCEEDED' AND mode = $2",
            client.tenant_id,
            mode.value,
        )
    return {r["table_name"] for r in rows}


@pytest.mark.infra
async def test_a_sync_killed_midway_is_taken_over_and_applies_everything_once(
    pool: asyncpg.Pool,
    fake: FakePennylane,
    base_url: str,
    sync_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = await connect(pool, fake, base_url)
    assert (await sync(pool, sync_settings, client, SyncMode.FULL)).status is JobStatus.SUCCEEDED
    events = [
        *fake.mutate(client.company_id, inserts=4, updates=4, deletes=2, seed=71),
        *fake.mutate(client.company_id, inserts=2, updates=2, seed=72, resources=["customers", "suppliers"]),
        *fake.mutate(client.company_id, inserts=3, updates=3, seed=73, resources=["ledger_entry_lines"]),
    ]
    changed = {e["resource"] for e in events}
    assert changed >= {"ledger_entry_lines", "customers", "suppliers"}
    cursor_before = (await table_states(pool, client))["ledger_entry_lines"].cursor_at
    # The ledger lines' changelog in pages of two, each a second late: that unit is still reading it when
    # the others are done (and the page in flight when it is killed is answered soon after).
    monkeypatch.setattr(engine, "CHANGELOG_MAX_LIMIT", 2)
    assert len([e for e in events if e["resource"] == "ledger_entry_lines"]) >= 12
    fake.faults.add(Fault("latency", count=1000, path="/changelogs/ledger_entry_lines", latency_s=1.0))
    job = await new_job(pool, client)

    slow = {"ledger_entry_lines", "ledger_entries"}
    others = EVERY_TABLE - slow - {"fec"}  # an incremental does not export the FEC

    killed = asyncio.create_task(sync(pool, sync_settings, client, job_id=job.id))
    async with asyncio.timeout(20):
        while (committed := await _succeeded_in(pool, client, SyncMode.INCREMENTAL)) != others:
            assert not killed.done()
            await asyncio.sleep(0.05)
    killed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await killed

    states = await table_states(pool, client)
    assert {states[t].status for t in slow} == {"RUNNING"}
    assert states["ledger_entry_lines"].cursor_at == cursor_before
    async with pool.acquire() as conn:
        interrupted = await jobs.get_job(conn, job.id)
    assert interrupted is not None
    assert (interrupted.status, interrupted.attempts) == (JobStatus.RUNNING, 1)
    fake.faults.clear()

    done = await sync(pool, sync_settings, client, job_id=job.id)

    assert done.status is JobStatus.SUCCEEDED, done.errors
    assert (done.id, done.attempts) == (job.id, 2)
    await assert_mirrors(pool, fake, client)
    stats = by_table(done)
    applied = committed & changed
    assert applied, "no changed table was committed before the kill"
    for table in applied:
        # Applied before the kill: its events are read again and skipped, nothing is written twice.
        assert (stats[table]["inserted"], stats[table]["updated"], stats[table]["deleted"]) == (0, 0, 0), table
    lines = stats["ledger_entry_lines"]
    assert lines["inserted"] + lines["updated"] + lines["deleted"] > 0


# --- 10, 11. several tenants ----------------------------------------------------------------------------------


@pytest.mark.infra
async def test_two_tenants_with_their_own_tokens_sync_at_once_into_their_own_schemas_on_their_own_budgets(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    first = await connect(pool, fake, base_url, seed=1)
    second = await connect(pool, fake, base_url, seed=2)

    done = await asyncio.gather(
        sync(pool, sync_settings, first, SyncMode.FULL), sync(pool, sync_settings, second, SyncMode.FULL)
    )

    assert [j.status for j in done] == [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED]
    for client in (first, second):
        await assert_mirrors(pool, fake, client)
    for table in NAMES:
        if KEYS[table] == ("id",):
            mine, theirs = await stored(pool, first, table), await stored(pool, second, table)
            assert mine, table
            assert theirs, table
            assert not set(mine) & set(theirs), table
    keys = {await budget_key_of(pool, c) for c in (first, second)}
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT budget_key FROM pennylane_budgets WHERE budget_key = ANY($1)", list(keys))
    assert len(keys) == 2
    assert {r["budget_key"] for r in rows} == keys


@pytest.mark.infra
async def test_two_tenants_sharing_a_token_share_one_budget_and_together_stay_under_its_limit(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, pg_dsn: str, sync_settings: Settings
) -> None:
    first = await connect(pool, fake, base_url)
    second = await share(pool, first)
    for client in (first, second):
        assert (await sync(pool, sync_settings, client, SyncMode.FULL)).status is JobStatus.SUCCEEDED
    # A window long enough that the pacing's margin (2 % of it) exceeds the local jitter of a first request.
    fake.limiter = RateLimiter(limit=25, window=2.5)
    fake.traffic.clear()
    paced = settings_for(pg_dsn, pennylane_rate_limit=25, pennylane_rate_window_s=2.5)

    # Each alone would pace itself at 10 requests a second: together, 20 a second, had they not shared.
    done = await asyncio.gather(sync(pool, paced, first), sync(pool, paced, second))

    assert [j.status for j in done] == [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED]
    seen = fake.traffic.stats()[fingerprint(first.token) or ""]
    assert seen == {"requests": 28, "throttled": 0}
    keys = {await budget_key_of(pool, c) for c in (first, second)}
    async with pool.acquire() as conn:
        rows = await conn.fetchval("SELECT count(*) FROM pennylane_budgets WHERE budget_key = ANY($1)", list(keys))
    assert len(keys) == 1
    assert rows == 1
    for client in (first, second):
        await assert_mirrors(pool, fake, client)


# --- 12. the schema is kept ----------------------------------------------------------------------------------


@pytest.mark.infra
async def test_a_full_sync_keeps_the_schema_so_a_view_over_its_tables_survives_and_reads_the_new_data(
    pool: asyncpg.Pool, fake: FakePennylane, base_url: str, sync_settings: Settings
) -> None:
    client = await connect(pool, fake, base_url)
    assert (await sync(pool, sync_settings, client, SyncMode.FULL)).status is JobStatus.SUCCEEDED
    async with pool.acquire() as conn:
        await conn.execute(
            f"CREATE VIEW {client.schema}.customer_names AS SELECT id, name FROM {client.schema}.customers"  # noqa: S608 — identifiers of the test tenant
        )
    fake.mutate(client.company_id, inserts=3, updates=2, deletes=1, seed=81, resources=["customers"])

    assert (await sync(pool, sync_settings, client, SyncMode.FULL)).status is JobStatus.SUCCEEDED

    async with pool.acquire() as conn:
        rows = await conn.fetch(f"SELECT id, name FROM {client.schema}.customer_names")  # noqa: S608 — identifiers of the test tenant
    want = {c["id"]: c["name"] for c in fake.dump("customers", client.company_id)}
    assert {r["id"]: r["name"] for r in rows} == want
    await assert_mirrors(pool, fake, client)
