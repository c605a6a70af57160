"""Fixtures of the gateway tests: a real gateway (uvicorn) on the session's PostgreSQL and SeaweedFS.

`pg_dsn`, `amqp_url`, `s3` and `settings` come from `tests/conftest.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from comptaflow.common.settings import Settings
from tests.gateway.support import Gateway, running_gateway


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """The gateway with the in-process bus."""
    async with running_gateway(settings) as running:
        yield running
