"""Session fixtures for the real infrastructure the tests talk to.

- PostgreSQL: the server at `COMPTAFLOW_TEST_PG` (default postgres@127.0.0.1:5432); one fresh database
  per test session, migrated, dropped at the end.
- RabbitMQ: the broker at `COMPTAFLOW_TEST_AMQP` (default guest@127.0.0.1:5672); one fresh virtual
  host per session when `rabbitmqctl` is available, so queues of parallel runs never mix.
- S3: a SeaweedFS server started from the `weed` binary of this environment.

When a service is unreachable the test is skipped locally, and FAILS when `CI=true`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from comptaflow.cli.embedded import EmbeddedS3, S3Endpoint
from comptaflow.common import db
from comptaflow.common.settings import Settings

PG_SERVER = os.environ.get("COMPTAFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_SERVER = os.environ.get("COMPTAFLOW_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} unavailable: {exc!r}"
    if IN_CI:
        pytest.fail(message + " (CI=true: infrastructure tests must run)")
    pytest.skip(message)


def _with_database(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    name = f"cf_test_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_SERVER, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        pool = await db.create_pool(_with_database(PG_SERVER, name), max_size=2)
        try:
            await db.migrate(pool)
        finally:
            await pool.close()

    async def drop() -> None:
        conn = await asyncpg.connect(PG_SERVER, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable("PostgreSQL", exc)
    yield _with_database(PG_SERVER, name)
    asyncio.run(drop())


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    the_pool = await db.create_pool(pg_dsn, max_size=5)
    yield the_pool
    await the_pool.close()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    server = EmbeddedS3(tmp_path_factory.mktemp("seaweedfs"))
    try:
        endpoint = asyncio.run(server.start(ready_within=90))
    except Exception as exc:
        unavailable("SeaweedFS", exc)
    yield endpoint
    server.stop(grace=0)  # test data is disposable


def _rabbitmqctl(*args: str) -> bool:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        return False
    done = subprocess.run([tool, *args], capture_output=True, timeout=60, check=False)  # noqa: S603
    return done.returncode == 0


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    import aio_pika

    vhost = f"cf_test_{uuid.uuid4().hex[:12]}"
    isolated = _rabbitmqctl("add_vhost", vhost) and _rabbitmqctl(
        "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"
    )
    url = AMQP_SERVER.rstrip("/") + "/" + vhost if isolated else AMQP_SERVER

    async def probe() -> None:
        connection = await aio_pika.connect(url, timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        unavailable("RabbitMQ", exc)
    yield url
    if isolated:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An in-process ClickHouse (chdb) path for the session; tests isolate by unique tenant ids.

    chdb holds one path per process: anything that must use another path runs in a child process.
    """
    return f"chdb://{tmp_path_factory.mktemp('clickhouse')}"


@pytest.fixture
def settings(pg_dsn: str, s3: S3Endpoint, tmp_path: Path) -> Settings:
    """Settings pointing at the real database and object store (in-process bus unless a test adds AMQP)."""
    return Settings(
        home=tmp_path,
        jwt_secret=SecretStr("test-secret-" + "x" * 32),
        database_url=SecretStr(pg_dsn),
        s3_endpoint=s3.endpoint,
        s3_access_key=SecretStr(s3.access_key),
        s3_secret_key=SecretStr(s3.secret_key),
        s3_bucket="comptaflow-test",
        delivery_limit=3,
    )
