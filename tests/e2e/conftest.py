"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from comptaflow.common.settings import Settings
from tests.e2e.platform import Platform, running_platform


@pytest.fixture
def amqp_settings(settings: Settings, amqp_url: str, chdb_url: str) -> Settings:
    return settings.model_copy(update={"amqp_url": SecretStr(amqp_url), "clickhouse_url": chdb_url})


@pytest.fixture
async def platform(amqp_settings: Settings) -> AsyncIterator[Platform]:
    async with running_platform(amqp_settings) as running:
        yield running
