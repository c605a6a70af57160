"""The bus, one suite run on both implementations: the in-process bus and RabbitMQ.

Each behaviour is written once against the `Bus` interface: routing, acknowledgement, requeue bounded by
the delivery limit, dead letters, prefetch, graceful stop, status fan-out and the message metrics. What
a test sees beyond the interface (a queue's depth, its dead letters, the open status streams) comes from
a `BusProbe` of the implementation. What only one implementation has is in test_bus_amqp.py.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from comptaflow.common.bus import Bus, Delivery, WorkerQueue
from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.contracts import BatchKind, BatchUploaded, LoadRequested, Message, StatusEvent
from comptaflow.common.errors import (
    DependencyUnavailable,
    InvalidMessage,
    NotFound,
    PermanentError,
    TransientError,
)
from comptaflow.common.metrics import REGISTRY
from tests.queues import LOADER_QUEUE, PERIOD_VALIDATOR_QUEUE, TOPOLOGY, Unrouted

from .bus_probe import BrokerProbe, BusProbe, MemoryProbe, dead_lettered
from .support import AMQP_DELIVERY_LIMIT, eventually, tenant_id

QUEUE = PERIOD_VALIDATOR_QUEUE


@pytest.fixture
async def memory_bus(service: str) -> AsyncIterator[MemoryBus]:
    the_bus = MemoryBus(service=service, topology=TOPOLOGY, delivery_limit=AMQP_DELIVERY_LIMIT)
    await the_bus.connect()
    yield the_bus
    await the_bus.close()


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.infra)])
def bus(request: pytest.FixtureRequest) -> Bus:
    """A connected bus of each kind, its queues empty: `memory_bus` above, or `amqp_bus` (conftest.py)."""
    the_bus: Bus = request.getfixturevalue(f"{request.param}_bus")
    return the_bus


@pytest.fixture
def probe(request: pytest.FixtureRequest, bus: Bus, service: str) -> BusProbe:
    if isinstance(bus, MemoryBus):
        return MemoryProbe(bus, service=service)
    return BrokerProbe(
        request.getfixturevalue("amqp_connection"), url=request.getfixturevalue("amqp_url"), service=service
    )


def handled(service: str, outcome: str, queue: WorkerQueue = QUEUE) -> float:
    labels = {"service": service, "queue": queue.name, "outcome": outcome}
    return REGISTRY.get_sample_value("comptaflow_messages_handled_total", labels) or 0.0


def uploaded() -> BatchUploaded:
    return BatchUploaded(tenant_id=tenant_id(), batch_id=uuid.uuid4(), kind=BatchKind.EXCEL, auto_load=True)


def status(tenant: str, stage: str, seq: int, progress: float = 0.5) -> StatusEvent:
    return StatusEvent(
        tenant_id=tenant,
        batch_id=uuid.uuid4(),
        service="period-validator",
        stage=stage,
        status="VALIDATING",
        progress=progress,
        seq=seq,
    )


class Recorder:
    """A handler that records what it was given and then behaves as told."""

    def __init__(self, raises: BaseException | None = None, *, unless: Message | None = None) -> None:
        self.calls: list[tuple[Message, Delivery]] = []
        self._raises = raises
        self._unless = unless  # the one message handled without raising

    async def __call__(self, event: Message, delivery: Delivery) -> None:
        self.calls.append((event, delivery))
        if self._raises is not None and event != self._unless:
            raise self._raises


# -- routing and acknowledgement --------------------------------------------------------------------------


async def test_each_event_waits_in_the_queue_that_binds_it_and_is_acknowledged_once_handled(
    bus: Bus, probe: BusProbe, service: str
) -> None:
    event = uploaded()
    load = LoadRequested(tenant_id=event.tenant_id, batch_id=event.batch_id)
    await bus.publish(event)
    await bus.publish(Unrouted(tenant_id=event.tenant_id))  # no worker queue binds it: it reaches none
    await bus.publish(load)
    # Published before any consumer: each waits in its own queue, and only there.
    assert (await probe.ready(QUEUE), await probe.ready(LOADER_QUEUE)) == (1, 1)

    validator, loader = Recorder(), Recorder()
    consumers = [
        await bus.consume(QUEUE, validator, prefetch=2),
        await bus.consume(LOADER_QUEUE, loader, prefetch=2),
    ]
    await eventually(lambda: (handled(service, "ack"), handled(service, "ack", LOADER_QUEUE)) == (1, 1))
    for consumer in consumers:
        await consumer.stop(grace=5)

    assert validator.calls == [(event, Delivery(routing_key="batch.uploaded", delivery_count=0, redelivered=False))]
    assert loader.calls == [(load, Delivery(routing_key="batch.load_requested", delivery_count=0, redelivered=False))]
    # Acknowledged: once the consumers are gone nothing comes back to the queues, nothing was dead-lettered.
    assert (await probe.ready(QUEUE), await probe.ready(LOADER_QUEUE)) == (0, 0)
    assert (await probe.dead_letters(QUEUE), await probe.dead_letters(LOADER_QUEUE)) == ([], [])


# -- failures ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [TransientError("database busy"), DependencyUnavailable("broker down"), RuntimeError("bug in the handler")],
    ids=["transient", "dependency-unavailable", "unexpected-exception"],
)
async def test_transient_failure_is_redelivered_until_the_delivery_limit_then_dead_lettered(
    bus: Bus, probe: BusProbe, service: str, error: Exception
) -> None:
    event = uploaded()
    handler = Recorder(raises=error)
    consumer = await bus.consume(QUEUE, handler, prefetch=1)
    await bus.publish(event)
    dead = await dead_lettered(probe, QUEUE, 1)
    await consumer.stop(grace=5)

    assert [(d.delivery_count, d.redelivered) for _, d in handler.calls] == [(0, False), (1, True), (2, True)]
    assert all(e == event for e, _ in handler.calls)
    assert dead == [event.model_dump_json().encode()]
    assert await probe.ready(QUEUE) == 0
    assert (handled(service, "requeue"), handled(service, "dead_letter"), handled(service, "ack")) == (2, 1, 0)


@pytest.mark.parametrize(
    "error",
    [PermanentError("cannot work"), NotFound("the batch files are gone"), InvalidMessage("row 3 is not a ledger line")],
    ids=["permanent", "not-found", "invalid-message"],
)
async def test_permanent_failure_is_dead_lettered_on_the_first_attempt(
    bus: Bus, probe: BusProbe, service: str, error: Exception
) -> None:
    event, sentinel = uploaded(), uploaded()
    handler = Recorder(raises=error, unless=sentinel)
    consumer = await bus.consume(QUEUE, handler, prefetch=1)
    await bus.publish(event)
    dead = await dead_lettered(probe, QUEUE, 1)
    # One message at a time, in order: once the sentinel published now is handled, a wrong requeue of
    # `event` would have been delivered again before it.
    await bus.publish(sentinel)
    await eventually(lambda: handled(service, "ack") == 1)
    await consumer.stop(grace=5)

    assert [e for e, _ in handler.calls] == [event, sentinel]
    assert dead == [event.model_dump_json().encode()]
    assert await probe.dead_letters(QUEUE) == dead
    assert await probe.ready(QUEUE) == 0
    assert (handled(service, "requeue"), handled(service, "dead_letter"), handled(service, "ack")) == (0, 1, 1)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"type": "batch.uploaded", "tenant_id": ',
        b'{"type": "batch.uploaded"}',
        b'{"type": "batch.uploaded", "tenant_id": "a", "surprise": 1}',
    ],
    ids=["not-json", "truncated-json", "missing-fields", "invalid-fields"],
)
async def test_malformed_body_is_dead_lettered_without_calling_the_handler(
    bus: Bus, probe: BusProbe, service: str, body: bytes
) -> None:
    handler = Recorder()
    consumer = await bus.consume(QUEUE, handler, prefetch=1)
    await bus.publish_raw("batch.uploaded", body, message_id=str(uuid.uuid4()))
    dead = await dead_lettered(probe, QUEUE, 1)
    await consumer.stop(grace=5)

    assert handler.calls == []
    assert dead == [body]
    assert (handled(service, "dead_letter"), handled(service, "requeue")) == (1, 0)


# -- prefetch and graceful stop ----------------------------------------------------------------------------


async def test_prefetch_bounds_how_many_messages_are_handled_at_once(bus: Bus, probe: BusProbe, service: str) -> None:
    release = asyncio.Event()
    running: list[uuid.UUID] = []
    at_once = peak = 0

    async def handler(event: Message, _: Delivery) -> None:
        nonlocal at_once, peak
        assert isinstance(event, BatchUploaded)
        running.append(event.batch_id)
        at_once += 1
        peak = max(peak, at_once)
        await release.wait()
        at_once -= 1

    events = [uploaded() for _ in range(3)]
    for event in events:
        await bus.publish(event)
    consumer = await bus.consume(QUEUE, handler, prefetch=2)

    async def two_taken_one_waiting() -> bool:
        return len(running) == 2 and await probe.ready(QUEUE) == 1

    # A settled state, not a moment: the third message waits in the queue, and nothing can take it
    # before one of the two in flight is acknowledged, which `release` holds back.
    await eventually(two_taken_one_waiting)
    assert running == [events[0].batch_id, events[1].batch_id]

    release.set()
    await eventually(lambda: handled(service, "ack") == 3)
    await consumer.stop(grace=5)
    assert running == [e.batch_id for e in events]
    assert peak == 2


async def test_stop_waits_for_an_in_flight_handler_that_finishes_within_grace(
    bus: Bus, probe: BusProbe, service: str
) -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(_: Message, __: Delivery) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.set()

    consumer = await bus.consume(QUEUE, slow, prefetch=1)
    await bus.publish(uploaded())
    await asyncio.wait_for(started.wait(), 10)
    t0 = time.monotonic()
    await consumer.stop(grace=10)
    waited = time.monotonic() - t0

    assert finished.is_set()
    assert 0.3 < waited < 5
    assert handled(service, "ack") == 1
    assert await probe.ready(QUEUE) == 0
    assert await probe.dead_letters(QUEUE) == []


async def test_stop_cancels_a_handler_exceeding_grace_and_requeues_its_message(bus: Bus, probe: BusProbe) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(_: Message, __: Delivery) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    event = uploaded()
    consumer = await bus.consume(QUEUE, stuck, prefetch=1)
    await bus.publish(event)
    await asyncio.wait_for(started.wait(), 10)
    t0 = time.monotonic()
    await consumer.stop(grace=0.3)
    assert time.monotonic() - t0 < 3
    assert cancelled.is_set()

    async def back_in_the_queue() -> bool:
        return await probe.ready(QUEUE) == 1

    await eventually(back_in_the_queue, within=5)

    after = Recorder()
    successor = await bus.consume(QUEUE, after, prefetch=1)
    await eventually(lambda: len(after.calls) == 1)
    await successor.stop(grace=5)
    # As after a nack: the message comes back marked as delivered before.
    assert after.calls == [(event, Delivery(routing_key="batch.uploaded", delivery_count=1, redelivered=True))]
    assert await probe.dead_letters(QUEUE) == []


# -- status events -----------------------------------------------------------------------------------------


async def test_status_events_fan_out_in_order_to_every_stream_open_when_they_are_published(bus: Bus) -> None:
    tenant = tenant_id()
    await bus.publish_status(status(tenant, "before", 1))  # nobody listens yet: lost for the streams below
    events = [
        status(tenant, stage, seq, progress)
        for seq, (stage, progress) in enumerate([("reading", 0.1), ("checking", 0.5), ("done", 1.0)], start=2)
    ]
    async with bus.status_stream() as one, bus.status_stream() as two:
        for event in events:
            await bus.publish_status(event)
        got_one = [await asyncio.wait_for(anext(one), 5) for _ in events]
        got_two = [await asyncio.wait_for(anext(two), 5) for _ in events]
    # "before" would come first if a stream had seen it.
    assert got_one == events
    assert got_two == events


async def test_a_closed_status_stream_receives_nothing_more(bus: Bus, probe: BusProbe) -> None:
    tenant = tenant_id()
    listeners = await probe.status_listeners()
    async with bus.status_stream() as staying:
        async with bus.status_stream() as leaving:
            assert await probe.status_listeners() == listeners + 2
            await bus.publish_status(status(tenant, "one", 1))
            assert (await asyncio.wait_for(anext(leaving), 5)).stage == "one"

        async def left() -> bool:
            return await probe.status_listeners() == listeners + 1

        # Its subscription is gone: nothing published from now on can reach it.
        await eventually(left)
        await bus.publish_status(status(tenant, "two", 2))
        assert [(await asyncio.wait_for(anext(staying), 5)).stage for _ in range(2)] == ["one", "two"]

    async def all_left() -> bool:
        return await probe.status_listeners() == listeners

    await eventually(all_left)


# -- lifecycle ---------------------------------------------------------------------------------------------


async def test_a_bus_refuses_to_publish_or_consume_before_connect_and_after_close(probe: BusProbe) -> None:
    fresh = probe.unconnected()
    refusal = re.escape(probe.refusal)
    assert await fresh.ping() is False
    with pytest.raises(DependencyUnavailable, match=refusal):
        await fresh.publish(uploaded())

    await fresh.connect()
    assert await fresh.ping() is True
    await fresh.close()
    assert await fresh.ping() is False
    with pytest.raises(DependencyUnavailable, match=refusal):
        await fresh.publish(uploaded())
    with pytest.raises(DependencyUnavailable, match=refusal):
        await fresh.publish_raw("batch.uploaded", b"{}", message_id=str(uuid.uuid4()))
    with pytest.raises(DependencyUnavailable, match=refusal):
        await fresh.publish_status(status(tenant_id(), "x", 1))
    with pytest.raises(DependencyUnavailable, match=refusal):
        await fresh.consume(QUEUE, Recorder(), prefetch=1)
    with pytest.raises(DependencyUnavailable, match=refusal):
        async with fresh.status_stream():
            pass
