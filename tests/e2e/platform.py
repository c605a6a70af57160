"""A running platform: the gateway on a real port, the period validator and the loader, on real infrastructure."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from comptaflow.cli.runtime import HttpServer
from comptaflow.common.infra import Infra, open_infra
from comptaflow.common.settings import Settings
from comptaflow.common.tokens import Role, mint
from comptaflow.common.worker import Worker
from comptaflow.gateway.app import create_app
from comptaflow.loader.service import SERVICE as LOADER
from comptaflow.period_validator.service import SERVICE as VALIDATOR


async def wait_for_status(
    client: httpx.AsyncClient, batch_id: str, final: tuple[str, ...] = ("COMPLETED", "FAILED"), *, tries: int = 900
) -> dict[str, Any]:
    """Poll `GET /batches/{id}` every 0.1 s until its status is one of `final`; return the batch."""
    for _ in range(tries):
        batch: dict[str, Any] = (await client.get(f"/api/v1/batches/{batch_id}")).json()
        if batch["status"] in final:
            return batch
        await asyncio.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not reach {final}")


@dataclass
class Platform:
    base_url: str
    settings: Settings
    gateway: Infra
    worker: Infra
    validator: Worker
    loader: Worker | None = None

    def token(self, *tenants: str, role: Role = Role.ACCOUNTANT, ttl: int = 600) -> str:
        assert self.settings.jwt_secret is not None
        return mint(self.settings.jwt_secret.get_secret_value(), sub="e2e", role=role, tenants=tenants, ttl=ttl)

    def client(self, token: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=60)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/api/v1/ws"

    async def new_tenant(self, name: str = "ACME SARL") -> str:
        tenant_id = f"t-{uuid.uuid4().hex[:10]}"
        async with self.client(self.token("*", role=Role.ADMIN)) as admin:
            response = await admin.post("/api/v1/tenants", json={"id": tenant_id, "name": name})
            assert response.status_code == 201, response.text
        return tenant_id


@contextlib.asynccontextmanager
async def running_platform(settings: Settings) -> AsyncIterator[Platform]:
    """Gateway and workers as separate components, each with its own connections.

    The loader runs when the settings name a warehouse (`clickhouse_url`).
    """
    async with (
        open_infra(settings, service="gateway") as gateway,
        open_infra(settings, service="period-validator") as worker,
    ):
        assert settings.jwt_secret is not None
        validator = Worker(VALIDATOR, worker)
        await validator.start()
        loader = Worker(LOADER, worker) if worker.warehouse is not None else None
        if loader is not None:
            await loader.start()
        http = HttpServer(
            create_app(gateway, jwt_secret=settings.jwt_secret.get_secret_value()), host="127.0.0.1", port=0
        )
        port = await http.start()
        try:
            yield Platform(f"http://127.0.0.1:{port}", settings, gateway, worker, validator, loader)
        finally:
            await http.stop()
            await validator.stop(grace=5)
            if loader is not None:
                await loader.stop(grace=5)
