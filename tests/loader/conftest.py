"""Fixtures of the loader tests: a loader on real RabbitMQ, PostgreSQL, SeaweedFS and chdb."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from comptaflow.common.infra import Infra, open_infra
from comptaflow.common.settings import Settings
from comptaflow.common.worker import Worker
from comptaflow.loader.service import SERVICE as LOADER


@dataclass
class Running:
    infra: Infra
    loader: Worker


@pytest.fixture
def loader_settings(settings: Settings, amqp_url: str, chdb_url: str) -> Settings:
    return settings.model_copy(update={"amqp_url": SecretStr(amqp_url), "clickhouse_url": chdb_url})


@pytest.fixture
async def running(loader_settings: Settings) -> AsyncIterator[Running]:
    async with open_infra(loader_settings, service="loader-test") as infra:
        loader = Worker(LOADER, infra)
        await loader.start()
        try:
            yield Running(infra, loader)
        finally:
            await loader.stop(grace=5)
