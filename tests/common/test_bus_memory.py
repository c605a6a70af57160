"""The in-process bus: routing, redelivery bounded by the delivery limit, dead letters, status fan-out, shutdown."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date

import pytest

from comptaflow.common.bus.base import PERIOD_VALIDATOR_QUEUE, AnyEvent, Delivery
from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.contracts import BatchKind, BatchUploaded, BatchValidated, LoadRequested, StatusEvent
from comptaflow.common.errors import (
    DependencyUnavailable,
    InvalidMessage,
    NotFound,
    PermanentError,
    TransientError,
)
from comptaflow.common.metrics import REGISTRY

from .support import eventually, tenant_id

QUEUE = PERIOD_VALIDATOR_QUEUE.name  # "period-validator"
DELIVERY_LIMIT = 3


def handled(service: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "comptaflow_messages_handled_total", {"service": service, "queue": QUEUE, "outcome": outcome}
    )
    return value or 0.0


@pytest.fixture
async def bus(service: str) -> AsyncIterator[MemoryBus]:
    the_bus = MemoryBus(service=service, delivery_limit=DELIVERY_LIMIT)
    await the_bus.connect()
    yield the_bus
    await the_bus.close()


def uploaded() -> BatchUploaded:
    return BatchUploaded(tenant_id=tenant_id(), batch_id=uuid.uuid4(), kind=BatchKind.FEC)


def status(tenant: str, stage: str, seq: int) -> StatusEvent:
    return StatusEvent(
        tenant_id=tenant, batch_id=uuid.uuid4(), service="test", stage=stage, status="VALIDATING", progress=0.5, seq=seq
    )


class Recorder:
    """A handler that records what it was given and then behaves as told."""

    def __init__(self, raises: BaseException | None = None) -> None:
        self.calls: list[tuple[AnyEvent, Delivery]] = []
        self._raises = raises

    async def __call__(self, event: AnyEvent, delivery: Delivery) -> None:
        self.calls.append((event, delivery))
        if self._raises is not None:
            raise self._raises


async def test_batch_uploaded_is_routed_to_the_period_validator_queue_only(bus: MemoryBus, service: str) -> None:
    event = uploaded()
    await bus.publish(event)
    # No worker queue of the topology binds these routing keys: they reach no queue.
    await bus.publish(
        BatchValidated(
            tenant_id=event.tenant_id,
            batch_id=event.batch_id,
            kind=BatchKind.FEC,
            period_start=date(2024, 1, 1),
            period_end=date(2024, 12, 31),
        )
    )
    await bus.publish(LoadRequested(tenant_id=event.tenant_id, batch_id=event.batch_id))
    assert bus.queue_depth(QUEUE) == 1

    handler = Recorder()
    consumer = await bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=1)
    await eventually(lambda: handled(service, "ack") == 1)
    await consumer.stop(grace=1)

    assert handler.calls == [(event, Delivery(routing_key="batch.uploaded", delivery_count=0, redelivered=False))]
    assert bus.queue_depth(QUEUE) == 0
    assert bus.queue_depth("loader") == 1  # the load request went to the loader's queue, not the validator's
    assert bus.dead_letters == {QUEUE: [], "loader": []}


@pytest.mark.parametrize(
    "error",
    [TransientError("database busy"), DependencyUnavailable("broker down"), RuntimeError("bug in the handler")],
    ids=["transient", "dependency-unavailable", "unexpected-exception"],
)
async def test_transient_failure_is_redelivered_until_the_delivery_limit_then_dead_lettered(
    bus: MemoryBus, service: str, error: Exception
) -> None:
    event = uploaded()
    handler = Recorder(raises=error)
    consumer = await bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=1)
    await bus.publish(event)
    await eventually(lambda: len(bus.dead_letters[QUEUE]) == 1)
    await consumer.stop(grace=1)

    assert [(d.delivery_count, d.redelivered) for _, d in handler.calls] == [(0, False), (1, True), (2, True)]
    assert all(e == event for e, _ in handler.calls)
    assert bus.dead_letters[QUEUE] == [event.model_dump_json().encode()]
    assert bus.queue_depth(QUEUE) == 0
    assert (handled(service, "requeue"), handled(service, "dead_letter"), handled(service, "ack")) == (2, 1, 0)


@pytest.mark.parametrize(
    "error", [PermanentError("cannot work"), NotFound("no such batch")], ids=["permanent", "not-found"]
)
async def test_permanent_failure_is_dead_lettered_on_the_first_attempt(
    bus: MemoryBus, service: str, error: Exception
) -> None:
    event = uploaded()
    handler = Recorder(raises=error)
    consumer = await bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=1)
    await bus.publish(event)
    await eventually(lambda: len(bus.dead_letters[QUEUE]) == 1)
    await consumer.stop(grace=1)

    assert len(handler.calls) == 1
    assert bus.dead_letters[QUEUE] == [event.model_dump_json().encode()]
    assert (handled(service, "requeue"), handled(service, "dead_letter")) == (0, 1)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"type": "batch.uploaded"}', b'{"type": "batch.uploaded", "tenant_id": "a", "surprise": 1}'],
    ids=["not-json", "missing-fields", "invalid-fields"],
)
async def test_malformed_body_is_dead_lettered_without_calling_the_handler(
    bus: MemoryBus, service: str, body: bytes
) -> None:
    handler = Recorder()
    consumer = await bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=1)
    await bus.publish_raw("batch.uploaded", body, message_id=str(uuid.uuid4()))
    await eventually(lambda: len(bus.dead_letters[QUEUE]) == 1)
    await consumer.stop(grace=1)

    assert handler.calls == []
    assert bus.dead_letters[QUEUE] == [body]
    assert handled(service, "dead_letter") == 1


async def test_handler_raising_invalid_message_is_not_retried(bus: MemoryBus) -> None:
    handler = Recorder(raises=InvalidMessage("row 3 is not a ledger line"))
    consumer = await bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=1)
    await bus.publish(uploaded())
    await eventually(lambda: len(bus.dead_letters[QUEUE]) == 1)
    await consumer.stop(grace=1)
    assert len(handler.calls) == 1


async def test_prefetch_bounds_how_many_messages_are_handled_at_once(bus: MemoryBus, service: str) -> None:
    release = asyncio.Event()
    running: list[uuid.UUID] = []

    async def handler(event: AnyEvent, _: Delivery) -> None:
        running.append(event.batch_id)
        await release.wait()

    events = [uploaded() for _ in range(3)]
    for event in events:
        await bus.publish(event)
    consumer = await bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=2)
    await eventually(lambda: len(running) == 2)
    await asyncio.sleep(0.1)
    assert running == [events[0].batch_id, events[1].batch_id]
    assert bus.queue_depth(QUEUE) == 1

    release.set()
    await eventually(lambda: handled(service, "ack") == 3)
    await consumer.stop(grace=1)
    assert running == [e.batch_id for e in events]


async def test_status_events_fan_out_to_every_open_stream(bus: MemoryBus) -> None:
    tenant = tenant_id()
    before = status(tenant, "before", 1)
    await bus.publish_status(before)  # nobody listens yet: a stream only sees events published after it opened
    first, second = status(tenant, "reading", 2), status(tenant, "checking", 3)
    async with bus.status_stream() as one, bus.status_stream() as two:
        await bus.publish_status(first)
        await bus.publish_status(second)
        got_one = [await asyncio.wait_for(anext(one), 1) for _ in range(2)]
        got_two = [await asyncio.wait_for(anext(two), 1) for _ in range(2)]
    assert got_one == [first, second]
    assert got_two == [first, second]


async def test_a_closed_status_stream_receives_nothing_more(bus: MemoryBus) -> None:
    tenant = tenant_id()
    async with bus.status_stream() as staying:
        async with bus.status_stream() as leaving:
            await bus.publish_status(status(tenant, "one", 1))
            assert (await asyncio.wait_for(anext(leaving), 1)).stage == "one"
        await bus.publish_status(status(tenant, "two", 2))
        assert [(await asyncio.wait_for(anext(staying), 1)).stage for _ in range(2)] == ["one", "two"]
        with pytest.raises(TimeoutError):  # "two" was published after `leaving` closed
            await asyncio.wait_for(anext(leaving), 0.2)


async def test_stop_waits_for_an_in_flight_handler_that_finishes_within_grace(bus: MemoryBus, service: str) -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(_: AnyEvent, __: Delivery) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.set()

    consumer = await bus.consume(PERIOD_VALIDATOR_QUEUE, slow, prefetch=1)
    await bus.publish(uploaded())
    await asyncio.wait_for(started.wait(), 2)
    t0 = time.monotonic()
    await consumer.stop(grace=5)
    waited = time.monotonic() - t0

    assert finished.is_set()
    assert 0.2 < waited < 2
    assert handled(service, "ack") == 1
    assert bus.queue_depth(QUEUE) == 0
    assert bus.dead_letters[QUEUE] == []


async def test_stop_cancels_a_handler_exceeding_grace_and_requeues_its_message(bus: MemoryBus) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(_: AnyEvent, __: Delivery) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    event = uploaded()
    consumer = await bus.consume(PERIOD_VALIDATOR_QUEUE, stuck, prefetch=1)
    await bus.publish(event)
    await asyncio.wait_for(started.wait(), 2)
    t0 = time.monotonic()
    await consumer.stop(grace=0.2)
    assert time.monotonic() - t0 < 1.5
    assert cancelled.is_set()
    assert bus.queue_depth(QUEUE) == 1

    after = Recorder()
    successor = await bus.consume(PERIOD_VALIDATOR_QUEUE, after, prefetch=1)
    await eventually(lambda: len(after.calls) == 1)
    await successor.stop(grace=1)
    # Like RabbitMQ after a nack: the message comes back marked as delivered before.
    assert after.calls == [(event, Delivery(routing_key="batch.uploaded", delivery_count=1, redelivered=True))]
    assert bus.dead_letters[QUEUE] == []


async def test_a_closed_bus_refuses_to_publish_or_consume(bus: MemoryBus) -> None:
    assert await bus.ping() is True
    await bus.close()
    assert await bus.ping() is False
    with pytest.raises(DependencyUnavailable, match="closed"):
        await bus.publish(uploaded())
    with pytest.raises(DependencyUnavailable, match="closed"):
        await bus.publish_status(status(tenant_id(), "x", 1))
    with pytest.raises(DependencyUnavailable, match="closed"):
        await bus.consume(PERIOD_VALIDATOR_QUEUE, Recorder(), prefetch=1)
