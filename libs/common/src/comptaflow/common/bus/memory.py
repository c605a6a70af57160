"""In-process implementation of the bus, used by `comptaflow up` when no AMQP URL is set.

Same semantics as the RabbitMQ one where they matter: topic routing into every worker queue of
the topology, at-least-once delivery with a delivery count, requeue bounded by the delivery limit,
a dead-letter list per queue, and status events fanned out to every open status stream. It keeps
nothing across restarts: messages survive in the PostgreSQL outbox until the relay hands them over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from comptaflow.common.bus.base import (
    Delivery,
    Handler,
    Outcome,
    WorkerQueue,
    dispatch,
    topic_matches,
)
from comptaflow.common.contracts import Message, StatusEvent, message_type
from comptaflow.common.errors import DependencyUnavailable


@dataclass(slots=True)
class _Envelope:
    routing_key: str
    body: bytes
    delivery_count: int = 0


class MemoryBus:
    def __init__(self, *, service: str = "up", topology: Sequence[WorkerQueue] = (), delivery_limit: int = 5) -> None:
        self._service = service
        self._delivery_limit = delivery_limit
        self._topology: dict[str, WorkerQueue] = {}
        self._queues: dict[str, asyncio.Queue[_Envelope]] = {}
        self.dead_letters: dict[str, list[bytes]] = {}
        for queue in topology:
            self._declare(queue)
        self._status_subscribers: set[asyncio.Queue[StatusEvent]] = set()
        self._connected = False

    def _declare(self, queue: WorkerQueue) -> None:
        self._topology.setdefault(queue.name, queue)
        self._queues.setdefault(queue.name, asyncio.Queue())
        self.dead_letters.setdefault(queue.name, [])

    async def connect(self) -> None:
        self._connected = True

    async def close(self) -> None:
        self._connected = False

    async def ping(self) -> bool:
        return self._connected

    def _require(self) -> None:
        if not self._connected:
            raise DependencyUnavailable("the in-process bus is closed")

    async def publish_raw(self, routing_key: str, body: bytes, *, message_id: str) -> None:
        self._require()
        for worker in self._topology.values():
            if any(topic_matches(p, routing_key) for p in worker.routing_keys):
                self._queues[worker.name].put_nowait(_Envelope(routing_key, body))

    async def publish(self, event: Message) -> None:
        await self.publish_raw(
            message_type(type(event)), event.model_dump_json().encode(), message_id=str(event.message_id)
        )

    async def publish_status(self, event: StatusEvent) -> None:
        self._require()
        for subscriber in self._status_subscribers:
            subscriber.put_nowait(event)

    async def consume(self, queue: WorkerQueue, handler: Handler, *, prefetch: int) -> _MemoryConsumer:
        self._require()
        self._declare(queue)
        consumer = _MemoryConsumer(self, queue, handler, prefetch)
        consumer.start()
        return consumer

    def queue_depth(self, name: str) -> int:
        return self._queues[name].qsize()

    @contextlib.asynccontextmanager
    async def status_stream(self) -> AsyncIterator[AsyncIterator[StatusEvent]]:
        self._require()
        inbox: asyncio.Queue[StatusEvent] = asyncio.Queue()
        self._status_subscribers.add(inbox)

        async def events() -> AsyncIterator[StatusEvent]:
            while True:
                yield await inbox.get()

        try:
            yield events()
        finally:
            self._status_subscribers.discard(inbox)

    async def _handle(self, queue: WorkerQueue, handler: Handler, envelope: _Envelope) -> None:
        delivery = Delivery(
            routing_key=envelope.routing_key,
            delivery_count=envelope.delivery_count,
            redelivered=envelope.delivery_count > 0,
        )
        try:
            outcome = await dispatch(
                service=self._service,
                queue=queue,
                handler=handler,
                body=envelope.body,
                delivery=delivery,
                delivery_limit=self._delivery_limit,
            )
        except asyncio.CancelledError:
            # Shut down mid-handler: requeue, counted as a delivery (as RabbitMQ does after a nack).
            envelope.delivery_count += 1
            self._queues[queue.name].put_nowait(envelope)
            raise
        if outcome is Outcome.REQUEUE:
            envelope.delivery_count += 1
            self._queues[queue.name].put_nowait(envelope)
        elif outcome is Outcome.DEAD_LETTER:
            self.dead_letters[queue.name].append(envelope.body)


class _MemoryConsumer:
    def __init__(self, bus: MemoryBus, queue: WorkerQueue, handler: Handler, prefetch: int) -> None:
        self._bus = bus
        self._queue = queue
        self._handler = handler
        self._prefetch = prefetch
        self._pullers: list[asyncio.Task[None]] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._pullers = [asyncio.create_task(self._pull()) for _ in range(self._prefetch)]

    async def _pull(self) -> None:
        source = self._bus._queues[self._queue.name]
        while True:
            envelope = await source.get()
            task = asyncio.create_task(self._bus._handle(self._queue, self._handler, envelope))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            await asyncio.shield(task)

    async def stop(self, *, grace: float = 30.0) -> None:
        for puller in self._pullers:
            puller.cancel()
        await asyncio.gather(*self._pullers, return_exceptions=True)
        pending = set(self._in_flight)
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
