"""Prometheus metrics shared by every service (one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES_HANDLED = Counter(
    "comptaflow_messages_handled_total",
    "Messages handled by a worker, by outcome (ack, requeue, dead_letter).",
    ["service", "queue", "outcome"],
    registry=REGISTRY,
)
MESSAGE_SECONDS = Histogram(
    "comptaflow_message_seconds",
    "Time spent handling one message.",
    ["service", "queue"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
MESSAGES_PUBLISHED = Counter(
    "comptaflow_messages_published_total",
    "Messages published (confirmed by the broker), by exchange.",
    ["exchange"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "comptaflow_outbox_pending",
    "Outbox rows not yet relayed to the broker at the last relay pass.",
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "comptaflow_http_requests_total",
    "HTTP requests served by the gateway.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "comptaflow_http_request_seconds",
    "HTTP request latency.",
    ["method", "route"],
    registry=REGISTRY,
)
UPLOAD_BYTES = Counter(
    "comptaflow_upload_bytes_total",
    "Bytes accepted by uploads, by file kind.",
    ["kind"],
    registry=REGISTRY,
)
BATCHES = Counter(
    "comptaflow_batches_total",
    "Batches reaching a status.",
    ["kind", "status"],
    registry=REGISTRY,
)
VALIDATION_SECONDS = Histogram(
    "comptaflow_validation_seconds",
    "Time to validate one batch.",
    ["kind"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
    registry=REGISTRY,
)
WEBSOCKET_CLIENTS = Gauge(
    "comptaflow_websocket_clients",
    "Open WebSocket connections.",
    registry=REGISTRY,
)
PENNYLANE_REQUESTS = Counter(
    "comptaflow_pennylane_requests_total",
    "Requests sent to the Pennylane API, by answer status (0: no answer).",
    ["status"],
    registry=REGISTRY,
)
PENNYLANE_TABLES = Counter(
    "comptaflow_pennylane_tables_total",
    "Pennylane tables synced, by table, mode and outcome (ok, failed).",
    ["table", "mode", "outcome"],
    registry=REGISTRY,
)
PENNYLANE_ROWS = Counter(
    "comptaflow_pennylane_rows_total",
    "Rows written by Pennylane syncs, by operation (inserted, updated, deleted).",
    ["operation"],
    registry=REGISTRY,
)


def render_metrics() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
