"""The gateway on a real RabbitMQ: the outbox relay feeds the validator's queue, status events reach WebSockets."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from pydantic import SecretStr
from websockets.asyncio.client import connect

from comptaflow.common.bus.amqp import AmqpBus
from comptaflow.common.contracts import BatchKind, BatchUploaded, StatusEvent, parse_message
from comptaflow.common.settings import Settings
from tests.common.support import eventually
from tests.gateway.support import Gateway, excel_files, running_gateway
from tests.queues import PERIOD_VALIDATOR_QUEUE

pytestmark = pytest.mark.infra


@pytest.fixture
async def amqp_gateway(settings: Settings, amqp_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(settings.model_copy(update={"amqp_url": SecretStr(amqp_url)})) as running:
        yield running


async def take_message_of(amqp_url: str, batch_id: uuid.UUID, *, within: float = 15.0) -> AbstractIncomingMessage:
    """Consume the validator queue until the message of `batch_id`; others go back to the queue unharmed."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(PERIOD_VALIDATOR_QUEUE.queue_name, ensure=True)
        others: list[AbstractIncomingMessage] = []
        try:
            async with asyncio.timeout(within), queue.iterator() as messages:
                async for message in messages:
                    if parse_message(message.body, (BatchUploaded,)).batch_id == batch_id:
                        await message.ack()
                        return message
                    others.append(message)
        finally:
            for other in others:
                await other.nack(requeue=True)
            if urlparse(amqp_url).path.strip("/"):  # a virtual host of this session only: leave it clean
                await queue.purge()
    raise AssertionError("unreachable")


async def test_the_uploaded_event_reaches_the_validator_queue(amqp_gateway: Gateway, amqp_url: str) -> None:
    assert isinstance(amqp_gateway.infra.bus, AmqpBus)
    tenant = await amqp_gateway.create_tenant()
    response = await amqp_gateway.upload(tenant, excel_files(), {"auto_load": "true"})
    assert response.status_code == 202, response.text
    batch_id = uuid.UUID(response.json()["batch_id"])

    message = await take_message_of(amqp_url, batch_id)
    event = parse_message(message.body, (BatchUploaded,))
    assert isinstance(event, BatchUploaded)
    assert (event.tenant_id, event.kind, event.auto_load) == (tenant, BatchKind.EXCEL, True)
    assert message.message_id == str(event.message_id)
    assert message.routing_key == "batch.uploaded"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT

    async def relayed() -> bool:  # the relay deletes the row once the broker confirmed it
        async with amqp_gateway.infra.db.acquire() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM outbox WHERE message_id = $1", event.message_id) == 0)

    await eventually(relayed)


async def test_status_events_published_on_rabbitmq_reach_the_websocket(amqp_gateway: Gateway) -> None:
    tenant, other = await amqp_gateway.create_tenant(), await amqp_gateway.create_tenant()
    batch_id = uuid.uuid4()
    url = f"{amqp_gateway.ws_url}?token={amqp_gateway.token(tenant)}"
    async with connect(url, open_timeout=10) as ws:
        await ws.send(json.dumps({"subscribe": {"tenant_id": tenant}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "subscribed"

        for owner, seq in ((other, 1), (tenant, 2), (tenant, 3)):
            await amqp_gateway.infra.bus.publish_status(
                StatusEvent(
                    tenant_id=owner,
                    batch_id=batch_id if owner == tenant else uuid.uuid4(),
                    service="period-validator",
                    stage="parsing",
                    status="VALIDATING",
                    progress=0.25,
                    seq=seq,
                )
            )
        received = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
    assert [(m["tenant_id"], m["batch_id"], m["seq"]) for m in received] == [
        (tenant, str(batch_id), 2),
        (tenant, str(batch_id), 3),
    ]
