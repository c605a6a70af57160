"""Transactional outbox: an event is committed with the state change that caused it, then relayed.

`enqueue()` runs inside the caller's transaction. `OutboxRelay` takes committed rows in order
(`FOR UPDATE SKIP LOCKED`, so several gateways can relay side by side), publishes each with the
broker's confirm and deletes it in the same transaction. A crash between publish and commit publishes
the row again: delivery is at least once, and consumers apply a message once (guarded transitions).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import structlog

from comptaflow.common import batches
from comptaflow.common.bus import Bus
from comptaflow.common.contracts import BatchStatus, BatchUploaded, Message, message_type
from comptaflow.common.db import CONNECTION_ERRORS, DATABASE_ERRORS, Conn, DatabaseRefused, translated
from comptaflow.common.errors import TransientError
from comptaflow.common.metrics import BATCHES, OUTBOX_PENDING

log = structlog.get_logger("comptaflow.outbox")

NOTIFY_CHANNEL = "comptaflow_outbox"


async def enqueue(conn: Conn, event: Message) -> None:
    await conn.execute(
        "INSERT INTO outbox (routing_key, message_id, body) VALUES ($1, $2, $3)",
        message_type(type(event)),
        event.message_id,
        event.model_dump_json(),
    )
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, bus: Bus, *, poll_interval: float = 1.0, batch_size: int = 100) -> None:
        self._pool = pool
        self._bus = bus
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._listener: asyncpg.pool.PoolConnectionProxy[asyncpg.Record] | None = None

    def wake(self) -> None:
        self._wake.set()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._stopping = False
        with contextlib.suppress(*DATABASE_ERRORS), translated():
            listener = await self._pool.acquire()
            await listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
            self._listener = listener
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self, *, grace: float = 5.0) -> None:
        """Stop after the pass in progress, if any (its published rows are then deleted, not published again
        by the next relay); a pass still running after `grace` seconds is cancelled."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
            except TimeoutError:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._listener is not None:
            with contextlib.suppress(*DATABASE_ERRORS), translated():
                await self._listener.remove_listener(NOTIFY_CHANNEL, self._on_notify)
            await self._pool.release(self._listener)
            self._listener = None

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before the pass, not after: a NOTIFY arriving during the pass (an event committed
            # after its SELECT) must start another pass at once instead of waiting for the poll interval.
            self._wake.clear()
            try:
                relayed = await self.relay_once()
            except (TransientError, DatabaseRefused, *CONNECTION_ERRORS) as exc:  # type: ignore[misc]
                log.warning("outbox_relay_failed", error=repr(exc))
                relayed = 0
            if relayed < self._batch_size and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)

    async def relay_once(self) -> int:
        """Publish up to one batch of pending events; return how many were relayed."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, routing_key, message_id, body FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            for row in rows:
                await self._bus.publish_raw(row["routing_key"], row["body"].encode(), message_id=str(row["message_id"]))
            if rows:
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
            # Counted after the DELETE, in the same transaction: the rows relayed now are already gone.
            pending = await conn.fetchval("SELECT count(*) FROM outbox")
        OUTBOX_PENDING.set(int(pending or 0))
        if rows:
            log.debug("outbox_relayed", count=len(rows))
        return len(rows)


async def pending_batch_ids(conn: Conn, routing_key: str) -> set[uuid.UUID]:
    """The batches that an event of `routing_key` still waiting in the outbox is about."""
    rows = await conn.fetch(
        "SELECT DISTINCT (body::jsonb ->> 'batch_id')::uuid AS batch_id FROM outbox"
        " WHERE routing_key = $1 AND body::jsonb ? 'batch_id'",
        routing_key,
    )
    return {row["batch_id"] for row in rows}


async def reannounce_unfinished(pool: asyncpg.Pool, *, limit: int) -> int:
    """Re-enqueue `batch.uploaded` for batches left PENDING or VALIDATING with no pending event.

    Only for the in-process bus, whose queued messages do not survive a restart: the validator's
    guarded transitions make a duplicate harmless. A batch whose validation was started `limit` times
    already (each start ended by the process dying: a file that kills it) is failed with the reason
    instead of being run again, so a restart cannot loop on it. Its final status is on its row; no
    status event is sent, since no one can be subscribed before the gateway starts.
    """
    async with pool.acquire() as conn, conn.transaction():
        abandoned = await batches.abandon_exhausted(conn, BatchStatus.VALIDATING, limit=limit)
        announced = await pending_batch_ids(conn, "batch.uploaded")
        rows = [b for b in await batches.unfinished_uploads(conn) if b.id not in announced]
        for unfinished in rows:
            await enqueue(
                conn,
                BatchUploaded(
                    tenant_id=unfinished.tenant_id,
                    batch_id=unfinished.id,
                    kind=unfinished.kind,
                    auto_load=unfinished.auto_load,
                ),
            )
    for batch in abandoned:
        BATCHES.labels(batch.kind.value, BatchStatus.FAILED.value).inc()
        log.warning("exhausted_batch_abandoned", batch_id=str(batch.id), tenant_id=batch.tenant_id)
    if rows:
        log.info("unfinished_batches_reannounced", count=len(rows))
    return len(rows)
