"""The transactional outbox and its relay, on a database of their own (the relay sees every row)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aio_pika.abc import AbstractConnection

from comptaflow.common import batches
from comptaflow.common.bus.amqp import AmqpBus
from comptaflow.common.bus.base import Delivery, Handler, WorkerQueue
from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.contracts import (
    BatchKind,
    BatchStatus,
    BatchUploaded,
    LoadRequested,
    Message,
    StatusEvent,
)
from comptaflow.common.errors import DependencyUnavailable
from comptaflow.common.metrics import REGISTRY
from comptaflow.common.outbox import OutboxRelay, enqueue, reannounce_unfinished
from comptaflow.common.tenants import create_tenant
from tests.queues import PERIOD_VALIDATOR_QUEUE, TOPOLOGY, Unrouted

from .support import eventually, tenant_id

pytestmark = pytest.mark.infra


class RecordingBus:
    """Our Bus interface, recording what is published; the attempts listed in `fail_attempts` (1-based)
    fail as an unreachable broker does, and each publish may take `delay` seconds (a slow confirm)."""

    def __init__(self, *, fail_attempts: frozenset[int] = frozenset(), delay: float = 0.0) -> None:
        self.published: list[tuple[str, bytes, str]] = []
        self.attempts = 0
        self._fail_attempts = fail_attempts
        self._delay = delay
        self._memory = MemoryBus(service="recording", topology=TOPOLOGY)

    async def connect(self) -> None:
        await self._memory.connect()

    async def close(self) -> None:
        await self._memory.close()

    async def ping(self) -> bool:
        return True

    async def publish_raw(self, routing_key: str, body: bytes, *, message_id: str) -> None:
        self.attempts += 1
        if self.attempts in self._fail_attempts:
            raise DependencyUnavailable("publish not confirmed: broker unreachable")
        if self._delay:
            await asyncio.sleep(self._delay)
        self.published.append((routing_key, body, message_id))

    async def publish(self, event: Message) -> None:
        await self.publish_raw(event.type, event.model_dump_json().encode(), message_id=str(event.message_id))

    async def publish_status(self, event: StatusEvent) -> None:
        await self._memory.publish_status(event)

    async def consume(self, queue: WorkerQueue, handler: Handler, *, prefetch: int) -> object:
        return await self._memory.consume(queue, handler, prefetch=prefetch)

    def status_stream(self) -> contextlib.AbstractAsyncContextManager[AsyncIterator[StatusEvent]]:
        return self._memory.status_stream()

    @property
    def message_ids(self) -> list[uuid.UUID]:
        return [uuid.UUID(message_id) for _, _, message_id in self.published]


def uploaded() -> BatchUploaded:
    return BatchUploaded(tenant_id=tenant_id(), batch_id=uuid.uuid4(), kind=BatchKind.FEC)


async def commit(pool: asyncpg.Pool, *events: Message) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for event in events:
            await enqueue(conn, event)


async def outbox_rows(pool: asyncpg.Pool) -> list[uuid.UUID]:
    async with pool.acquire() as conn:
        return [r["message_id"] for r in await conn.fetch("SELECT message_id FROM outbox ORDER BY id")]


async def outbox_rows_are_empty(pool: asyncpg.Pool) -> bool:
    return await outbox_rows(pool) == []


def pending_gauge() -> float | None:
    return REGISTRY.get_sample_value("comptaflow_outbox_pending")


async def test_an_event_enqueued_in_a_rolled_back_transaction_is_never_relayed(private_pool: asyncpg.Pool) -> None:
    bus = RecordingBus()
    async with private_pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await enqueue(conn, uploaded())
        await transaction.rollback()
    assert await OutboxRelay(private_pool, bus).relay_once() == 0
    assert bus.published == []
    assert await outbox_rows(private_pool) == []


async def test_committed_events_are_relayed_in_order_with_their_routing_key_body_and_id(
    private_pool: asyncpg.Pool,
) -> None:
    first = uploaded()
    second = Unrouted(tenant_id=first.tenant_id)
    third = LoadRequested(tenant_id=first.tenant_id, batch_id=first.batch_id)
    await commit(private_pool, first, second)
    await commit(private_pool, third)
    bus = RecordingBus()

    assert await OutboxRelay(private_pool, bus).relay_once() == 3
    assert bus.published == [
        (event.type, event.model_dump_json().encode(), str(event.message_id)) for event in (first, second, third)
    ]
    assert await outbox_rows(private_pool) == []
    assert pending_gauge() == 0
    assert await OutboxRelay(private_pool, bus).relay_once() == 0  # deleted: nothing relayed twice
    assert len(bus.published) == 3


async def test_relayed_events_reach_the_worker_queue_of_a_memory_bus(private_pool: asyncpg.Pool) -> None:
    events = [uploaded() for _ in range(3)]
    await commit(private_pool, *events)
    bus = MemoryBus(service="relay-test", topology=TOPOLOGY)
    await bus.connect()
    received: list[Message] = []

    async def handler(event: Message, _: Delivery) -> None:
        received.append(event)

    assert await OutboxRelay(private_pool, bus).relay_once() == 3
    consumer = await bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=1)
    await eventually(lambda: len(received) == 3)
    await consumer.stop(grace=1)
    await bus.close()
    assert received == events


async def test_the_pending_gauge_counts_the_rows_left_after_a_pass(private_pool: asyncpg.Pool) -> None:
    await commit(private_pool, *[uploaded() for _ in range(5)])
    relay = OutboxRelay(private_pool, RecordingBus(), batch_size=2)
    assert await relay.relay_once() == 2
    assert pending_gauge() == 3
    assert await relay.relay_once() == 2
    assert pending_gauge() == 1
    assert await relay.relay_once() == 1
    assert pending_gauge() == 0


async def test_rows_stay_when_the_broker_fails_and_a_later_pass_publishes_them(private_pool: asyncpg.Pool) -> None:
    first, second = uploaded(), uploaded()
    await commit(private_pool, first, second)
    bus = RecordingBus(fail_attempts=frozenset({2}))  # the first row is confirmed, the second is not
    relay = OutboxRelay(private_pool, bus)

    with pytest.raises(DependencyUnavailable, match="broker unreachable"):
        await relay.relay_once()
    assert await outbox_rows(private_pool) == [first.message_id, second.message_id]

    assert await relay.relay_once() == 2
    assert await outbox_rows(private_pool) == []
    # At least once: the row published before the failure is published again, nothing is lost.
    assert bus.message_ids == [first.message_id, first.message_id, second.message_id]


async def test_the_background_relay_keeps_retrying_until_the_broker_is_back(private_pool: asyncpg.Pool) -> None:
    events = [uploaded(), uploaded()]
    await commit(private_pool, *events)
    bus = RecordingBus(fail_attempts=frozenset({1, 2, 3}))
    relay = OutboxRelay(private_pool, bus, poll_interval=0.05)
    await relay.start()
    try:
        await eventually(lambda: outbox_rows_are_empty(private_pool), within=5)
    finally:
        await relay.stop()
    assert bus.message_ids == [e.message_id for e in events]
    assert bus.attempts == 5


async def test_two_relays_side_by_side_never_publish_the_same_row(private_pool: asyncpg.Pool) -> None:
    events = [uploaded() for _ in range(20)]
    await commit(private_pool, *events)
    bus_a, bus_b = RecordingBus(delay=0.03), RecordingBus(delay=0.03)
    relay_a = OutboxRelay(private_pool, bus_a, batch_size=5)
    relay_b = OutboxRelay(private_pool, bus_b, batch_size=5)

    passes: list[list[int]] = []
    while True:
        counts = list(await asyncio.gather(relay_a.relay_once(), relay_b.relay_once()))
        passes.append(counts)
        if counts == [0, 0]:
            break
        assert not set(bus_a.message_ids) & set(bus_b.message_ids)

    # Each pass, both relays took a batch of their own (the other's rows were locked, so skipped).
    assert passes == [[5, 5], [5, 5], [0, 0]]
    published = bus_a.message_ids + bus_b.message_ids
    assert collections.Counter(published) == collections.Counter(e.message_id for e in events)
    assert await outbox_rows(private_pool) == []


async def test_a_started_relay_is_woken_by_the_commit_of_a_new_event(private_pool: asyncpg.Pool) -> None:
    bus = RecordingBus()
    relay = OutboxRelay(private_pool, bus, poll_interval=60)  # only a NOTIFY can wake it in time
    await relay.start()
    try:
        await asyncio.sleep(0.2)  # the first pass found nothing; the relay now sleeps
        event = uploaded()
        started = time.monotonic()
        await commit(private_pool, event)
        await eventually(lambda: len(bus.published) == 1, within=2)
        assert time.monotonic() - started < 2
        assert bus.message_ids == [event.message_id]
    finally:
        await relay.stop()

    later = uploaded()
    await commit(private_pool, later)
    assert await outbox_rows(private_pool) == [later.message_id]
    # Stopped, it no longer relays: the row waits for the next relay, which takes it (a relay still at work
    # would have it locked or gone). Once it is relayed and deleted, no relay can publish it any more.
    successor = RecordingBus()
    assert await OutboxRelay(private_pool, successor).relay_once() == 1
    assert successor.message_ids == [later.message_id]
    assert bus.message_ids == [event.message_id]
    assert await outbox_rows(private_pool) == []


async def test_an_event_committed_during_a_pass_is_relayed_right_after_it(private_pool: asyncpg.Pool) -> None:
    bus = RecordingBus(delay=0.5)  # a pass takes half a second per event
    relay = OutboxRelay(private_pool, bus, poll_interval=60)
    await relay.start()
    try:
        await asyncio.sleep(0.2)
        first, second = uploaded(), uploaded()
        await commit(private_pool, first)
        await eventually(lambda: bus.attempts == 1, within=2)  # the relay is publishing `first` now
        await commit(private_pool, second)  # its NOTIFY arrives while the pass is still running
        await eventually(lambda: len(bus.published) == 2, within=3)
        assert bus.message_ids == [first.message_id, second.message_id]
    finally:
        await relay.stop()


async def test_unfinished_batches_without_a_pending_event_are_announced_again(private_pool: asyncpg.Pool) -> None:
    tenant = tenant_id()
    ids: dict[str, uuid.UUID] = {}
    async with private_pool.acquire() as conn:
        await create_tenant(conn, tenant, "T")
        for name, kind, auto_load, path in [
            ("pending", BatchKind.FEC, True, []),
            ("validating", BatchKind.EXCEL, False, [BatchStatus.VALIDATING]),
            ("pending-with-event", BatchKind.FEC, False, []),
            ("validated", BatchKind.FEC, False, [BatchStatus.VALIDATING, BatchStatus.VALIDATED]),
            ("failed", BatchKind.FEC, False, [BatchStatus.FAILED]),
        ]:
            ids[name] = uuid.uuid4()
            await batches.insert_batch(
                conn, batch_id=ids[name], tenant_id=tenant, kind=kind, files=[], auto_load=auto_load, created_by=None
            )
            for status in path:
                assert await batches.transition(conn, ids[name], status, stage="s", progress=0) is not None
    already = BatchUploaded(tenant_id=tenant, batch_id=ids["pending-with-event"], kind=BatchKind.FEC)
    await commit(private_pool, already)

    assert await reannounce_unfinished(private_pool, limit=5) == 2
    assert await reannounce_unfinished(private_pool, limit=5) == 0  # their events are pending now

    bus = RecordingBus()
    assert await OutboxRelay(private_pool, bus).relay_once() == 3
    announced = [BatchUploaded.model_validate_json(body) for _, body, _ in bus.published]
    assert announced[0] == already
    assert sorted((e.batch_id, e.tenant_id, e.kind, e.auto_load) for e in announced[1:]) == sorted(
        [(ids["pending"], tenant, BatchKind.FEC, True), (ids["validating"], tenant, BatchKind.EXCEL, False)]
    )
    assert {routing_key for routing_key, _, _ in bus.published} == {"batch.uploaded"}


@pytest.mark.usefixtures("amqp_bus")
async def test_relay_to_rabbitmq_queues_the_event_for_the_worker(
    private_pool: asyncpg.Pool, amqp_bus: AmqpBus, amqp_connection: AbstractConnection
) -> None:
    event = uploaded()
    await commit(private_pool, event)
    assert await OutboxRelay(private_pool, amqp_bus).relay_once() == 1

    channel = await amqp_connection.channel()
    queue = await channel.declare_queue(PERIOD_VALIDATOR_QUEUE.queue_name, passive=True)
    message = await queue.get(no_ack=True, fail=False, timeout=5)
    await channel.close()
    assert message is not None
    assert (message.routing_key, message.message_id) == ("batch.uploaded", str(event.message_id))
    assert BatchUploaded.model_validate_json(message.body) == event
