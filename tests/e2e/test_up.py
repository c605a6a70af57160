"""`comptaflow up` as a user runs it: a child process, the ready line, a validated upload, Ctrl-C, exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from comptaflow.cli.embedded import S3Endpoint, free_port
from comptaflow.testkit.excel import ExportSpec, write_period
from tests.e2e.platform import wait_for_status

pytestmark = [pytest.mark.infra, pytest.mark.slow]

FIELDS = ("grand_livre_comptes", "grand_livre_tiers", "plan_comptes", "plan_tiers", "code_journal")


def _env(home: Path, port: int, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPTAFLOW_")}
    env |= {"COMPTAFLOW_HOME": str(home), "COMPTAFLOW_HTTP_PORT": str(port), "COMPTAFLOW_LOG_FORMAT": "json"}
    return env | extra


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 — our own CLI, fixed arguments
        [sys.executable, "-m", "comptaflow.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def _wait_ready(process: subprocess.Popen[str], deadline: float, stderr: Path) -> str:
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("comptaflow ready "):
            return line.split()[-1]
        if not line and process.poll() is not None:
            tail = stderr.read_text()[-2000:]
            raise AssertionError(f"`comptaflow up` exited with {process.returncode} before it was ready:\n{tail}")
    raise AssertionError("`comptaflow up` printed no ready line in time")


async def _exercise(base_url: str, token: str, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert (await client.get("/metrics")).text.count("comptaflow_") > 0
        tenant = f"acme-{uuid.uuid4().hex[:8]}"
        created = await client.post("/api/v1/tenants", json={"id": tenant, "name": "ACME SARL"})
        assert created.status_code == 201, created.text
        export = write_period(tmp_path / "period", ExportSpec())
        files = [(f, (export.paths[f].name, export.paths[f].read_bytes())) for f in FIELDS]
        accepted = await client.post(f"/api/v1/tenants/{tenant}/batches", files=files)
        assert accepted.status_code == 202, accepted.text
        batch = await wait_for_status(client, accepted.json()["batch_id"], ("VALIDATED", "FAILED"), tries=600)
        assert batch["status"] == "VALIDATED", batch
        assert (batch["period_start"], batch["period_end"]) == ("2024-01-01", "2024-12-31")


def _run_up(tmp_path: Path, extra_env: dict[str, str]) -> None:
    home, port = tmp_path / "home", free_port()
    env = _env(home, port, extra_env)
    stderr_path = tmp_path / "up.stderr"
    stderr = stderr_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "comptaflow.cli.main", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        base_url = _wait_ready(process, time.monotonic() + 120, stderr_path)
        assert base_url == f"http://127.0.0.1:{port}"
        token = _cli("token", "--sub", "alice", "--role", "admin", "--tenant", "*", env=env).stdout.strip()
        asyncio.run(_exercise(base_url, token, tmp_path))
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        stderr.close()


def test_up_runs_on_embedded_defaults(tmp_path: Path) -> None:
    _run_up(tmp_path, {})
    home = tmp_path / "home"
    assert (home / "jwt-secret").stat().st_mode & 0o077 == 0  # the generated secret is private
    assert (home / "postgres").is_dir()
    assert (home / "s3").is_dir()


def test_up_uses_real_services_when_their_urls_are_set(
    tmp_path: Path, pg_dsn: str, amqp_url: str, s3: S3Endpoint
) -> None:
    _run_up(
        tmp_path,
        {
            "COMPTAFLOW_DATABASE_URL": pg_dsn,
            "COMPTAFLOW_AMQP_URL": amqp_url,
            "COMPTAFLOW_S3_ENDPOINT": s3.endpoint,
            "COMPTAFLOW_S3_ACCESS_KEY": s3.access_key,
            "COMPTAFLOW_S3_SECRET_KEY": s3.secret_key,
            "COMPTAFLOW_S3_BUCKET": "comptaflow-up-test",
            "COMPTAFLOW_JWT_SECRET": "a-test-secret-of-sufficient-length-0123456789",
            "COMPTAFLOW_DELIVERY_LIMIT": "3",  # the session's queues were declared with the test settings' limit
        },
    )
    home = tmp_path / "home"
    assert not (home / "postgres").exists()
    assert not (home / "s3").exists()
