"""AMQP topic matching used by the in-process bus, checked against a table and against RabbitMQ itself."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest

from comptaflow.common.bus import topic_matches

# (pattern, routing key, matches?) — `*` is exactly one word, `#` zero or more words; words may be empty.
TABLE: list[tuple[str, str, bool]] = [
    # exact
    ("batch.uploaded", "batch.uploaded", True),
    ("batch.uploaded", "batch.validated", False),
    ("batch.uploaded", "batch.uploaded.extra", False),
    ("batch.uploaded", "batch", False),
    ("batch", "batch", True),
    # `*`: exactly one word
    ("batch.*", "batch.uploaded", True),
    ("batch.*", "batch", False),
    ("batch.*", "batch.uploaded.extra", False),
    ("*.uploaded", "batch.uploaded", True),
    ("*.*", "batch.uploaded", True),
    ("*.*", "batch", False),
    ("*", "batch", True),
    ("*", "batch.uploaded", False),
    ("status.*.*", "status.acme.1234", True),
    ("status.*.*", "status.acme", False),
    # `#`: zero or more words
    ("#", "batch.uploaded", True),
    ("#", "batch", True),
    ("batch.#", "batch", True),
    ("batch.#", "batch.uploaded", True),
    ("batch.#", "batch.uploaded.extra", True),
    ("batch.#", "status.acme", False),
    ("#.uploaded", "batch.uploaded", True),
    ("#.uploaded", "uploaded", True),
    ("#.uploaded", "batch.uploaded.extra", False),
    ("a.#.z", "a.z", True),
    ("a.#.z", "a.b.c.z", True),
    ("a.#.z", "a.b.c", False),
    ("#.#", "a", True),
    ("#.*", "a.b.c", True),
    ("*.#", "a", True),
    ("#.*.#", "a", True),
    # empty words (consecutive, leading or trailing dots) are words like any other
    ("a.*.b", "a..b", True),
    ("a..b", "a..b", True),
    ("a..b", "a.b", False),
    ("a.*", "a.", True),
    ("*.a", ".a", True),
    ("a.#", "a..", True),
    ("a.b", "a..b", False),
    # the empty routing key has no words at all (RabbitMQ semantics): only `#` (or "") matches it
    ("#", "", True),
    ("#.#", "", True),
    ("", "", True),
    ("*", "", False),
    ("*.#", "", False),
    ("a.#", "", False),
    ("", "a", False),
]


@pytest.mark.parametrize(("pattern", "key", "expected"), TABLE)
def test_topic_matches(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


@pytest.mark.infra
async def test_topic_matches_agrees_with_rabbitmq_routing(amqp_url: str) -> None:
    """Every row of the table routes the same way through a real RabbitMQ topic exchange."""
    patterns = sorted({pattern for pattern, _, _ in TABLE})
    keys = sorted({key for _, key, _ in TABLE})
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            f"test.topics.{uuid.uuid4().hex}", aio_pika.ExchangeType.TOPIC, auto_delete=True
        )
        queues: dict[str, aio_pika.abc.AbstractQueue] = {}
        for pattern in patterns:
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(exchange, routing_key=pattern)
            queues[pattern] = queue
        for key in keys:
            await exchange.publish(aio_pika.Message(key.encode()), routing_key=key)

        routed: dict[str, set[str]] = {}
        for pattern, queue in queues.items():
            got: set[str] = set()
            while (message := await queue.get(no_ack=True, fail=False, timeout=5)) is not None:
                got.add(message.body.decode())
            routed[pattern] = got
        await channel.close()
    finally:
        await asyncio.shield(connection.close())

    disagreements = [
        (pattern, key, key in routed[pattern])
        for pattern in patterns
        for key in keys
        if (key in routed[pattern]) is not topic_matches(pattern, key)
    ]
    assert disagreements == [], "(pattern, key, RabbitMQ routes it?) where topic_matches says otherwise"
