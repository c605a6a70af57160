"""Settings, the process's connections (open_infra) and batch progress reporting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from pydantic import SecretStr, ValidationError

from comptaflow.common import batches
from comptaflow.common.bus.amqp import AmqpBus
from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.contracts import BatchKind, BatchStatus, StatusEvent
from comptaflow.common.errors import DependencyUnavailable
from comptaflow.common.infra import make_bus, make_storage, open_infra
from comptaflow.common.progress import BatchReporter
from comptaflow.common.settings import Settings
from comptaflow.common.tenants import create_tenant

from .support import tenant_id


def test_settings_are_read_from_prefixed_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPTAFLOW_HTTP_PORT", "9123")
    monkeypatch.setenv("COMPTAFLOW_MAX_UPLOAD_MB", "2")
    monkeypatch.setenv("COMPTAFLOW_AMQP_URL", "amqp://user:pw@broker/")
    monkeypatch.setenv("HTTP_PORT", "1")  # unprefixed: ignored
    settings = Settings()
    assert (settings.http_port, settings.max_upload_bytes) == (9123, 2 * 1024 * 1024)
    assert settings.amqp_url is not None
    assert settings.amqp_url.get_secret_value() == "amqp://user:pw@broker/"
    assert "pw" not in repr(settings)


def test_settings_refuse_unknown_and_out_of_range_values() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Settings(databse_url="postgresql://typo")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="http_port"):
        Settings(http_port=70000)
    with pytest.raises(ValidationError, match="delivery_limit"):
        Settings(delivery_limit=0)


def test_make_bus_picks_rabbitmq_only_when_an_amqp_url_is_set() -> None:
    assert isinstance(make_bus(Settings(), service="x"), MemoryBus)
    assert isinstance(make_bus(Settings(amqp_url=SecretStr("amqp://guest:guest@localhost/")), service="x"), AmqpBus)


def test_make_storage_without_configuration_says_what_to_set() -> None:
    with pytest.raises(DependencyUnavailable, match="set COMPTAFLOW_S3_ENDPOINT, COMPTAFLOW_S3_ACCESS_KEY"):
        make_storage(Settings(s3_endpoint="http://127.0.0.1:1"))


async def test_open_infra_without_a_database_url_fails_clearly() -> None:
    with pytest.raises(DependencyUnavailable, match="COMPTAFLOW_DATABASE_URL is not set"):
        async with open_infra(Settings(), service="x"):
            pass


@pytest.mark.infra
async def test_open_infra_connects_everything_and_closes_it_all_on_exit(settings: Settings) -> None:
    async with open_infra(settings, service="test", run_migrations=True) as infra:
        assert await infra.readiness() == {"database": True, "bus": True, "storage": True}
        assert isinstance(infra.bus, MemoryBus)
        bus, pool, storage = infra.bus, infra.db, infra.storage
    assert await bus.ping() is False
    assert pool.is_closing()
    assert await storage.ping() is False


# -- progress ------------------------------------------------------------------------------------


@pytest.fixture
async def memory_bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus(service="test")
    await bus.connect()
    yield bus
    await bus.close()


async def validating_batch(pool: asyncpg.Pool) -> batches.Batch:
    tenant, batch_id = tenant_id(), uuid.uuid4()
    async with pool.acquire() as conn:
        await create_tenant(conn, tenant, "T")
        await batches.insert_batch(
            conn, batch_id=batch_id, tenant_id=tenant, kind=BatchKind.FEC, files=[], auto_load=False, created_by=None
        )
        moved = await batches.transition(conn, batch_id, BatchStatus.VALIDATING, stage="validating", progress=0.0)
    assert moved is not None
    return moved


@pytest.mark.infra
async def test_reporter_records_the_stage_and_announces_it_with_the_row_sequence(
    pool: asyncpg.Pool, memory_bus: MemoryBus
) -> None:
    batch = await validating_batch(pool)
    reporter = BatchReporter(
        pool=pool, bus=memory_bus, service="period-validator", tenant_id=batch.tenant_id, batch_id=batch.id
    )
    async with memory_bus.status_stream() as stream:
        await reporter.stage("reading", 0.4, status=BatchStatus.VALIDATING, message="5 files")
        event = await asyncio.wait_for(anext(stream), 1)
    async with pool.acquire() as conn:
        row = await batches.get_batch(conn, batch.id)
    assert row is not None
    assert (row.stage, row.progress, row.status_seq) == ("reading", 0.4, batch.status_seq + 1)
    assert event == StatusEvent(
        tenant_id=batch.tenant_id,
        batch_id=batch.id,
        service="period-validator",
        stage="reading",
        status="VALIDATING",
        progress=0.4,
        message="5 files",
        at=event.at,
        seq=batch.status_seq + 1,
    )


@pytest.mark.infra
async def test_reporter_says_nothing_once_the_batch_moved_on(pool: asyncpg.Pool, memory_bus: MemoryBus) -> None:
    batch = await validating_batch(pool)
    reporter = BatchReporter(pool=pool, bus=memory_bus, service="s", tenant_id=batch.tenant_id, batch_id=batch.id)
    sentinel = StatusEvent(
        tenant_id=batch.tenant_id, batch_id=batch.id, service="s", stage="sentinel", status="VALIDATING", progress=0
    )
    async with memory_bus.status_stream() as stream:
        await reporter.stage("loading", 0.5, status=BatchStatus.PROCESSING)
        # The reporter publishes before it returns: an event of its own would be ahead of the sentinel.
        await memory_bus.publish_status(sentinel)
        assert await asyncio.wait_for(anext(stream), 5) == sentinel
    async with pool.acquire() as conn:
        assert await batches.get_batch(conn, batch.id) == batch


@pytest.mark.infra
async def test_a_status_event_that_cannot_be_published_does_not_stop_the_work(pool: asyncpg.Pool) -> None:
    batch = await validating_batch(pool)
    closed = MemoryBus(service="s")  # never connected: publishing raises DependencyUnavailable
    reporter = BatchReporter(pool=pool, bus=closed, service="s", tenant_id=batch.tenant_id, batch_id=batch.id)
    await reporter.stage("reading", 0.2, status=BatchStatus.VALIDATING)
    async with pool.acquire() as conn:
        row = await batches.get_batch(conn, batch.id)
    assert row is not None
    assert (row.stage, row.progress) == ("reading", 0.2)
