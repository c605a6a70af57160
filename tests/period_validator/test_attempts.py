"""The period validator on the in-process bus: a batch whose validation kept killing its worker is abandoned.

Each predecessor that died leaves its claim counted on the batch (simulated here by claiming it as they
did); the bus, fresh after a restart, delivers the message as a first delivery all the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from comptaflow.common import batches
from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.contracts import BatchKind, BatchStatus, BatchUploaded, StatusEvent
from comptaflow.common.infra import Infra, open_infra
from comptaflow.common.settings import Settings
from comptaflow.common.tenants import create_tenant
from comptaflow.common.worker import Worker
from comptaflow.period_validator.service import SERVICE as VALIDATOR
from comptaflow.testkit.fec import FecSpec, write_fec

pytestmark = pytest.mark.infra

ABANDONED = (
    "the batch could not be validated: validation was started 3 times without finishing"
    " (the worker stopped each time); the batch is abandoned"
)


@pytest.fixture
async def infra(settings: Settings) -> AsyncIterator[Infra]:
    assert settings.delivery_limit == 3
    async with open_infra(settings, service=f"validator-{uuid.uuid4().hex[:8]}") as opened:
        validator = Worker(VALIDATOR, opened)
        await validator.start()
        try:
            yield opened
        finally:
            await validator.stop(grace=5)


async def uploaded(infra: Infra, tmp_path: Path, *, died: int) -> BatchUploaded:
    """A FEC batch as the gateway stores it, then claimed by `died` validators that each died mid-way."""
    tenant, batch_id = f"t-{uuid.uuid4().hex[:10]}", uuid.uuid4()
    content = write_fec(tmp_path / "fec.txt", FecSpec(lines=200)).path.read_bytes()
    key = f"{tenant}/incoming/{batch_id}/fec.txt"
    await infra.storage.put_bytes(key, content)
    file = batches.BatchFile("fec", "fec.txt", len(content), hashlib.sha256(content).hexdigest(), key)
    async with infra.db.acquire() as conn:
        await create_tenant(conn, tenant, "ACME SARL")
        await batches.insert_batch(
            conn,
            batch_id=batch_id,
            tenant_id=tenant,
            kind=BatchKind.FEC,
            files=[file],
            auto_load=False,
            created_by=None,
        )
        for _ in range(died):
            claimed = await batches.claim(
                conn,
                batch_id,
                BatchStatus.VALIDATING,
                stage="download",
                progress=0.01,
                limit=infra.settings.delivery_limit,
            )
            assert claimed is not None
    return BatchUploaded(tenant_id=tenant, batch_id=batch_id, kind=BatchKind.FEC)


async def final_events(infra: Infra, event: BatchUploaded) -> list[StatusEvent]:
    """Publish `event`; the status events of its batch up to the final one."""
    seen: list[StatusEvent] = []
    async with infra.bus.status_stream() as events:
        await infra.bus.publish(event)
        async with asyncio.timeout(30):
            async for status in events:
                if status.batch_id == event.batch_id:
                    seen.append(status)
                    if status.status in ("VALIDATED", "FAILED"):
                        return seen
    raise AssertionError("the status stream ended")


async def test_the_last_attempt_the_limit_allows_still_validates(infra: Infra, tmp_path: Path) -> None:
    event = await uploaded(infra, tmp_path, died=2)
    events = await final_events(infra, event)
    async with infra.db.acquire() as conn:
        batch = await batches.get_batch(conn, event.batch_id)
    assert batch is not None
    assert (batch.status, batch.errors) == (BatchStatus.VALIDATED, [])
    assert events[0].message == "validation started"


async def test_one_claim_too_many_fails_the_batch_announces_it_and_dead_letters_the_message(
    infra: Infra, tmp_path: Path
) -> None:
    event = await uploaded(infra, tmp_path, died=3)
    events = await final_events(infra, event)
    async with infra.db.acquire() as conn:
        batch = await batches.get_batch(conn, event.batch_id)
    assert batch is not None
    assert (batch.status, batch.stage, batch.errors) == (
        BatchStatus.FAILED,
        "failed",
        [{"code": "INTERNAL_ERROR", "message": ABANDONED}],
    )
    # Nothing ran: the only event is the final one, and nothing was staged.
    assert [(e.status, e.message) for e in events] == [("FAILED", ABANDONED)]
    assert await infra.storage.list_keys(f"{event.tenant_id}/staging/") == []
    bus = infra.bus
    assert isinstance(bus, MemoryBus)
    for _ in range(500):  # the FAILED event goes out just before the message is dead-lettered
        if bus.dead_letters["period-validator"]:
            break
        await asyncio.sleep(0.02)
    dead = [BatchUploaded.model_validate_json(body) for body in bus.dead_letters["period-validator"]]
    assert [e.batch_id for e in dead] == [event.batch_id]  # once: not retried
    assert bus.queue_depth("period-validator") == 0
