"""The RabbitMQ bus survives a dropped connection: it reconnects, keeps consuming and publishing."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from urllib.parse import unquote, urlparse

import aio_pika
import pytest

from comptaflow.common.bus.amqp import AmqpBus
from comptaflow.common.bus.base import Delivery
from comptaflow.common.contracts import BatchKind, BatchUploaded, Message
from comptaflow.common.errors import DependencyUnavailable
from tests.conftest import unavailable
from tests.queues import PERIOD_VALIDATOR_QUEUE, TOPOLOGY

from .support import AMQP_DELIVERY_LIMIT, tenant_id

pytestmark = pytest.mark.infra


def _close_connections(vhost: str) -> None:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        unavailable("rabbitmqctl (needed to drop the broker connections)", FileNotFoundError("rabbitmqctl"))
        return
    subprocess.run(  # noqa: S603 — fixed arguments
        [tool, "close_all_connections", "-p", vhost, "simulated network failure"],
        check=True,
        capture_output=True,
        timeout=60,
    )


async def _publish_until_confirmed(bus: AmqpBus, event: BatchUploaded, *, within: float = 30) -> int:
    """Publish, retrying while the bus reconnects; return how many attempts failed first."""
    failures = 0
    async with asyncio.timeout(within):
        while True:
            try:
                await bus.publish(event)
                return failures
            except DependencyUnavailable:
                failures += 1
                await asyncio.sleep(0.2)


async def test_consumer_and_publisher_recover_after_the_broker_drops_the_connection(amqp_url: str) -> None:
    vhost = unquote(urlparse(amqp_url).path.lstrip("/"))
    if not vhost:
        unavailable("a dedicated RabbitMQ virtual host", RuntimeError("the session runs on the default vhost"))
    bus = AmqpBus(
        amqp_url, topology=TOPOLOGY, service=f"test-{uuid.uuid4().hex[:8]}", delivery_limit=AMQP_DELIVERY_LIMIT
    )
    await bus.connect()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await (await channel.declare_queue(PERIOD_VALIDATOR_QUEUE.queue_name, passive=True)).purge()
    received: asyncio.Queue[Message] = asyncio.Queue()

    async def handler(event: Message, _delivery: Delivery) -> None:
        await received.put(event)

    consumer = await bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=1)
    try:
        before = BatchUploaded(tenant_id=tenant_id(), batch_id=uuid.uuid4(), kind=BatchKind.EXCEL)
        await bus.publish(before)
        assert await asyncio.wait_for(received.get(), 10) == before

        await asyncio.to_thread(_close_connections, vhost)

        after = BatchUploaded(tenant_id=tenant_id(), batch_id=uuid.uuid4(), kind=BatchKind.EXCEL)
        await _publish_until_confirmed(bus, after)
        assert await asyncio.wait_for(received.get(), 30) == after
        assert await bus.ping()
    finally:
        await consumer.stop(grace=5)
        await bus.close()
