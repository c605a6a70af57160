"""Benchmark: Pennylane syncs against the fake at the real rate limit (25 requests per 5 s per token).

The fake (`comptaflow fake pennylane`) runs as its own process; the syncs run here exactly as the worker
runs them (`SyncHandler`: the job, the tenant's lock, the shared budget in PostgreSQL), into a fresh
database on the local PostgreSQL. Measured in one run:

  full          a full sync of the `--size` company: seconds, requests made vs the minimum possible for
                that data (computed from the fake's data: pages per list at each endpoint's max limit, one
                request per invoice's lines, two per FEC export), sustained requests/s, 429s received;
  incremental   twice with nothing changed (the first may re-read events of the last minutes: the
                changelog overlap), goal one request per changelog plus the small tables (and /me);
                then one after changes (inserts, updates, deletes);
  upsert        the company's ledger entry lines written straight through the sync's writer into a
                fresh schema (insert), then again unchanged, then all changed: rows/s in PostgreSQL (the
                transaction: COPY, update, insert, count) and end to end (with the checking and encoding
                of the items, which a sync does as pages arrive, while it waits on the API);
  tenants       `--tenants` companies with their own tokens synced at once vs one alone: total time ratio.

    uv run python bench/pennylane_sync.py [--size large] [--tenants 20] [--tenant-size small]
                                          [--rate-limit 25] [--rate-window 5] [--skip-full] [--skip-tenants]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr

from comptaflow.common import db, jobs, tenants
from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.contracts import PennylaneSyncRequested, SyncMode
from comptaflow.common.pennylane import connections
from comptaflow.common.pennylane.tables import CHANGELOG_MAX_LIMIT, TABLES, Strategy
from comptaflow.common.registry import discover
from comptaflow.common.secrets import Keyring, generate_key
from comptaflow.common.settings import Settings
from comptaflow.pennylane_sync import schema
from comptaflow.pennylane_sync.handler import KIND, SyncHandler
from comptaflow.pennylane_sync.writer import Unit

ROOT = Path(__file__).resolve().parents[1]
PG_SERVER = os.environ.get("COMPTAFLOW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
KEYRING = Keyring.from_setting(generate_key())
OPEN = ("open", "reopen")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Fake:
    """The fake Pennylane in its own process, and its admin API."""

    def __init__(self, *, size: str, rate_limit: int, rate_window: float) -> None:
        self.port = _free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.base = f"{self.origin}/api/external/v2"
        command = [
            sys.executable, "-m", "comptaflow.cli.main", "fake", "pennylane", "--port", str(self.port), "--seed", "1",
            "--size", size, "--token", "bench-token", "--rate-limit", str(rate_limit),
            "--rate-window", str(rate_window),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        self.admin = httpx.Client(base_url=f"{self.origin}/__admin", timeout=120)
        for _ in range(600):
            try:
                self.admin.get("/clock").raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the fake did not start")

    def companies(self) -> list[dict[str, Any]]:
        return list(self.admin.get("/companies").json()["companies"])

    def dump(self, resource: str, company_id: int, **params: str) -> list[dict[str, Any]]:
        answer = self.admin.get(f"/dump/{resource}", params={"company_id": company_id, **params})
        answer.raise_for_status()
        return list(answer.json()["items"])

    def stats(self) -> dict[str, dict[str, int]]:
        return dict(self.admin.get("/stats").json()["tokens"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def minimum_requests(fake: Fake, company_id: int, *, full: bool) -> dict[str, int]:
    """The fewest requests a full sync of this data can make, per table (one `/me` besides)."""
    counts: dict[str, int] = {"me": 1}
    years = fake.dump("fiscal_years", company_id)
    open_years = [y for y in years if y["status"] in OPEN]
    for table in TABLES:
        if table.strategy is Strategy.LINES:
            lines = fake.dump(table.name, company_id)
            per_invoice: dict[int, int] = {}
            for line in lines:
                per_invoice[line["invoice_id"]] = per_invoice.get(line["invoice_id"], 0) + 1
            invoices = fake.dump(table.parent or "", company_id)
            counts[table.name] = sum(max(1, math.ceil(per_invoice.get(i["id"], 0) / 100)) for i in invoices)
        elif table.strategy is Strategy.TRIAL_BALANCE:
            counts[table.name] = sum(
                max(1, math.ceil(len(fake.dump("trial_balance", company_id, period_start=y["start"],
                                              period_end=y["finish"])) / table.max_limit))
                for y in open_years
            )  # fmt: skip
        elif table.strategy is Strategy.EXPORT:
            counts[table.name] = 2 * len(open_years) if full else 0  # POST, then one GET that finds it ready
        else:
            counts[table.name] = max(1, math.ceil(len(fake.dump(table.name, company_id)) / table.max_limit))
    return counts


def minimum_unchanged(fake: Fake, company_id: int) -> int:
    """An incremental with nothing changed: /me, one page per changelog, the small tables listed whole."""
    years = fake.dump("fiscal_years", company_id)
    changelogs = sum(1 for t in TABLES if t.strategy is Strategy.CHANGELOG)
    small = sum(
        max(1, math.ceil(len(fake.dump(t.name, company_id)) / t.max_limit))
        for t in TABLES
        if t.strategy is Strategy.REFRESH and t.name != "ledger_entries"
    )
    assert CHANGELOG_MAX_LIMIT >= 1000
    return 1 + changelogs + small + sum(1 for y in years if y["status"] in OPEN)


async def fresh_database() -> str:
    name = f"cf_bench_pl_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_SERVER)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_SERVER.rpartition("/")[0] + "/" + name


async def drop_database(dsn: str) -> None:
    conn = await asyncpg.connect(PG_SERVER)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rpartition("/")[2]}" WITH (FORCE)')
    finally:
        await conn.close()


async def connect_tenant(pool: asyncpg.Pool, tenant: str, token: str, base_url: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await tenants.create_tenant(conn, tenant, tenant)
        await connections.put_connection(
            conn, KEYRING, tenant, token=SecretStr(token), base_url=base_url, enabled=True, scopes=[],
            company_id=None, company_name=None,
        )  # fmt: skip


async def run_sync(pool: asyncpg.Pool, settings: Settings, tenant: str, mode: SyncMode) -> tuple[jobs.Job, float]:
    async with pool.acquire() as conn:
        job, _ = await jobs.create_job(conn, tenant, KIND, {"mode": mode.value, "tables": None})
    bus = MemoryBus(service="pennylane-sync", topology=discover().topology)
    await bus.connect()
    started = time.perf_counter()
    try:
        handler = SyncHandler(pool=pool, bus=bus, settings=settings, keyring=KEYRING)
        await handler.handle(PennylaneSyncRequested(tenant_id=tenant, job_id=job.id, mode=mode), None)
    finally:
        await bus.close()
    seconds = time.perf_counter() - started
    async with pool.acquire() as conn:
        done = await jobs.get_job(conn, job.id)
    assert done is not None
    if done.status.value != "SUCCEEDED":
        raise RuntimeError(f"the sync of {tenant} ended {done.status.value}: {done.errors}")
    return done, seconds


def _line(label: str, value: str) -> None:
    print(f"  {label:<44} {value}")


async def bench_full(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> dict[str, Any]:
    fake = Fake(size=args.size, rate_limit=args.rate_limit, rate_window=args.rate_window)
    try:
        (company,) = fake.companies()
        tenant = "bench-full"
        await connect_tenant(pool, tenant, "bench-token", fake.base)
        minimum = minimum_requests(fake, company["id"], full=True)
        job, seconds = await run_sync(pool, settings, tenant, SyncMode.FULL)
        stats = fake.stats()
        (token_stats,) = stats.values()
        made = job.stats["requests"]
        rows = sum(t["rows"] for t in job.stats["tables"])
        out: dict[str, Any] = {
            "size": args.size,
            "rows": rows,
            "full_seconds": round(seconds, 1),
            "full_requests": made,
            "full_minimum": sum(minimum.values()),
            "full_rate": round(made / seconds, 2),
            "full_429": token_stats["throttled"],
            "minimum_by_table": minimum,
        }
        print(f"full sync of the {args.size} company ({rows} rows), limit {args.rate_limit}/{args.rate_window:g} s")
        _line("seconds", f"{seconds:.1f}")
        _line("requests made / minimum possible", f"{made} / {out['full_minimum']}")
        _line("sustained requests/s (goal >= 4.8)", f"{out['full_rate']:.2f}")
        _line("429s received (goal 0)", str(out["full_429"]))
        unchanged = minimum_unchanged(fake, company["id"])
        for n in (1, 2):
            job, seconds = await run_sync(pool, settings, tenant, SyncMode.INCREMENTAL)
            out[f"unchanged_{n}_requests"] = job.stats["requests"]
            _line(f"incremental, nothing changed #{n}: requests / goal", f"{job.stats['requests']} / {unchanged}")
        out["unchanged_goal"] = unchanged
        fake.admin.post("/mutate", json={"inserts": 50, "updates": 50, "deletes": 20, "seed": 5}).raise_for_status()
        job, seconds = await run_sync(pool, settings, tenant, SyncMode.INCREMENTAL)
        changed = {k: job.stats[k] for k in ("inserted", "updated", "deleted", "requests")}
        out["changed"] = changed | {"seconds": round(seconds, 1)}
        _line("incremental after 50/50/20 changes", f"{changed} in {seconds:.1f} s")
        out["upsert"] = await bench_upsert(pool, fake.dump("ledger_entry_lines", company["id"]))
        return out
    finally:
        fake.stop()


async def bench_upsert(pool: asyncpg.Pool, lines: list[dict[str, Any]]) -> dict[str, float]:
    """Rows/s through the sync's writer: spool, COPY, one upsert (insert, unchanged, all changed)."""
    tenant = "bench-upsert"
    async with pool.acquire() as conn:
        name = await schema.migrate_tenant(conn, tenant)
    results: dict[str, float] = {}
    for label, items in (
        ("insert", lines),
        ("unchanged", lines),
        ("all_changed", [{**item, "label": item["label"] + " (modifiée)"} for item in lines]),
    ):
        started = time.perf_counter()
        unit = Unit(name)
        unit.add("ledger_entry_lines", items)  # checked and encoded as pages arrive, during the API's waits
        spooled = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction():
            await unit.apply(conn, "ledger_entry_lines", datetime.now(UTC))
        applied = time.perf_counter()
        unit.close()
        results[f"{label}_postgres_rows_per_s"] = round(len(items) / (applied - spooled))
        results[f"{label}_end_to_end_rows_per_s"] = round(len(items) / (applied - started))
    print(f"upsert of {len(lines)} ledger entry lines through the writer (goal >= 50,000 rows/s)")
    for key, value in results.items():
        _line(key, f"{value:,.0f}")
    return results


