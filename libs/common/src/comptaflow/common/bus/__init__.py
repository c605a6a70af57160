"""The message bus: topic exchanges `comptaflow.events` and `comptaflow.status`.

Two implementations of one interface (`Bus`): `AmqpBus` on RabbitMQ (aio-pika, quorum queues with a
delivery limit and a dead-letter queue, publisher confirms, robust reconnect) and `MemoryBus`, the
in-process bus `comptaflow up` uses when no AMQP URL is set. Handlers see decoded contracts only.
"""

from comptaflow.common.bus.base import (
    EVENTS_EXCHANGE,
    STATUS_EXCHANGE,
    Bus,
    Consumer,
    Delivery,
    Handler,
    WorkerQueue,
    topic_matches,
)

__all__ = [
    "EVENTS_EXCHANGE",
    "STATUS_EXCHANGE",
    "Bus",
    "Consumer",
    "Delivery",
    "Handler",
    "WorkerQueue",
    "topic_matches",
]
