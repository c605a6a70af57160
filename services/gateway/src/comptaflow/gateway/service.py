"""The gateway's declaration: the HTTP and WebSocket front; it publishes, through the outbox, `batch.uploaded`
(an upload), `batch.load_requested` (a load or a restore asked for) and `pennylane.sync_requested` (a sync)."""

from comptaflow.common.contracts import BatchUploaded, LoadRequested, PennylaneSyncRequested
from comptaflow.common.service import ServiceSpec

SERVICE = ServiceSpec(
    name="gateway",
    role="http",
    publishes=(BatchUploaded, LoadRequested, PennylaneSyncRequested),
    factory="comptaflow.gateway.app:create_app",
    description="HTTP API and WebSocket: uploads, loads, reads, live progress.",
)