async def bench_tenants(args: argparse.Namespace, settings: Settings, pool: asyncpg.Pool) -> dict[str, Any]:
    fake = Fake(size=args.tenant_size, rate_limit=args.rate_limit, rate_window=args.rate_window)
    try:
        tokens = [f"tenant-token-{n}" for n in range(args.tenants)]
        for n, token in enumerate(tokens[1:], start=2):
            fake.admin.post("/companies", json={"seed": n, "size": args.tenant_size, "token": token}).raise_for_status()
        fake.admin.post(
            "/tokens", json={"token": tokens[0], "company_id": fake.companies()[0]["id"]}
        ).raise_for_status()
        alone = "bench-alone"
        await connect_tenant(pool, alone, "bench-token", fake.base)
        _, one = await run_sync(pool, settings, alone, SyncMode.FULL)
        names = [f"bench-t{n:02d}" for n in range(args.tenants)]
        for tenant, token in zip(names, tokens, strict=True):
            await connect_tenant(pool, tenant, token, fake.base)
        started = time.perf_counter()
        await asyncio.gather(*(run_sync(pool, settings, t, SyncMode.FULL) for t in names))
        total = time.perf_counter() - started
        throttled = sum(s["throttled"] for s in fake.stats().values())
        out = {
            "tenants": args.tenants,
            "tenant_size": args.tenant_size,
            "one_seconds": round(one, 1),
            "all_seconds": round(total, 1),
            "ratio": round(total / one, 2),
            "429": throttled,
        }
        print(f"{args.tenants} tenants ({args.tenant_size}) with their own tokens, full syncs at once")
        _line("one tenant alone, seconds", f"{one:.1f}")
        _line(f"{args.tenants} at once, seconds", f"{total:.1f}")
        _line("ratio (goal <= 1.3)", f"{out['ratio']:.2f}")
        _line("429s received", str(throttled))
        return out
    finally:
        fake.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="large", choices=("small", "medium", "large"))
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--tenant-size", default="small", choices=("small", "medium", "large"))
    parser.add_argument("--rate-limit", type=int, default=25)
    parser.add_argument("--rate-window", type=float, default=5.0)
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--skip-tenants", action="store_true")
    args = parser.parse_args()
    dsn = await fresh_database()
    results: dict[str, Any] = {}
    try:
        pool = await db.create_pool(dsn, max_size=40)
        await db.migrate(pool)
        settings = Settings(
            database_url=SecretStr(dsn),
            pennylane_rate_limit=args.rate_limit,
            pennylane_rate_window_s=args.rate_window,
            log_level="WARNING",
        )
        try:
            if not args.skip_full:
                results["full"] = await bench_full(args, settings, pool)
            if not args.skip_tenants:
                results["tenants"] = await bench_tenants(args, settings, pool)
        finally:
            await pool.close()
    finally:
        await drop_database(dsn)
    print(json.dumps(results))


if __name__ == "__main__":
    from comptaflow.common.logging import configure_logging

    configure_logging(fmt="console", level="WARNING")
    asyncio.run(main())
