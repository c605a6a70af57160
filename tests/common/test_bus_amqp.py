"""The RabbitMQ bus against a real broker (one virtual host per test session, queues purged per test)."""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from comptaflow.common.bus.amqp import AmqpBus
from comptaflow.common.bus.base import DEAD_LETTER_EXCHANGE, PERIOD_VALIDATOR_QUEUE, AnyEvent, Delivery
from comptaflow.common.contracts import BatchKind, BatchUploaded, StatusEvent
from comptaflow.common.errors import DependencyUnavailable, NotFound, TransientError
from comptaflow.common.metrics import REGISTRY

from .support import AMQP_DELIVERY_LIMIT, eventually, tenant_id

pytestmark = pytest.mark.infra

QUEUE = PERIOD_VALIDATOR_QUEUE.queue_name  # comptaflow.period-validator
DEAD = PERIOD_VALIDATOR_QUEUE.dead_letter_queue_name  # comptaflow.period-validator.dead
QUEUE_ARGUMENTS = {
    "x-queue-type": "quorum",
    "x-delivery-limit": AMQP_DELIVERY_LIMIT,
    "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
    "x-dead-letter-routing-key": PERIOD_VALIDATOR_QUEUE.name,
}


def uploaded() -> BatchUploaded:
    return BatchUploaded(tenant_id=tenant_id(), batch_id=uuid.uuid4(), kind=BatchKind.EXCEL, auto_load=True)


def handled(service: str, outcome: str) -> float:
    labels = {"service": service, "queue": PERIOD_VALIDATOR_QUEUE.name, "outcome": outcome}
    return REGISTRY.get_sample_value("comptaflow_messages_handled_total", labels) or 0.0


async def ready_count(connection: AbstractConnection, name: str) -> int:
    """Messages ready in a queue (not counting those delivered and not yet acknowledged)."""
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        count = queue.declaration_result.message_count
        assert count is not None
        return count
    finally:
        await channel.close()


async def ready_count_is(connection: AbstractConnection, name: str, expected: int) -> bool:
    return await ready_count(connection, name) == expected


async def dead_letters(connection: AbstractConnection, *, expect: int, within: float = 10) -> list[bytes]:
    """Take `expect` messages off the dead-letter queue (waiting for them), then check nothing else is there."""
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(DEAD, passive=True)
        bodies: list[bytes] = []
        deadline = time.monotonic() + within
        while len(bodies) < expect and time.monotonic() < deadline:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
            else:
                bodies.append(message.body)
        assert await queue.get(no_ack=True, fail=False) is None
        return bodies
    finally:
        await channel.close()


class Recorder:
    def __init__(self, raises: BaseException | None = None) -> None:
        self.calls: list[tuple[AnyEvent, Delivery]] = []
        self._raises = raises

    async def __call__(self, event: AnyEvent, delivery: Delivery) -> None:
        self.calls.append((event, delivery))
        if self._raises is not None:
            raise self._raises


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


async def test_a_second_connect_with_the_same_topology_is_idempotent(amqp_url: str, amqp_bus: AmqpBus) -> None:
    other = AmqpBus(amqp_url, service="another", delivery_limit=AMQP_DELIVERY_LIMIT)
    await other.connect()
    try:
        assert await other.ping() is True
    finally:
        await other.close()
    assert await other.ping() is False


async def test_published_event_reaches_the_handler_and_is_acknowledged(
    amqp_bus: AmqpBus, amqp_connection: AbstractConnection, service: str
) -> None:
    event = uploaded()
    handler = Recorder()
    consumer = await amqp_bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=2)
    await amqp_bus.publish(event)
    await eventually(lambda: handled(service, "ack") == 1)
    await consumer.stop(grace=5)

    assert handler.calls == [(event, Delivery(routing_key="batch.uploaded", delivery_count=0, redelivered=False))]
    # Acknowledged: after the consumer's channel is gone nothing comes back to the queue.
    assert await ready_count(amqp_connection, QUEUE) == 0
    assert await dead_letters(amqp_connection, expect=0) == []


async def test_an_event_published_before_any_consumer_waits_in_the_queue(
    amqp_bus: AmqpBus, amqp_connection: AbstractConnection
) -> None:
    event = uploaded()
    await amqp_bus.publish(event)
    assert await ready_count(amqp_connection, QUEUE) == 1

    handler = Recorder()
    consumer = await amqp_bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=1)
    await eventually(lambda: len(handler.calls) == 1)
    await consumer.stop(grace=5)
    assert handler.calls[0][0] == event


async def test_transient_failure_is_redelivered_with_increasing_count_then_dead_lettered(
    amqp_bus: AmqpBus, amqp_connection: AbstractConnection, service: str
) -> None:
    event = uploaded()
    handler = Recorder(raises=TransientError("database busy"))
    consumer = await amqp_bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=1)
    await amqp_bus.publish(event)
    dead = await dead_letters(amqp_connection, expect=1)
    await consumer.stop(grace=5)

    assert [(d.delivery_count, d.redelivered) for _, d in handler.calls] == [(0, False), (1, True), (2, True)]
    assert all(e == event for e, _ in handler.calls)
    assert dead == [event.model_dump_json().encode()]
    assert await ready_count(amqp_connection, QUEUE) == 0
    assert (handled(service, "requeue"), handled(service, "dead_letter")) == (2, 1)


