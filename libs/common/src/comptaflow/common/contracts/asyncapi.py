"""The AsyncAPI 3.0 description of Comptaflow's messages, built from the contracts themselves.

`docs/asyncapi.json` is this document; `tests/common/test_asyncapi.py` fails when it is stale
(regenerate with `uv run python -m comptaflow.common.contracts.asyncapi > docs/asyncapi.json`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from comptaflow.common.bus.base import DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE, STATUS_EXCHANGE, TOPOLOGY
from comptaflow.common.contracts.v1 import BatchUploaded, BatchValidated, LoadRequested, StatusEvent

_EVENTS: dict[str, type[BaseModel]] = {
    "batch.uploaded": BatchUploaded,
    "batch.validated": BatchValidated,
    "batch.load_requested": LoadRequested,
}


def build_asyncapi() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    described: list[tuple[str, type[BaseModel]]] = [*_EVENTS.items(), ("status", StatusEvent)]
    for key, model in described:
        name = model.__name__
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
        messages[name] = {
            "name": key,
            "title": name,
            "summary": (model.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
        }
    channels: dict[str, Any] = {
        "events": {
            "address": EVENTS_EXCHANGE,
            "description": "Topic exchange; the routing key is the message `type`.",
            "messages": {
                m: {"$ref": f"#/components/messages/{m}"} for m in ("BatchUploaded", "BatchValidated", "LoadRequested")
            },
            "bindings": {
                "amqp": {"is": "routingKey", "exchange": {"name": EVENTS_EXCHANGE, "type": "topic", "durable": True}}
            },
        },
        "status": {
            "address": STATUS_EXCHANGE,
            "description": "Topic exchange; routing key `status.{tenant_id}.{batch_id|job_id}`.",
            "messages": {"StatusEvent": {"$ref": "#/components/messages/StatusEvent"}},
            "bindings": {
                "amqp": {"is": "routingKey", "exchange": {"name": STATUS_EXCHANGE, "type": "topic", "durable": True}}
            },
        },
    }
    for worker in TOPOLOGY:
        channels[worker.name] = {
            "address": worker.queue_name,
            "description": f"Quorum queue of the {worker.name} worker, bound to {', '.join(worker.routing_keys)}; "
            f"dead letters go through {DEAD_LETTER_EXCHANGE} to {worker.dead_letter_queue_name}.",
            "messages": {"BatchUploaded": {"$ref": "#/components/messages/BatchUploaded"}},
            "bindings": {"amqp": {"is": "queue", "queue": {"name": worker.queue_name, "durable": True}}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Comptaflow messages", "version": "1"},
        "defaultContentType": "application/json",
        "channels": channels,
        "components": {"messages": messages, "schemas": schemas},
    }


def render() -> str:
    return json.dumps(build_asyncapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
