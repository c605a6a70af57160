"""A loader process killed mid-load: the broker redelivers, a second process finishes with exact counts.

chdb holds one path per process, so the loaders run as child processes on their own chdb path and this
process opens that path only after both have exited.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from comptaflow.cli.embedded import S3Endpoint
from comptaflow.common.contracts import LoadRequested
from comptaflow.common.infra import open_infra
from comptaflow.common.secrets import generate_key
from comptaflow.common.settings import Settings
from comptaflow.common.warehouse import Warehouse
from tests.loader.support import new_tenant, stage_batch, wait_final
from tests.queues import TOPOLOGY

pytestmark = pytest.mark.infra

LINES = 1_500_000


def _spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "comptaflow.cli.main", "serve", "loader"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _stop(child: subprocess.Popen[bytes], sig: int) -> None:
    if child.poll() is None:
        child.send_signal(sig)
    await asyncio.to_thread(child.wait, 30)


async def test_loader_killed_mid_load_is_redelivered_and_ends_with_exact_rows(
    settings: Settings, amqp_url: str, pg_dsn: str, s3: S3Endpoint, tmp_path: Path
) -> None:
    child_url = f"chdb://{tmp_path / 'clickhouse'}"
    env = {
        **os.environ,
        "COMPTAFLOW_HOME": str(tmp_path),
        "COMPTAFLOW_DATABASE_URL": pg_dsn,
        "COMPTAFLOW_AMQP_URL": amqp_url,
        "COMPTAFLOW_S3_ENDPOINT": s3.endpoint,
        "COMPTAFLOW_S3_ACCESS_KEY": s3.access_key,
        "COMPTAFLOW_S3_SECRET_KEY": s3.secret_key,
        "COMPTAFLOW_S3_BUCKET": settings.s3_bucket,
        "COMPTAFLOW_CLICKHOUSE_URL": child_url,
        "COMPTAFLOW_HEALTH_PORT": "0",
        "COMPTAFLOW_DELIVERY_LIMIT": str(settings.delivery_limit),
        "COMPTAFLOW_LOG_FORMAT": "json",
        "COMPTAFLOW_SECRET_KEY": generate_key(),
    }
    log = tmp_path / "loaders.log"
    tenant = new_tenant()
    async with open_infra(settings, service="test") as infra:  # no warehouse: clickhouse_url unset
        staged = await stage_batch(infra.db, infra.storage, tenant, lines=LINES, big=True)
        first = _spawn(env, log)
        try:
            conn = await asyncpg.connect(pg_dsn)
            try:
                # Let the first loader start, then hand it the load.
                await asyncio.sleep(0.1)
                from comptaflow.common.bus.amqp import AmqpBus

                bus = AmqpBus(amqp_url, topology=TOPOLOGY, service="test", delivery_limit=settings.delivery_limit)
                await bus.connect()
                try:
                    await bus.publish(LoadRequested(tenant_id=tenant, batch_id=staged.batch_id))
                finally:
                    await bus.close()
                stage = status = None
                for _ in range(12_000):
                    row = await conn.fetchrow("SELECT status, stage FROM batches WHERE id = $1", staged.batch_id)
                    assert row is not None
                    status, stage = row["status"], row["stage"]
                    if status == "PROCESSING" and stage in ("dimensions", "facts", "verify", "backup", "switch"):
                        break
                    assert status not in ("COMPLETED", "FAILED"), (status, stage)
                    await asyncio.sleep(0.005)
                first.kill()  # SIGKILL: no cleanup, the broker redelivers the unacknowledged message
                await asyncio.to_thread(first.wait, 30)
                assert (status, stage) in {
                    ("PROCESSING", s) for s in ("dimensions", "facts", "verify", "backup", "switch")
                }
                killed_at = stage
                assert await conn.fetchval("SELECT status FROM batches WHERE id = $1", staged.batch_id) == "PROCESSING"
            finally:
                await conn.close()
            second = _spawn(env, log)
            try:
                batch = await wait_final(infra.db, staged.batch_id, within=90)
            finally:
                await _stop(second, signal.SIGTERM)
        finally:
            await _stop(first, signal.SIGKILL)
    assert batch.status.value == "COMPLETED", (batch.errors, log.read_text()[-3000:])

    warehouse = Warehouse(child_url)
    await warehouse.open()
    try:
        db = warehouse.database
        counts = await warehouse.query(
            f"SELECT (SELECT count() FROM {db}.grand_livre WHERE tenant_id = {{t:String}}),"  # noqa: S608
            f" (SELECT count() FROM {db}.plan_comptes WHERE tenant_id = {{t:String}}),"
            f" (SELECT uniqExact(row) FROM {db}.grand_livre WHERE tenant_id = {{t:String}})",
            {"t": tenant},
        )
        attempts = await warehouse.query(
            f"SELECT status FROM {db}.etl_metadata FINAL WHERE tenant_id = {{t:String}} ORDER BY processing_start",  # noqa: S608
            {"t": tenant},
        )
    finally:
        await warehouse.close()
    assert counts == [(LINES, 5, LINES)], f"killed at stage {killed_at}"
    # The killed attempt stays 'running' (it never finished); the second one succeeded.
    assert [a[0] for a in attempts] == ["running", "success"]
