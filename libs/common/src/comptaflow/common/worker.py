"""The worker skeleton: runs one declared service (`comptaflow.common.service.ServiceSpec`).

    start   build the service (its factory, with the process's connections), run its start hook, start the
            outbox relay when the service publishes, then one consumer per declared queue
    handle  the queue's bytes decoded as one of its declared types (anything else: dead-lettered), the
            handler of that type called with it, under the message's log context; on a permanent error, or
            when the last attempt the delivery limit allows fails, the handler's `give_up` runs first (the
            batch or job is marked FAILED), then the message is dead-lettered; afterwards the memory a large
            message freed is given back (`release_memory`)
    stop    stop taking messages, let those in flight finish for the grace period (the rest are cancelled
            and handed back to the broker), stop the relay after its pass, then the service's stop hook

`serve_worker` adds what `comptaflow serve <worker>` needs around it: the `/healthz`, `/readyz`, `/metrics`
endpoint and the wait for SIGINT/SIGTERM.

The relay runs in every process that writes the outbox: a service that declares `publishes` enqueues its
events in the same transaction as its state change, and its own process hands them to the broker, so the
work flows on with no other process alive (under `comptaflow up` the one process has one relay).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import structlog

from comptaflow.common.bus import Consumer, Delivery
from comptaflow.common.bus.base import Handler, or_give_up
from comptaflow.common.contracts import Message, message_type
from comptaflow.common.errors import ConfigurationError
from comptaflow.common.health import HealthServer
from comptaflow.common.infra import Infra
from comptaflow.common.memory import release_after_batch
from comptaflow.common.outbox import OutboxRelay
from comptaflow.common.service import MessageHandler, Runtime, ServiceSpec, WorkerContext

log = structlog.get_logger("comptaflow.worker")


class Worker:
    """One service's consumers, relay and hooks; `start()`, then `stop()` (see the module docstring)."""

    def __init__(self, spec: ServiceSpec, infra: Infra, *, work_dir: Path | None = None, relay: bool = True) -> None:
        if spec.role != "worker":
            raise ConfigurationError(f"{spec.name} is not a worker (role {spec.role})")
        self.spec = spec
        self._infra = infra
        self._work_dir = work_dir
        self._relay_wanted = relay and bool(spec.publishes)
        self._runtime: Runtime | None = None
        self._relay: OutboxRelay | None = None
        self._consumers: list[Consumer] = []

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError(f"the {self.spec.name} worker is not started")
        return self._runtime

    async def start(self) -> None:
        factory = self.spec.load_factory()
        runtime: Runtime = factory(WorkerContext(infra=self._infra, work_dir=self._work_dir))
        missing = [message_type(m) for m in self.spec.consumed if m not in runtime.handlers]
        if missing:
            raise ConfigurationError(f"service {self.spec.name} declares {', '.join(missing)} but has no handler")
        self._runtime = runtime
        if runtime.on_start is not None:
            await runtime.on_start()
        if self._relay_wanted:
            self._relay = OutboxRelay(self._infra.db, self._infra.bus)
            await self._relay.start()
        prefetch = max(self.spec.min_prefetch, self._infra.settings.worker_prefetch)
        handle = self._dispatcher()
        for queue in self.spec.queues:
            self._consumers.append(await self._infra.bus.consume(queue, handle, prefetch=prefetch))
        log.info("worker_started", service=self.spec.name, queues=[q.queue_name for q in self.spec.queues])

    async def stop(self, *, grace: float = 30.0) -> None:
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(consumer.stop(grace=grace) for consumer in consumers))
        if self._relay is not None:
            await self._relay.stop()
            self._relay = None
        runtime, self._runtime = self._runtime, None
        if runtime is not None and runtime.on_stop is not None:
            await runtime.on_stop()

    def _dispatcher(self) -> Handler:
        """What every queue of the service runs for a message: its type's handler, within the give-up path."""
        handlers = self.runtime.handlers
        settings = self._infra.settings
        release = self.spec.release_memory

        async def handle(message: Message, delivery: Delivery) -> None:
            # The queue decodes only its declared types, and `start` checked that each has a handler.
            handler: MessageHandler[Any] = handlers[type(message)]

            async def give_up(cause: BaseException, permanent: bool) -> None:
                await handler.give_up(message, cause, permanent=permanent)

            try:
                await or_give_up(
                    handler.handle(message, delivery), delivery=delivery, limit=settings.delivery_limit, give_up=give_up
                )
            finally:
                if release:
                    await release_after_batch(settings)

        return handle


async def serve_worker(spec: ServiceSpec, infra: Infra, *, stop: asyncio.Event, work_dir: Path | None = None) -> None:
    """Run one worker in this process until `stop` is set: health endpoint, worker, graceful stop."""
    settings = infra.settings
    health = HealthServer(host=settings.http_host, port=settings.health_port, readiness=infra.readiness)
    worker = Worker(spec, infra, work_dir=work_dir)
    async with contextlib.AsyncExitStack() as stack:
        if settings.health_port:
            await health.start()
            stack.push_async_callback(health.stop)
            log.info("health_endpoint_listening", service=spec.name, port=health.port)
        await worker.start()
        stack.push_async_callback(lambda: worker.stop(grace=settings.shutdown_grace_s))
        await stop.wait()
        log.info("worker_stopping", service=spec.name)
