"""The AsyncAPI 3.0 description of Comptaflow's messages, built from the service declarations themselves.

Every channel, binding and operation comes from the registered services (`comptaflow.common.registry`):
a worker queue's channel lists exactly the messages it is bound to (their routing keys), each service's
operations say what it receives and what it sends, so the document cannot describe a binding the broker
does not have. `docs/asyncapi.json` is this document for the installed services;
`tests/common/test_asyncapi.py` fails when it is stale (regenerate with
`uv run python -m comptaflow.common.contracts.asyncapi > docs/asyncapi.json`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from comptaflow.common.bus.base import DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE, STATUS_EXCHANGE
from comptaflow.common.contracts.v1 import StatusEvent, message_type
from comptaflow.common.registry import Registry, discover


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/messages/{name}"}


def build_asyncapi(registry: Registry | None = None) -> dict[str, Any]:
    registry = registry if registry is not None else discover()
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    events = registry.messages
    described: list[type[BaseModel]] = [*events, StatusEvent]
    for model in described:
        name = model.__name__
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
        messages[name] = {
            "name": "status" if model is StatusEvent else message_type(model),  # type: ignore[arg-type]  # every other model is a Message
            "title": name,
            "summary": (model.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
        }
    channels: dict[str, Any] = {
        "events": {
            "address": EVENTS_EXCHANGE,
            "description": "Topic exchange; the routing key is the message `type`.",
            "messages": {model.__name__: _ref(model.__name__) for model in events},
            "bindings": {
                "amqp": {"is": "routingKey", "exchange": {"name": EVENTS_EXCHANGE, "type": "topic", "durable": True}}
            },
        },
        "status": {
            "address": STATUS_EXCHANGE,
            "description": "Topic exchange; routing key `status.{tenant_id}.{batch_id|job_id}`.",
            "messages": {"StatusEvent": _ref("StatusEvent")},
            "bindings": {
                "amqp": {"is": "routingKey", "exchange": {"name": STATUS_EXCHANGE, "type": "topic", "durable": True}}
            },
        },
    }
    operations: dict[str, Any] = {}
    for spec in registry:
        for queue in spec.queues:
            channels[queue.name] = {
                "address": queue.queue_name,
                "description": f"Quorum queue of the {spec.name} service, bound to {', '.join(queue.routing_keys)}; "
                f"dead letters go through {DEAD_LETTER_EXCHANGE} to {queue.dead_letter_queue_name}.",
                "messages": {model.__name__: _ref(model.__name__) for model in queue.messages},
                "bindings": {"amqp": {"is": "queue", "queue": {"name": queue.queue_name, "durable": True}}},
            }
            operations[f"{spec.name}.receive.{queue.name}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{queue.name}"},
                "summary": spec.description or f"{spec.name} consumes {queue.queue_name}",
                "messages": [{"$ref": f"#/channels/{queue.name}/messages/{m.__name__}"} for m in queue.messages],
            }
        if spec.publishes:
            operations[f"{spec.name}.send"] = {
                "action": "send",
                "channel": {"$ref": "#/channels/events"},
                "summary": f"{spec.name} publishes through the outbox (committed with its state change)",
                "messages": [{"$ref": f"#/channels/events/messages/{m.__name__}"} for m in spec.publishes],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Comptaflow messages", "version": "1"},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render(registry: Registry | None = None) -> str:
    return json.dumps(build_asyncapi(registry), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
