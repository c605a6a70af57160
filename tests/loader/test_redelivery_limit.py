"""The loader on RabbitMQ: a load whose earlier attempts all died with their worker is abandoned.

The broker does not always count a consumer that died as a delivery, so the message arrives here as a
first delivery; the claims the dead loaders left on the batch (simulated by claiming it as they did)
are what bound it.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from comptaflow.common import batches
from comptaflow.common.contracts import BatchStatus, LoadRequested
from tests.loader.conftest import Running
from tests.loader.support import StagedBatch, new_tenant, stage_batch, wait_final

pytestmark = pytest.mark.infra


async def staged_and_claimed(running: Running, *, died: int) -> StagedBatch:
    infra = running.infra
    assert infra.settings.delivery_limit == 3
    staged = await stage_batch(infra.db, infra.storage, new_tenant(), lines=50)
    async with infra.db.acquire() as conn:
        for _ in range(died):
            claimed = await batches.claim(
                conn, staged.batch_id, BatchStatus.PROCESSING, stage="claim", progress=0.02, limit=3
            )
            assert claimed is not None
    await infra.bus.publish(LoadRequested(tenant_id=staged.tenant_id, batch_id=staged.batch_id))
    return staged


async def _loaded_rows(running: Running, staged: StagedBatch) -> int:
    wh = running.infra.warehouse
    assert wh is not None
    rows = await wh.query(
        f"SELECT count() FROM {wh.database}.grand_livre WHERE load_id = {{l:UUID}}",  # noqa: S608
        {"l": staged.batch_id},
    )
    return int(rows[0][0])


async def test_the_last_attempt_the_limit_allows_still_loads(running: Running) -> None:
    staged = await staged_and_claimed(running, died=2)
    batch = await wait_final(running.infra.db, staged.batch_id)
    assert (batch.status, batch.errors) == (BatchStatus.COMPLETED, [])
    assert await _loaded_rows(running, staged) == 50


async def test_one_claim_too_many_fails_the_load_with_the_reason_and_dead_letters_it(
    running: Running, amqp_url: str
) -> None:
    staged = await staged_and_claimed(running, died=3)
    batch = await wait_final(running.infra.db, staged.batch_id)
    assert (batch.status, batch.stage, batch.errors) == (
        BatchStatus.FAILED,
        "failed",
        [
            {
                "code": "LOAD_FAILED",
                "message": "the batch could not be loaded: loading was started 3 times without finishing"
                " (the worker stopped each time); the batch is abandoned",
            }
        ],
    )
    assert await _loaded_rows(running, staged) == 0
    assert await _dead_letters_of(amqp_url, staged.batch_id) == 1  # dead-lettered once, not retried


async def _dead_letters_of(amqp_url: str, batch_id: uuid.UUID) -> int:
    """How many messages of `batch_id` reach the loader's dead-letter queue (taken off it; others left)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        dead = await channel.declare_queue("comptaflow.loader.dead", passive=True)
        ours: list[AbstractIncomingMessage] = []
        others: list[AbstractIncomingMessage] = []
        # The batch is failed just before its message is rejected: wait for the message a little.
        for _ in range(100):
            while (message := await dead.get(fail=False)) is not None:
                body = json.loads(message.body) if message.body.startswith(b"{") else {}
                (ours if body.get("batch_id") == str(batch_id) else others).append(message)
            if ours:
                break
            await asyncio.sleep(0.05)
        for message in ours:
            await message.ack()
        for message in others:
            await message.nack(requeue=True)
    return len(ours)
