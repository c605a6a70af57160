"""Fan-out of status events to WebSocket connections (docs/api.md, WebSocket).

One background task per process reads `bus.status_stream()` and hands every event, in bus order, to
the subscriptions that asked for its tenant or batch. Each subscription has a bounded queue: a client
that does not keep up is cut off (its queue is replaced by a single end-of-stream marker) instead of
slowing the others down or growing memory. If the stream breaks (broker restart), the task reopens it
with a bounded backoff; events published meanwhile are lost to live clients, while the batch row
(`GET /batches/{id}`) remains the source of truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from enum import Enum

import structlog

from comptaflow.common.bus import Bus
from comptaflow.common.contracts import StatusEvent

log = structlog.get_logger("comptaflow.gateway.status_hub")

DEFAULT_QUEUE_SIZE = 1000


class EndOfStream(Enum):
    """Why a subscription stops receiving events."""

    TOO_SLOW = "client too slow"
    SHUTDOWN = "server shutting down"


class Subscription:
    """What one WebSocket connection listens to, and the queue its events wait in."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[StatusEvent | EndOfStream] = asyncio.Queue(maxsize=maxsize)
        self.tenants: set[str] = set()
        self.batches: dict[uuid.UUID, str] = {}  # batch id → its tenant
        self.jobs: dict[uuid.UUID, str] = {}  # job id → its tenant
        self.ended: EndOfStream | None = None

    def add_tenant(self, tenant_id: str) -> None:
        self.tenants.add(tenant_id)

    def add_batch(self, batch_id: uuid.UUID, tenant_id: str) -> None:
        self.batches[batch_id] = tenant_id

    def add_job(self, job_id: uuid.UUID, tenant_id: str) -> None:
        self.jobs[job_id] = tenant_id

    @property
    def size(self) -> int:
        return len(self.tenants) + len(self.batches) + len(self.jobs)

    def wants(self, event: StatusEvent) -> bool:
        if event.tenant_id in self.tenants:
            return True
        if event.batch_id is not None:
            return self.batches.get(event.batch_id) == event.tenant_id
        return event.job_id is not None and self.jobs.get(event.job_id) == event.tenant_id

    def offer(self, event: StatusEvent) -> bool:
        """Queue an event without waiting; False if the queue is full."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def end(self, reason: EndOfStream) -> None:
        """Drop what is queued and leave only the end marker, so the reader stops at once."""
        if self.ended is not None:
            return
        self.ended = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(reason)


class StatusHub:
    def __init__(
        self,
        bus: Bus,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        retry_initial: float = 0.5,
        retry_max: float = 10.0,
    ) -> None:
        self._bus = bus
        self._queue_size = queue_size
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._subscriptions: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._streaming = asyncio.Event()

    @property
    def streaming(self) -> bool:
        """True while the status stream is open."""
        return self._streaming.is_set()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    async def start(self, *, ready_timeout: float = 10.0) -> None:
        """Start the reader and wait (bounded) until the stream is open, so no event after start is missed."""
        self._task = asyncio.create_task(self._run(), name="status-hub")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._streaming.wait(), timeout=ready_timeout)
        if not self._streaming.is_set():
            log.warning("status_stream_not_open_yet", waited=ready_timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for subscription in list(self._subscriptions):
            subscription.end(EndOfStream.SHUTDOWN)
        self._subscriptions.clear()

    def subscribe(self) -> Subscription:
        subscription = Subscription(self._queue_size)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def dispatch(self, event: StatusEvent) -> None:
        for subscription in list(self._subscriptions):
            if subscription.ended is None and subscription.wants(event) and not subscription.offer(event):
                log.warning("websocket_client_too_slow", tenant_id=event.tenant_id, queued=self._queue_size)
                subscription.end(EndOfStream.TOO_SLOW)
                self._subscriptions.discard(subscription)

    async def _run(self) -> None:
        delay = self._retry_initial
        while True:
            try:
                async with self._bus.status_stream() as events:
                    self._streaming.set()
                    log.info("status_stream_open")
                    delay = self._retry_initial
                    async for event in events:
                        self.dispatch(event)
                log.warning("status_stream_ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("status_stream_failed", error=type(exc).__name__, reason=str(exc), retry_in=delay)
            finally:
                self._streaming.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)
