"""The published AsyncAPI document matches the service declarations, and so does the broker topology."""

from __future__ import annotations

import uuid
from pathlib import Path

from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.contracts import (
    BatchKind,
    BatchUploaded,
    LoadRequested,
    Message,
    PennylaneSyncRequested,
    SyncMode,
    message_type,
)
from comptaflow.common.contracts.asyncapi import build_asyncapi, render
from comptaflow.common.registry import discover

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_docs_asyncapi_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/asyncapi.json is stale: run `uv run python -m comptaflow.common.contracts.asyncapi > docs/asyncapi.json`"
    )


def test_every_worker_queue_and_message_is_described() -> None:
    doc = build_asyncapi()
    assert doc["channels"]["period-validator"]["address"] == "comptaflow.period-validator"
    assert doc["channels"]["loader"]["address"] == "comptaflow.loader"
    assert doc["channels"]["pennylane-sync"]["address"] == "comptaflow.pennylane-sync"
    assert set(doc["components"]["messages"]) == {
        "BatchUploaded",
        "LoadRequested",
        "PennylaneSyncRequested",
        "StatusEvent",
    }
    assert set(doc["channels"]["pennylane-sync"]["messages"]) == {"PennylaneSyncRequested"}
    assert doc["components"]["messages"]["BatchUploaded"]["name"] == "batch.uploaded"
    assert set(doc["channels"]["loader"]["messages"]) == {"LoadRequested"}
    assert set(doc["channels"]["period-validator"]["messages"]) == {"BatchUploaded"}
    assert doc["operations"]["gateway.send"]["action"] == "send"
    assert doc["operations"]["period-validator.receive.period-validator"]["channel"] == {
        "$ref": "#/channels/period-validator"
    }


def _sample(model: type[Message]) -> Message:
    if model is BatchUploaded:
        return BatchUploaded(tenant_id="acme", batch_id=uuid.uuid4(), kind=BatchKind.FEC)
    if model is PennylaneSyncRequested:
        return PennylaneSyncRequested(tenant_id="acme", job_id=uuid.uuid4(), mode=SyncMode.FULL)
    assert model is LoadRequested, f"add a sample of {model.__name__}"
    return LoadRequested(tenant_id="acme", batch_id=uuid.uuid4())


async def test_each_queue_channel_lists_exactly_the_messages_the_bus_routes_to_it() -> None:
    """A document that names a message the queue is not bound to (or misses one it is) fails here: every
    message type is published on a bus declaring the registry's topology, and where it lands is compared
    with the channels that list it."""
    registry = discover()
    doc = build_asyncapi(registry)
    bus = MemoryBus(service="asyncapi-test", topology=registry.topology)
    await bus.connect()
    for model in registry.messages:
        before = {queue.name: bus.queue_depth(queue.name) for queue in registry.topology}
        await bus.publish(_sample(model))
        reached = {queue.name for queue in registry.topology if bus.queue_depth(queue.name) > before[queue.name]}
        described = {
            queue.name for queue in registry.topology if model.__name__ in doc["channels"][queue.name]["messages"]
        }
        assert reached == described, message_type(model)
        assert reached, f"{message_type(model)} reaches no queue"
    await bus.close()
