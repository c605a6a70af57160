"""A new worker is a handler and its declaration: the sample service (tests/e2e/sample_service.py), registered
by COMPTAFLOW_EXTRA_SERVICES only, is started by `comptaflow up` and `comptaflow serve`, its messages are
routed to its queues, relayed through the outbox, dead-lettered when poison, and it is in the AsyncAPI document."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from comptaflow.cli.embedded import S3Endpoint, free_port
from comptaflow.common import db, outbox
from comptaflow.common.contracts.asyncapi import build_asyncapi
from comptaflow.common.registry import discover
from comptaflow.common.secrets import generate_key
from comptaflow.common.tenants import create_tenant
from tests.e2e.sample_service import SERVICE, Ping
from tests.e2e.test_up import _env, _wait_ready

pytestmark = [pytest.mark.infra, pytest.mark.slow]

REFERENCE = "tests.e2e.sample_service:SERVICE"
ROOT = Path(__file__).resolve().parents[2]


def _infrastructure(pg_dsn: str, amqp_url: str, s3: S3Endpoint) -> dict[str, str]:
    return {
        "COMPTAFLOW_DATABASE_URL": pg_dsn,
        "COMPTAFLOW_AMQP_URL": amqp_url,
        "COMPTAFLOW_S3_ENDPOINT": s3.endpoint,
        "COMPTAFLOW_S3_ACCESS_KEY": s3.access_key,
        "COMPTAFLOW_S3_SECRET_KEY": s3.secret_key,
        "COMPTAFLOW_S3_BUCKET": "comptaflow-sample-test",
        "COMPTAFLOW_JWT_SECRET": "a-test-secret-of-sufficient-length-0123456789",
        "COMPTAFLOW_DELIVERY_LIMIT": "3",  # the session's queues were declared with the test settings' limit
        "COMPTAFLOW_EXTRA_SERVICES": REFERENCE,
        "COMPTAFLOW_SECRET_KEY": generate_key(),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


def test_the_sample_service_is_in_no_shared_list_but_in_the_registry_and_the_asyncapi_document() -> None:
    assert "sample-echo" not in discover()  # no installed package registers it
    registry = discover(REFERENCE)
    assert registry.get("sample-echo") is SERVICE
    assert [(q.queue_name, q.routing_keys) for q in SERVICE.queues] == [
        ("comptaflow.sample-echo", ("sample.ping",)),
        ("comptaflow.sample-echo-pongs", ("sample.pong",)),
    ]
    doc = build_asyncapi(registry)
    assert set(doc["channels"]["sample-echo"]["messages"]) == {"Ping"}
    assert set(doc["channels"]["sample-echo-pongs"]["messages"]) == {"Pong"}
    assert doc["components"]["messages"]["Ping"]["name"] == "sample.ping"
    assert doc["operations"]["sample-echo.send"]["messages"] == [{"$ref": "#/channels/events/messages/Pong"}]


async def _enqueue(pg_dsn: str, *pings: Ping) -> None:
    pool = await db.create_pool(pg_dsn, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            for ping in pings:
                await outbox.enqueue(conn, ping)
    finally:
        await pool.close()


async def _dead_letters(amqp_url: str) -> list[dict[str, object]]:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue("comptaflow.sample-echo.dead", passive=True)
        found = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            found.append(json.loads(message.body))
        return found
    finally:
        await connection.close()


def _wait_for(path: Path, deadline: float) -> str:
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path.name} did not appear")


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=60)


@pytest.fixture
def tenant(pg_dsn: str) -> str:
    name = f"sample-{os.getpid()}-{time.monotonic_ns() % 10**8}"

    async def create() -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await create_tenant(conn, name, "Sample SARL")
        finally:
            await conn.close()

    asyncio.run(create())
    return name


def test_up_starts_routes_relays_and_dead_letters_the_sample_service(
    tmp_path: Path, pg_dsn: str, amqp_url: str, s3: S3Endpoint, tenant: str
) -> None:
    home, port = tmp_path / "home", free_port()
    env = _env(home, port, _infrastructure(pg_dsn, amqp_url, s3))
    stderr_path = tmp_path / "up.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "comptaflow.cli.main", "up"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            _wait_ready(process, time.monotonic() + 120, stderr_path)
            # Committed in the outbox of the platform's database: `up`'s relay publishes them.
            asyncio.run(
                _enqueue(pg_dsn, Ping(tenant_id=tenant, word="hello"), Ping(tenant_id=tenant, word="bad", poison=True))
            )
            folder = home / "tmp" / "sample-echo"
            deadline = time.monotonic() + 60
            # hello: ping consumed, pong enqueued and relayed, consumed on the second queue.
            assert _wait_for(folder / "pong-hello", deadline) == tenant
            assert _wait_for(folder / "gave-up-bad", deadline) == "True the ping 'bad' is poison"
            assert _stop(process) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
    dead = asyncio.run(_dead_letters(amqp_url))
    assert [(m["type"], m["word"]) for m in dead] == [("sample.ping", "bad")]
    assert not (folder / "pong-bad").exists()
    logs = [json.loads(line) for line in stderr_path.read_text().splitlines() if line.startswith("{")]
    started = [line for line in logs if line.get("event") == "worker_started"]
    assert {line["service"] for line in started} == {"loader", "pennylane-sync", "period-validator", "sample-echo"}


def test_serve_runs_the_sample_service_alone_with_its_health_endpoint(
    tmp_path: Path, pg_dsn: str, amqp_url: str, s3: S3Endpoint, tenant: str
) -> None:
    health = free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = _env(home, free_port(), _infrastructure(pg_dsn, amqp_url, s3) | {"COMPTAFLOW_HEALTH_PORT": str(health)})
    stderr_path = tmp_path / "serve.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "comptaflow.cli.main", "serve", "sample-echo"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while "worker_started" not in stderr_path.read_text():
                assert process.poll() is None, stderr_path.read_text()[-2000:]
                assert time.monotonic() < deadline, "the worker did not start"
                time.sleep(0.1)
            with urllib.request.urlopen(f"http://127.0.0.1:{health}/readyz", timeout=10) as response:
                assert json.loads(response.read())["status"] == "ok"
            # Its own relay publishes its pongs: no other process of the platform runs.
            asyncio.run(_enqueue(pg_dsn, Ping(tenant_id=tenant, word="alone")))
            assert _wait_for(home / "tmp" / "sample-echo" / "pong-alone", time.monotonic() + 60) == tenant
            assert _stop(process) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
