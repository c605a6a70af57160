"""What a bus test observes from outside the `Bus` interface, behind one interface for both implementations.

`MemoryProbe` reads the in-process bus's own queues and dead-letter lists; `BrokerProbe` asks RabbitMQ
(a passive declare for a queue's depth, `basic.get` on the dead-letter queue, `rabbitmqctl` for the
status exchange's bindings), through a connection of its own, never through the bus under test.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from typing import Protocol
from urllib.parse import unquote, urlparse

from aio_pika.abc import AbstractConnection

from comptaflow.common.bus import STATUS_EXCHANGE, Bus, WorkerQueue
from comptaflow.common.bus.amqp import AmqpBus
from comptaflow.common.bus.memory import MemoryBus
from tests.conftest import unavailable
from tests.queues import TOPOLOGY

from .support import AMQP_DELIVERY_LIMIT, eventually


class BusProbe(Protocol):
    refusal: str
    """The message of the `DependencyUnavailable` a bus raises when it is not connected."""

    def unconnected(self) -> Bus:
        """Another bus of the same kind, on the same topology, not connected yet."""
        ...

    async def ready(self, queue: WorkerQueue) -> int:
        """Messages waiting in `queue`: neither delivered to a consumer nor dead-lettered."""
        ...

    async def dead_letters(self, queue: WorkerQueue) -> list[bytes]:
        """The bodies dead-lettered from `queue` since the test started, oldest first."""
        ...

    async def status_listeners(self) -> int:
        """How many status streams are open on the bus's status exchange."""
        ...


async def dead_lettered(probe: BusProbe, queue: WorkerQueue, count: int) -> list[bytes]:
    """Wait until `count` messages of `queue` were dead-lettered; return every body dead-lettered so far."""

    async def arrived() -> bool:
        return len(await probe.dead_letters(queue)) >= count

    await eventually(arrived)
    return await probe.dead_letters(queue)


class MemoryProbe:
    refusal = "the in-process bus is closed"

    def __init__(self, bus: MemoryBus, *, service: str) -> None:
        self._bus = bus
        self._service = service

    def unconnected(self) -> Bus:
        return MemoryBus(service=self._service, topology=TOPOLOGY, delivery_limit=AMQP_DELIVERY_LIMIT)

    async def ready(self, queue: WorkerQueue) -> int:
        return self._bus.queue_depth(queue.name)

    async def dead_letters(self, queue: WorkerQueue) -> list[bytes]:
        return list(self._bus.dead_letters[queue.name])

    async def status_listeners(self) -> int:
        return len(self._bus._status_subscribers)  # the bus's own fan-out set: no public view of it


class BrokerProbe:
    refusal = "the bus is not connected (call connect() first)"

    def __init__(self, connection: AbstractConnection, *, url: str, service: str) -> None:
        self._connection = connection
        self._url = url
        self._service = service
        # `basic.get` takes dead letters off their queue: those taken so far, per queue.
        self._taken: dict[str, list[bytes]] = {}

    def unconnected(self) -> Bus:
        return AmqpBus(self._url, topology=TOPOLOGY, service=self._service, delivery_limit=AMQP_DELIVERY_LIMIT)

    async def ready(self, queue: WorkerQueue) -> int:
        channel = await self._connection.channel()
        try:
            declared = await channel.declare_queue(queue.queue_name, passive=True)
            count = declared.declaration_result.message_count
            assert count is not None
            return count
        finally:
            await channel.close()

    async def dead_letters(self, queue: WorkerQueue) -> list[bytes]:
        taken = self._taken.setdefault(queue.name, [])
        channel = await self._connection.channel()
        try:
            dead = await channel.declare_queue(queue.dead_letter_queue_name, passive=True)
            while (message := await dead.get(no_ack=True, fail=False)) is not None:
                taken.append(message.body)
        finally:
            await channel.close()
        return list(taken)

    async def status_listeners(self) -> int:
        vhost = unquote(urlparse(self._url).path.lstrip("/")) or "/"
        listed = await asyncio.to_thread(_rabbitmqctl, "list_bindings", "-p", vhost, "source_name", "destination_kind")
        rows = [line.split("\t") for line in listed.splitlines()]
        return sum(1 for row in rows if row == [STATUS_EXCHANGE, "queue"])


def _rabbitmqctl(*args: str) -> str:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        unavailable("rabbitmqctl (needed to list the broker's bindings)", FileNotFoundError("rabbitmqctl"))
        raise AssertionError("unreachable")  # unavailable() skips or fails the test
    done = subprocess.run(  # noqa: S603 — fixed arguments
        [tool, "-q", *args, "--no-table-headers"], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout
