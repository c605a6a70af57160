"""The status fan-out, on the in-process bus (no infrastructure needed)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.contracts import StatusEvent
from comptaflow.gateway.status_hub import EndOfStream, StatusHub


def event(tenant: str, batch_id: uuid.UUID | None = None, seq: int = 0) -> StatusEvent:
    return StatusEvent(
        tenant_id=tenant,
        batch_id=batch_id or uuid.uuid4(),
        service="t",
        stage="s",
        status="VALIDATING",
        progress=0.1,
        seq=seq,
    )


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    the_bus = MemoryBus()
    await the_bus.connect()
    yield the_bus
    await the_bus.close()


async def test_one_stream_feeds_every_matching_subscription_in_order(bus: MemoryBus) -> None:
    hub = StatusHub(bus)
    await hub.start()
    try:
        assert hub.streaming
        acme, other = hub.subscribe(), hub.subscribe()
        acme.add_tenant("acme")
        batch = uuid.uuid4()
        other.add_batch(batch, "other")
        await bus.publish_status(event("acme", seq=1))
        await bus.publish_status(event("other", batch, seq=2))
        await bus.publish_status(event("other", seq=3))  # another batch of "other": nobody asked
        await bus.publish_status(event("acme", seq=4))
        await bus.publish_status(event("acme", batch, seq=5))  # right batch id, wrong tenant: not for `other`
        # A sentinel for each, published last: the hub dispatches in order, so what comes before it in a
        # subscription's queue is all that subscription was given of the five above.
        await bus.publish_status(event("acme", seq=6))
        await bus.publish_status(event("other", batch, seq=7))

        async def drained(n: int, queue: asyncio.Queue[StatusEvent | EndOfStream]) -> list[int]:
            items = [await asyncio.wait_for(queue.get(), 2) for _ in range(n)]
            return [i.seq for i in items if isinstance(i, StatusEvent)]

        assert await drained(4, acme.queue) == [1, 4, 5, 6]
        assert await drained(2, other.queue) == [2, 7]
        assert (acme.queue.empty(), other.queue.empty()) == (True, True)
    finally:
        await hub.stop()


async def test_a_slow_subscriber_is_cut_off_without_holding_up_the_others(bus: MemoryBus) -> None:
    hub = StatusHub(bus, queue_size=3)
    await hub.start()
    try:
        slow, fast = hub.subscribe(), hub.subscribe()
        slow.add_tenant("acme")
        fast.add_tenant("acme")
        received: list[int] = []

        async def keep_up() -> None:
            while len(received) < 10:
                item = await fast.queue.get()
                assert isinstance(item, StatusEvent)
                received.append(item.seq)

        reader = asyncio.create_task(keep_up())
        for seq in range(10):
            await bus.publish_status(event("acme", seq=seq))
            await asyncio.sleep(0.01)
        await asyncio.wait_for(reader, 2)
        assert received == list(range(10))
        assert slow.ended is EndOfStream.TOO_SLOW
        assert slow.queue.get_nowait() is EndOfStream.TOO_SLOW  # only the end marker is left
        assert slow.queue.empty()
        assert hub.subscriber_count == 1
    finally:
        await hub.stop()


async def test_stopping_ends_every_subscription(bus: MemoryBus) -> None:
    hub = StatusHub(bus)
    await hub.start()
    subscription = hub.subscribe()
    await hub.stop()
    assert subscription.queue.get_nowait() is EndOfStream.SHUTDOWN
    assert not hub.streaming


async def test_the_stream_is_reopened_after_a_failure() -> None:
    bus = MemoryBus()  # not connected yet: opening the stream fails
    hub = StatusHub(bus, retry_initial=0.05, retry_max=0.1)
    await hub.start(ready_timeout=0.1)
    try:
        assert not hub.streaming
        await bus.connect()
        for _ in range(100):
            if hub.streaming:
                break
            await asyncio.sleep(0.02)
        assert hub.streaming
        subscription = hub.subscribe()
        subscription.add_tenant("acme")
        await bus.publish_status(event("acme", seq=7))
        item = await asyncio.wait_for(subscription.queue.get(), 2)
        assert isinstance(item, StatusEvent)
        assert item.seq == 7
    finally:
        await hub.stop()
        await bus.close()
