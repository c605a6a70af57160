"""What only the RabbitMQ bus has: the queues it declares, their arguments, the wire format, a broker that is
not there. The behaviours both buses share are in test_bus.py; reconnection is in test_bus_reconnect.py."""

from __future__ import annotations

import uuid
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from comptaflow.common.bus.amqp import AmqpBus
from comptaflow.common.bus.base import DEAD_LETTER_EXCHANGE
from comptaflow.common.contracts import BatchKind, BatchUploaded
from comptaflow.common.errors import ConfigurationError, DependencyUnavailable
from tests.queues import PERIOD_VALIDATOR_QUEUE, TOPOLOGY

from .support import AMQP_DELIVERY_LIMIT, tenant_id

pytestmark = pytest.mark.infra

QUEUE = PERIOD_VALIDATOR_QUEUE.queue_name  # comptaflow.period-validator
DEAD = PERIOD_VALIDATOR_QUEUE.dead_letter_queue_name  # comptaflow.period-validator.dead
QUEUE_ARGUMENTS: dict[str, Any] = {
    "x-queue-type": "quorum",
    "x-delivery-limit": AMQP_DELIVERY_LIMIT,
    "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
    "x-dead-letter-routing-key": PERIOD_VALIDATOR_QUEUE.name,
}


def uploaded() -> BatchUploaded:
    return BatchUploaded(tenant_id=tenant_id(), batch_id=uuid.uuid4(), kind=BatchKind.EXCEL, auto_load=True)


async def test_connect_declares_quorum_worker_queue_with_delivery_limit_and_dead_letter_queue(
    amqp_bus: AmqpBus, amqp_connection: AbstractConnection
) -> None:
    assert await amqp_bus.ping() is True
    channel = await amqp_connection.channel()
    await channel.declare_queue(QUEUE, passive=True)
    await channel.declare_queue(DEAD, passive=True)
    await channel.declare_exchange("comptaflow.events", passive=True)
    await channel.declare_exchange("comptaflow.status", passive=True)
    # Re-declaring with the very same arguments is accepted: the queue is a quorum queue with this limit.
    await channel.declare_queue(QUEUE, durable=True, arguments=QUEUE_ARGUMENTS)
    await channel.declare_queue(DEAD, durable=True, arguments={"x-queue-type": "quorum"})
    await channel.close()

    for different in ({"x-delivery-limit": AMQP_DELIVERY_LIMIT + 1}, {"x-queue-type": "classic"}):
        channel = await amqp_connection.channel()
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="PRECONDITION_FAILED"):
            await channel.declare_queue(QUEUE, durable=True, arguments={**QUEUE_ARGUMENTS, **different})
        assert channel.is_closed


async def test_connecting_with_another_delivery_limit_than_the_queues_have_is_a_configuration_error(
    amqp_url: str, amqp_bus: AmqpBus
) -> None:
    other = AmqpBus(amqp_url, topology=TOPOLOGY, service="other-limit", delivery_limit=AMQP_DELIVERY_LIMIT + 2)
    try:
        with pytest.raises(ConfigurationError, match="set COMPTAFLOW_DELIVERY_LIMIT to the existing value") as caught:
            await other.connect()
    finally:
        await other.close()
    assert str(caught.value).startswith(f"queue {QUEUE} exists with other arguments than ")
    assert isinstance(caught.value.__cause__, aiormq.exceptions.ChannelPreconditionFailed)
    assert await amqp_bus.ping() is True  # the queues are untouched: the bus already connected keeps working


async def test_a_second_connect_with_the_same_topology_is_idempotent(amqp_url: str, amqp_bus: AmqpBus) -> None:
    other = AmqpBus(amqp_url, topology=TOPOLOGY, service="another", delivery_limit=AMQP_DELIVERY_LIMIT)
    await other.connect()
    try:
        assert await other.ping() is True
    finally:
        await other.close()
    assert await other.ping() is False


async def test_connect_to_a_closed_port_is_a_dependency_error() -> None:
    bus = AmqpBus(
        "amqp://guest:guest@127.0.0.1:1/", topology=TOPOLOGY, service="nowhere", delivery_limit=AMQP_DELIVERY_LIMIT
    )
    with pytest.raises(DependencyUnavailable, match="RabbitMQ unreachable"):
        await bus.connect()
    assert await bus.ping() is False


async def test_raw_messages_from_other_publishers_are_visible_with_aio_pika(
    amqp_bus: AmqpBus, amqp_connection: AbstractConnection
) -> None:
    """What the bus puts on the wire: persistent JSON with the message id, routed by the event type."""
    event = uploaded()
    await amqp_bus.publish(event)
    channel = await amqp_connection.channel()
    queue = await channel.declare_queue(QUEUE, passive=True)
    message: AbstractIncomingMessage | None = await queue.get(no_ack=True, fail=False, timeout=5)
    await channel.close()
    assert message is not None
    assert (message.routing_key, message.message_id, message.content_type, message.delivery_mode) == (
        "batch.uploaded",
        str(event.message_id),
        "application/json",
        aio_pika.DeliveryMode.PERSISTENT,
    )
    assert BatchUploaded.model_validate_json(message.body) == event
