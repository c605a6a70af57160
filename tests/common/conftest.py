"""Fixtures of the common-library tests, on top of the session fixtures of tests/conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest

from comptaflow.cli.embedded import S3Endpoint
from comptaflow.common import db
from comptaflow.common.bus.amqp import AmqpBus
from comptaflow.common.storage import Storage
from tests.queues import TOPOLOGY

from .support import AMQP_DELIVERY_LIMIT, FreshDatabase


@pytest.fixture
def service() -> str:
    """A service name unique to the test, so its message metrics start from zero."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def amqp_connection(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    """A plain aio-pika connection to look at the broker from outside the bus."""
    connection = await aio_pika.connect(amqp_url)
    yield connection
    await connection.close()


@pytest.fixture
async def amqp_bus(
    amqp_url: str, service: str, amqp_connection: aio_pika.abc.AbstractConnection
) -> AsyncIterator[AmqpBus]:
    """A connected AmqpBus on the session's virtual host, every worker and dead-letter queue purged."""
    bus = AmqpBus(amqp_url, topology=TOPOLOGY, service=service, delivery_limit=AMQP_DELIVERY_LIMIT, publish_timeout=10)
    await bus.connect()
    channel = await amqp_connection.channel()
    for name in [name for worker in TOPOLOGY for name in (worker.queue_name, worker.dead_letter_queue_name)]:
        queue = await channel.declare_queue(name, passive=True)
        await queue.purge()
    await channel.close()
    yield bus
    await bus.close()


@pytest.fixture
async def fresh_database(pg_dsn: str) -> AsyncIterator[FreshDatabase]:
    """Creates empty databases (not migrated) on the test server; all are dropped after the test."""
    base, _, _ = pg_dsn.rpartition("/")
    created: list[str] = []

    async def create() -> str:
        name = f"cf_test_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(pg_dsn, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        created.append(name)
        return f"{base}/{name}"

    yield create
    conn = await asyncpg.connect(pg_dsn, timeout=5)
    try:
        for name in created:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def private_pool(fresh_database: FreshDatabase) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a migrated database of its own, for tests that must see every row of a table (outbox)."""
    the_pool = await db.create_pool(await fresh_database(), max_size=6)
    await db.migrate(the_pool)
    yield the_pool
    await the_pool.close()


@pytest.fixture
async def storage(s3: S3Endpoint) -> AsyncIterator[Storage]:
    the_storage = Storage(
        endpoint=s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, bucket="comptaflow-common-test"
    )
    await the_storage.open()
    await the_storage.ensure_bucket()
    yield the_storage
    await the_storage.close()


@pytest.fixture
def prefix() -> str:
    """An object-key prefix unique to the test."""
    return f"test-{uuid.uuid4().hex}/"
