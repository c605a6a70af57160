"""`comptaflow up` killed (SIGKILL) at every start while it validates one batch: the restart loop ends.

The batch stands for a file that kills the process: each time its validation has started (again), the
test kills `up` and its children, then starts it again on the same home, as a supervisor would. With
the in-process bus every start hands unfinished batches to the validator again; after
`COMPTAFLOW_DELIVERY_LIMIT` runs the next start fails the batch with the reason instead, and later
starts leave it alone. PostgreSQL is a database of its own on the test server, so the test can watch
the batch's row (`attempts`) while `up` runs, and `up` sees no other test's batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from comptaflow.cli.embedded import S3Endpoint, free_port
from comptaflow.common.tokens import Role, mint
from comptaflow.testkit.fec import FecSpec, write_fec

pytestmark = [pytest.mark.infra, pytest.mark.slow]

LIMIT = 2
LINES = 500_000  # a few seconds of validation: long enough to be caught VALIDATING
JWT_SECRET = "a-test-secret-of-sufficient-length-0123456789"
ABANDONED = [
    {
        "code": "INTERNAL_ERROR",
        "message": "validation was started 2 times without finishing (the worker stopped each time);"
        " the batch is abandoned",
    }
]


@pytest.fixture
def database(pg_dsn: str) -> Iterator[str]:
    """An empty database on the test server (`up` migrates it), dropped after the test."""
    name = f"cf_test_{uuid.uuid4().hex[:12]}"
    base, _, _ = pg_dsn.rpartition("/")

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(pg_dsn, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    yield f"{base}/{name}"
    asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Up:
    """One `comptaflow up` child process, in a process group of its own so that it dies with its children."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "comptaflow.cli.main", "up"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=out,
                text=True,
                start_new_session=True,
            )

    def wait_ready(self, within: float = 60) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("comptaflow ready "):
                return line.split()[-1]
            if not line and self.process.poll() is not None:
                raise AssertionError(f"`up` exited with {self.process.returncode}:\n{self._log.read_text()[-3000:]}")
        raise AssertionError("`up` printed no ready line in time")

    def kill(self) -> None:
        """SIGKILL to the whole group: no shutdown, no cleanup, as when the process is killed by the OOM killer."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.asynccontextmanager
async def up(env: dict[str, str], log: Path) -> AsyncIterator[tuple[Up, httpx.AsyncClient]]:
    """A started `up` and an admin client of its API; the process is gone when the block ends."""
    process = Up(env, log)
    try:
        base_url = await asyncio.to_thread(process.wait_ready)
        token = mint(JWT_SECRET, sub="e2e", role=Role.ADMIN, tenants=["*"], ttl=600)
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            yield process, client
    finally:
        await asyncio.to_thread(process.close)


async def claimed(conn: asyncpg.Connection, batch_id: str, attempts: int) -> None:
    """Wait until the validator has claimed the batch for the `attempts`-th time."""
    for _ in range(3000):
        row = await conn.fetchrow("SELECT status, attempts FROM batches WHERE id = $1", uuid.UUID(batch_id))
        if row is not None and (row["status"], row["attempts"]) == ("VALIDATING", attempts):
            return
        assert row is None or row["status"] in ("PENDING", "VALIDATING"), dict(row)
        await asyncio.sleep(0.01)
    raise AssertionError(f"the batch was not claimed a {attempts}th time")


async def batch_of(client: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/batches/{batch_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_batch_that_kills_up_at_every_start_is_failed_once_it_ran_the_limit(
    tmp_path: Path, database: str, s3: S3Endpoint
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPTAFLOW_")} | {
        "COMPTAFLOW_HOME": str(tmp_path / "home"),
        "COMPTAFLOW_HTTP_PORT": str(free_port()),
        "COMPTAFLOW_LOG_FORMAT": "json",
        "COMPTAFLOW_DATABASE_URL": database,
        "COMPTAFLOW_S3_ENDPOINT": s3.endpoint,
        "COMPTAFLOW_S3_ACCESS_KEY": s3.access_key,
        "COMPTAFLOW_S3_SECRET_KEY": s3.secret_key,
        "COMPTAFLOW_S3_BUCKET": "comptaflow-restart-test",
        "COMPTAFLOW_JWT_SECRET": JWT_SECRET,
        "COMPTAFLOW_DELIVERY_LIMIT": str(LIMIT),
    }
    log = tmp_path / "up.log"
    fec = await asyncio.to_thread(write_fec, tmp_path / "fec.txt", FecSpec(lines=LINES))
    tenant = f"t-{uuid.uuid4().hex[:10]}"

    conn = await asyncpg.connect(database)
    try:
        async with up(env, log) as (first, client):
            created = await client.post("/api/v1/tenants", json={"id": tenant, "name": "ACME SARL"})
            assert created.status_code == 201, created.text
            content = await asyncio.to_thread(fec.path.read_bytes)
            accepted = await client.post(f"/api/v1/tenants/{tenant}/batches", files=[("fec", ("fec.txt", content))])
            assert accepted.status_code == 202, accepted.text
            batch_id: str = accepted.json()["batch_id"]
            await claimed(conn, batch_id, 1)
            await asyncio.to_thread(first.kill)
        # Every start after a crash runs the batch again, until it ran LIMIT times in all.
        for run in range(2, LIMIT + 1):
            async with up(env, log) as (again, _):
                await claimed(conn, batch_id, run)
                await asyncio.to_thread(again.kill)
        assert await conn.fetchval("SELECT status FROM batches WHERE id = $1", uuid.UUID(batch_id)) == "VALIDATING"
    finally:
        await conn.close()

    # The next start fails it with the reason instead of running it a third time, and serves requests.
    async with up(env, log) as (_, client):
        failed = await batch_of(client, batch_id)
        assert (failed["status"], failed["stage"], failed["errors"]) == ("FAILED", "failed", ABANDONED)
        assert (await client.get("/readyz")).status_code == 200
    # Later starts leave it alone (not a column changed), and stop cleanly.
    async with up(env, log) as (process, client):
        assert await batch_of(client, batch_id) == failed
        assert (await client.get("/api/v1/tenants")).status_code == 200
        process.process.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(process.process.wait, 60) == 0
    assert log.read_text().count('"event": "exhausted_batch_abandoned"') == 1
