"""Bus interface, the shape of a worker queue, and the dispatch shared by both implementations."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import structlog

from comptaflow.common.contracts import Message, StatusEvent, message_type, parse_message
from comptaflow.common.errors import PermanentError, TransientError
from comptaflow.common.metrics import MESSAGE_SECONDS, MESSAGES_HANDLED

EVENTS_EXCHANGE = "comptaflow.events"
STATUS_EXCHANGE = "comptaflow.status"
DEAD_LETTER_EXCHANGE = "comptaflow.dlx"

log = structlog.get_logger("comptaflow.bus")


@dataclass(frozen=True, slots=True)
class WorkerQueue:
    """One durable quorum queue of a worker, bound to the routing keys of the messages it consumes.

    Declared by the service that consumes it (`comptaflow.common.service`); the bindings, the dead-letter
    queue, the AsyncAPI channel and the decoding at the consumer edge all come from `messages`.
    """

    name: str
    messages: tuple[type[Message], ...]

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError(f"queue {self.name} consumes no message type")

    @property
    def routing_keys(self) -> tuple[str, ...]:
        return tuple(message_type(model) for model in self.messages)

    @property
    def queue_name(self) -> str:
        return f"comptaflow.{self.name}"

    @property
    def dead_letter_queue_name(self) -> str:
        return f"comptaflow.{self.name}.dead"

    def parse(self, body: bytes) -> Message:
        """The message as one of this queue's types; anything else is a permanent error (dead-lettered)."""
        return parse_message(body, self.messages)


@dataclass(frozen=True, slots=True)
class Delivery:
    routing_key: str
    delivery_count: int  # 0 on the first delivery
    redelivered: bool


Handler = Callable[[Message, Delivery], Awaitable[None]]
"""What a consumer runs for each message of its queue (decoded as one of the queue's types)."""


class Consumer(Protocol):
    async def stop(self, *, grace: float = 30.0) -> None:
        """Stop taking messages, let in-flight ones finish for `grace` seconds, requeue the rest."""


class Bus(Protocol):
    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def publish_raw(self, routing_key: str, body: bytes, *, message_id: str) -> None:
        """Publish to the events exchange and wait for the broker's confirm."""

    async def publish(self, event: Message) -> None: ...

    async def publish_status(self, event: StatusEvent) -> None: ...

    async def consume(self, queue: WorkerQueue, handler: Handler, *, prefetch: int) -> Consumer:
        """Consume `queue` (declaring it first: a queue outside the bus's topology is declared then)."""
        ...

    def status_stream(self) -> AbstractAsyncContextManager[AsyncIterator[StatusEvent]]:
        """Every status event published from now on, for as long as the context is open."""
        ...


class Outcome(Enum):
    ACK = "ack"
    REQUEUE = "requeue"
    DEAD_LETTER = "dead_letter"


async def dispatch(
    *, service: str, queue: WorkerQueue, handler: Handler, body: bytes, delivery: Delivery, delivery_limit: int
) -> Outcome:
    """Decode, run the handler, and decide the message's fate.

    Transient errors requeue until the delivery limit, permanent ones (and malformed messages)
    go straight to the dead-letter queue. An unexpected exception is treated as transient: the
    delivery limit bounds it.
    """
    started = time.perf_counter()
    outcome = Outcome.ACK
    try:
        event = queue.parse(body)
        with structlog.contextvars.bound_contextvars(**log_context(event)):
            await handler(event, delivery)
    except PermanentError as exc:
        log.error("message_dead_lettered", queue=queue.name, reason=str(exc), error=type(exc).__name__)
        outcome = Outcome.DEAD_LETTER
    except TransientError as exc:
        outcome = _requeue_or_dead_letter(queue, delivery, delivery_limit, exc)
    except Exception as exc:
        log.exception("message_handler_crashed", queue=queue.name)
        outcome = _requeue_or_dead_letter(queue, delivery, delivery_limit, exc)
    MESSAGES_HANDLED.labels(service, queue.name, outcome.value).inc()
    MESSAGE_SECONDS.labels(service, queue.name).observe(time.perf_counter() - started)
    return outcome


def log_context(event: Message) -> dict[str, str]:
    """What every log line about a message carries: its type and the tenant, batch or job it is about."""
    context = {"message_type": message_type(type(event))}
    for key in ("tenant_id", "batch_id", "job_id"):
        value = getattr(event, key, None)
        if value is not None:
            context[key] = str(value)
    return context


GiveUp = Callable[[BaseException, bool], Awaitable[None]]
"""Records that a message's work failed for good: `(cause, permanent)`; permanent = not a last attempt."""


async def or_give_up(work: Awaitable[None], *, delivery: Delivery, limit: int, give_up: GiveUp) -> None:
    """Run a handler's work; before its message is dead-lettered, let the worker record the failure.

    A message is dead-lettered on a permanent error, or on any error at the last attempt the delivery
    limit allows; then `give_up` runs first (a worker marks its batch FAILED), so nothing waits forever.
    """
    try:
        await work
    except PermanentError as exc:
        await give_up(exc, True)
        raise
    except Exception as exc:
        if delivery.delivery_count + 1 >= limit:
            await give_up(exc, False)
            raise PermanentError(str(exc)) from exc
        raise


def _requeue_or_dead_letter(queue: WorkerQueue, delivery: Delivery, limit: int, exc: BaseException) -> Outcome:
    if delivery.delivery_count + 1 >= limit:
        log.error("message_dead_lettered", queue=queue.name, reason=str(exc), attempts=delivery.delivery_count + 1)
        return Outcome.DEAD_LETTER
    log.warning("message_requeued", queue=queue.name, reason=str(exc), attempts=delivery.delivery_count + 1)
    return Outcome.REQUEUE


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is one word, `#` is zero or more words.

    As in RabbitMQ, the empty string has no words (so `*` does not match it), while the empty words of
    `a..b` are words like any other.
    """
    return _match(_words(pattern), _words(routing_key))


def _words(topic: str) -> list[str]:
    return topic.split(".") if topic else []


def _match(pat: list[str], key: list[str]) -> bool:
    if not pat:
        return not key
    head, rest = pat[0], pat[1:]
    if head == "#":
        return any(_match(rest, key[i:]) for i in range(len(key) + 1))
    if not key:
        return False
    return (head in ("*", key[0])) and _match(rest, key[1:])