async def test_permanent_failure_goes_to_the_dead_letter_queue_after_one_call(
    amqp_bus: AmqpBus, amqp_connection: AbstractConnection, service: str
) -> None:
    event = uploaded()
    handler = Recorder(raises=NotFound("the batch files are gone"))
    consumer = await amqp_bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=1)
    await amqp_bus.publish(event)
    dead = await dead_letters(amqp_connection, expect=1)
    await asyncio.sleep(0.2)  # a wrong requeue would show up as a second call by now
    await consumer.stop(grace=5)

    assert len(handler.calls) == 1
    assert dead == [event.model_dump_json().encode()]
    assert await ready_count(amqp_connection, QUEUE) == 0
    assert handled(service, "dead_letter") == 1


async def test_malformed_json_goes_to_the_dead_letter_queue_without_calling_the_handler(
    amqp_bus: AmqpBus, amqp_connection: AbstractConnection
) -> None:
    body = b'{"type": "batch.uploaded", "tenant_id": '
    handler = Recorder()
    consumer = await amqp_bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=1)
    await amqp_bus.publish_raw("batch.uploaded", body, message_id=str(uuid.uuid4()))
    dead = await dead_letters(amqp_connection, expect=1)
    await consumer.stop(grace=5)

    assert dead == [body]
    assert handler.calls == []


async def test_stop_lets_a_slow_handler_finish_within_grace_and_acks_it(
    amqp_bus: AmqpBus, amqp_connection: AbstractConnection, service: str
) -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(_: AnyEvent, __: Delivery) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.set()

    consumer = await amqp_bus.consume(PERIOD_VALIDATOR_QUEUE, slow, prefetch=1)
    await amqp_bus.publish(uploaded())
    await asyncio.wait_for(started.wait(), 10)
    t0 = time.monotonic()
    await consumer.stop(grace=10)
    waited = time.monotonic() - t0

    assert finished.is_set()
    assert 0.3 < waited < 5
    assert handled(service, "ack") == 1
    assert await ready_count(amqp_connection, QUEUE) == 0


async def test_stop_cancels_a_handler_exceeding_grace_and_the_message_comes_back(
    amqp_bus: AmqpBus, amqp_connection: AbstractConnection
) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(_: AnyEvent, __: Delivery) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    event = uploaded()
    consumer = await amqp_bus.consume(PERIOD_VALIDATOR_QUEUE, stuck, prefetch=1)
    await amqp_bus.publish(event)
    await asyncio.wait_for(started.wait(), 10)
    t0 = time.monotonic()
    await consumer.stop(grace=0.3)
    assert time.monotonic() - t0 < 3
    assert cancelled.is_set()
    await eventually(lambda: ready_count_is(amqp_connection, QUEUE, 1), within=5)  # back in the queue

    after = Recorder()
    successor = await amqp_bus.consume(PERIOD_VALIDATOR_QUEUE, after, prefetch=1)
    await eventually(lambda: len(after.calls) == 1)
    await successor.stop(grace=5)
    assert after.calls == [(event, Delivery(routing_key="batch.uploaded", delivery_count=1, redelivered=True))]
    assert await dead_letters(amqp_connection, expect=0) == []


async def test_status_stream_receives_published_status_events_in_order(amqp_bus: AmqpBus) -> None:
    tenant, batch_id = tenant_id(), uuid.uuid4()
    events = [
        StatusEvent(
            tenant_id=tenant,
            batch_id=batch_id,
            service="period-validator",
            stage=stage,
            status="VALIDATING",
            progress=progress,
            seq=seq,
        )
        for seq, (stage, progress) in enumerate([("reading", 0.1), ("checking", 0.5), ("done", 1.0)], start=1)
    ]
    async with amqp_bus.status_stream() as one, amqp_bus.status_stream() as two:
        for event in events:
            await amqp_bus.publish_status(event)
        got_one = [await asyncio.wait_for(anext(one), 5) for _ in events]
        got_two = [await asyncio.wait_for(anext(two), 5) for _ in events]
    assert got_one == events
    assert got_two == events


async def test_publishing_before_connect_is_a_dependency_error(amqp_url: str) -> None:
    bus = AmqpBus(amqp_url, service="never-connected", delivery_limit=AMQP_DELIVERY_LIMIT)
    assert await bus.ping() is False
    with pytest.raises(DependencyUnavailable, match="not connected"):
        await bus.publish(uploaded())


async def test_connect_to_a_closed_port_is_a_dependency_error() -> None:
    bus = AmqpBus("amqp://guest:guest@127.0.0.1:1/", service="nowhere", delivery_limit=AMQP_DELIVERY_LIMIT)
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
