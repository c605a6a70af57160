"""The outbox relay runs in every process that writes the outbox: a batch uploaded with `auto_load` is loaded
although the gateway (whose relay published its upload) stopped right after: the validator's own relay
publishes the load request it committed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from comptaflow.cli.runtime import HttpServer
from comptaflow.common import batches
from comptaflow.common.contracts import BatchStatus
from comptaflow.common.infra import open_infra
from comptaflow.common.settings import Settings
from comptaflow.common.tokens import Role, mint
from comptaflow.common.worker import Worker
from comptaflow.gateway.app import create_app
from comptaflow.loader.service import SERVICE as LOADER
from comptaflow.period_validator.service import SERVICE as VALIDATOR
from comptaflow.testkit.excel import ExportSpec, write_period

pytestmark = [pytest.mark.infra]

FIELDS = ("grand_livre_comptes", "grand_livre_tiers", "plan_comptes", "plan_tiers", "code_journal")


async def _status(
    pool: asyncpg.Pool, batch_id: uuid.UUID, wanted: set[BatchStatus], *, within: float = 120
) -> BatchStatus:
    async def poll() -> BatchStatus:
        while True:
            async with pool.acquire() as conn:
                batch = await batches.get_batch(conn, batch_id)
            assert batch is not None
            if batch.status in wanted:
                return batch.status
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout=within)


async def test_a_batch_is_loaded_after_the_gateway_stopped(amqp_settings: Settings, tmp_path: Path) -> None:
    assert amqp_settings.jwt_secret is not None
    secret = amqp_settings.jwt_secret.get_secret_value()
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    export = write_period(tmp_path / "period", ExportSpec())
    async with (
        open_infra(amqp_settings, service="period-validator") as validator_infra,
        open_infra(amqp_settings, service="loader") as loader_infra,
    ):
        validator = Worker(VALIDATOR, validator_infra)
        loader = Worker(LOADER, loader_infra)
        await loader.start()
        try:
            async with open_infra(amqp_settings, service="gateway") as gateway_infra:
                http = HttpServer(create_app(gateway_infra, jwt_secret=secret), host="127.0.0.1", port=0)
                port = await http.start()
                try:
                    token = mint(secret, sub="relay-test", role=Role.ADMIN, tenants=["*"], ttl=600)
                    headers = {"Authorization": f"Bearer {token}"}
                    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
                        created = await client.post("/api/v1/tenants", json={"id": tenant, "name": "ACME SARL"})
                        assert created.status_code == 201, created.text
                        files = [(f, (export.paths[f].name, export.paths[f].read_bytes())) for f in FIELDS]
                        accepted = await client.post(
                            f"/api/v1/tenants/{tenant}/batches", files=files, data={"auto_load": "true"}
                        )
                        assert accepted.status_code == 202, accepted.text
                        batch_id = uuid.UUID(accepted.json()["batch_id"])
                    # The upload's event left the gateway's outbox (published) before the gateway stops.
                    async with gateway_infra.db.acquire() as conn:
                        for _ in range(200):
                            if not await conn.fetchval(
                                "SELECT count(*) FROM outbox WHERE body::jsonb ->> 'batch_id' = $1", str(batch_id)
                            ):
                                break
                            await asyncio.sleep(0.05)
                        else:
                            raise AssertionError("the gateway did not relay the upload")
                finally:
                    await http.stop()
            # No gateway any more: the validator validates, commits the load request and relays it itself.
            await validator.start()
            try:
                final = await _status(validator_infra.db, batch_id, {BatchStatus.COMPLETED, BatchStatus.FAILED})
            finally:
                await validator.stop(grace=5)
        finally:
            await loader.stop(grace=5)
    assert final is BatchStatus.COMPLETED
