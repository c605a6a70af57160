"""RabbitMQ implementation of the bus (aio-pika).

Topology: topic exchanges `comptaflow.events` and `comptaflow.status`; per worker kind a durable
quorum queue `comptaflow.<kind>` with an explicit `x-delivery-limit` whose rejected or exhausted
messages go through the `comptaflow.dlx` exchange to `comptaflow.<kind>.dead`. Publishing waits for
the broker's confirm. The connection is robust: channels, queues and consumers come back after a
broker restart. aio-pika and aiormq exceptions become `DependencyUnavailable` here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from comptaflow.common.bus.base import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    STATUS_EXCHANGE,
    Delivery,
    Handler,
    Outcome,
    WorkerQueue,
    dispatch,
)
from comptaflow.common.contracts import Message, StatusEvent, message_type, parse_status
from comptaflow.common.errors import ConfigurationError, DependencyUnavailable, InvalidMessage
from comptaflow.common.metrics import MESSAGES_PUBLISHED

log = structlog.get_logger("comptaflow.bus.amqp")

# What a broker outage looks like from here: protocol errors, closed connections, and a robust channel
# used while it is being restored (ChannelInvalidStateError, a RuntimeError).
_AMQP_ERRORS = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)
RECONNECT_INTERVAL = 1.0  # seconds between reconnection attempts of the robust connection


class AmqpBus:
    def __init__(
        self,
        url: str,
        *,
        service: str,
        topology: Sequence[WorkerQueue],
        delivery_limit: int = 5,
        publish_timeout: float = 15.0,
    ) -> None:
        self._url = url
        self._topology = tuple(topology)
        self._service = service
        self._delivery_limit = delivery_limit
        self._publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._events: AbstractExchange | None = None
        self._status: AbstractExchange | None = None
        self._publish_lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------------
    async def connect(self) -> None:
        try:
            self._connection = await aio_pika.connect_robust(
                self._url,
                timeout=15,
                reconnect_interval=RECONNECT_INTERVAL,
                client_properties={
                    "connection_name": f"comptaflow-{self._service}",
                },
            )
            self._channel = await self._connection.channel(publisher_confirms=True)
            self._events, self._status = await declare_topology(self._channel, self._topology, self._delivery_limit)
        except _AMQP_ERRORS as exc:
            raise DependencyUnavailable(f"RabbitMQ unreachable: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def ping(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    def _require(self) -> tuple[AbstractRobustConnection, AbstractExchange, AbstractExchange]:
        if self._connection is None or self._events is None or self._status is None:
            raise DependencyUnavailable("the bus is not connected (call connect() first)")
        return self._connection, self._events, self._status

    # -- publishing ------------------------------------------------------------------------------
    async def publish_raw(self, routing_key: str, body: bytes, *, message_id: str) -> None:
        _, events, _ = self._require()
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            type=routing_key,
        )
        try:
            async with self._publish_lock:
                await events.publish(message, routing_key=routing_key, timeout=self._publish_timeout)
        except _AMQP_ERRORS as exc:
            raise DependencyUnavailable(f"publish to {EVENTS_EXCHANGE} not confirmed: {exc!r}") from exc
        MESSAGES_PUBLISHED.labels(EVENTS_EXCHANGE).inc()

    async def publish(self, event: Message) -> None:
        await self.publish_raw(
            message_type(type(event)), event.model_dump_json().encode(), message_id=str(event.message_id)
        )

    async def publish_status(self, event: StatusEvent) -> None:
        _, _, status = self._require()
        message = aio_pika.Message(event.model_dump_json().encode(), content_type="application/json")
        try:
            await status.publish(message, routing_key=event.routing_key, timeout=self._publish_timeout)
        except _AMQP_ERRORS as exc:
            raise DependencyUnavailable(f"publish to {STATUS_EXCHANGE} not confirmed: {exc!r}") from exc
        MESSAGES_PUBLISHED.labels(STATUS_EXCHANGE).inc()

    # -- consuming -------------------------------------------------------------------------------
    async def consume(self, queue: WorkerQueue, handler: Handler, *, prefetch: int) -> _AmqpConsumer:
        connection, _, _ = self._require()
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        if queue not in self._topology:
            await declare_topology(channel, (queue,), self._delivery_limit)
        amqp_queue = await channel.get_queue(queue.queue_name, ensure=True)
        consumer = _AmqpConsumer(
            service=self._service,
            queue=queue,
            handler=handler,
            channel=channel,
            amqp_queue=amqp_queue,
            delivery_limit=self._delivery_limit,
        )
        await consumer.start()
        return consumer

    @contextlib.asynccontextmanager
    async def status_stream(self) -> AsyncIterator[AsyncIterator[StatusEvent]]:
        connection, _, _ = self._require()
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(STATUS_EXCHANGE, routing_key="#")

        async def events() -> AsyncIterator[StatusEvent]:
            async with queue.iterator() as messages:
                async for message in messages:
                    await message.ack()
                    try:
                        yield parse_status(message.body)
                    except InvalidMessage:
                        log.warning("status_event_dropped", reason="malformed")

        try:
            yield events()
        finally:
            with contextlib.suppress(*_AMQP_ERRORS):
                await channel.close()


async def declare_topology(
    channel: AbstractChannel, topology: Sequence[WorkerQueue], delivery_limit: int
) -> tuple[AbstractExchange, AbstractExchange]:
    """Declare exchanges, worker queues and dead-letter queues (idempotent)."""
    events = await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    status = await channel.declare_exchange(STATUS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    dlx = await channel.declare_exchange(DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    for worker in topology:
        dead = await channel.declare_queue(
            worker.dead_letter_queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(dlx, routing_key=worker.name)
        arguments: dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": worker.name,
        }
        try:
            queue = await channel.declare_queue(worker.queue_name, durable=True, arguments=arguments)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            raise ConfigurationError(
                f"queue {worker.queue_name} exists with other arguments than {arguments}; a quorum queue's "
                "arguments cannot change: set COMPTAFLOW_DELIVERY_LIMIT to the existing value, or drain and "
                "delete the queue"
            ) from exc
        for key in worker.routing_keys:
            await queue.bind(events, routing_key=key)
    return events, status


class _AmqpConsumer:
    def __init__(
        self,
        *,
        service: str,
        queue: WorkerQueue,
        handler: Handler,
        channel: AbstractChannel,
        amqp_queue: AbstractQueue,
        delivery_limit: int,
    ) -> None:
        self._service = service
        self._queue = queue
        self._handler = handler
        self._channel = channel
        self._amqp_queue = amqp_queue
        self._delivery_limit = delivery_limit
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._tag = await self._amqp_queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            count = message.headers.get("x-delivery-count", 0) if message.headers else 0
            delivery = Delivery(
                routing_key=message.routing_key or "",
                delivery_count=int(count) if isinstance(count, int) else 0,
                redelivered=bool(message.redelivered),
            )
            outcome = await dispatch(
                service=self._service,
                queue=self._queue,
                handler=self._handler,
                body=message.body,
                delivery=delivery,
                delivery_limit=self._delivery_limit,
            )
            if outcome is Outcome.ACK:
                await message.ack()
            elif outcome is Outcome.REQUEUE:
                await message.nack(requeue=True)
            else:
                await message.reject(requeue=False)
        except asyncio.CancelledError:
            # Shut down before the handler finished: hand the message back to the broker.
            with contextlib.suppress(*_AMQP_ERRORS):
                await message.nack(requeue=True)
            raise
        finally:
            self._in_flight.discard(task)

    async def stop(self, *, grace: float = 30.0) -> None:
        if self._tag is not None:
            with contextlib.suppress(*_AMQP_ERRORS):
                await self._amqp_queue.cancel(self._tag)
            self._tag = None
        pending = set(self._in_flight)
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
        with contextlib.suppress(*_AMQP_ERRORS):
            await self._channel.close()
