"""The gateway's declaration: the HTTP and WebSocket front; it publishes, through the outbox, `batch.uploaded`
(an upload) and `batch.load_requested` (a load or a restore asked for)."""

from comptaflow.common.contracts import BatchUploaded, LoadRequested
from comptaflow.common.service import ServiceSpec

SERVICE = ServiceSpec(
    name="gateway",
    role="http",
    publishes=(BatchUploaded, LoadRequested),
    factory="comptaflow.gateway.app:create_app",
    description="HTTP API and WebSocket: uploads, loads, reads, live progress.",
)
