"""What the routes need from the composition root, reachable from any request or WebSocket."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from comptaflow.common.infra import Infra
from comptaflow.common.outbox import OutboxRelay
from comptaflow.common.secrets import Keyring
from comptaflow.gateway.admission import UploadSlots
from comptaflow.gateway.status_hub import StatusHub


@dataclass(frozen=True, slots=True)
class GatewayState:
    infra: Infra
    jwt_secret: str
    hub: StatusHub
    relay: OutboxRelay | None
    uploads: UploadSlots
    keyring: Keyring | None = None
    """The keys of the tenant secrets (COMPTAFLOW_SECRET_KEY); None: routes that store a secret answer 503."""

    def wake_relay(self) -> None:
        """Tell the relay a committed outbox row is waiting (it also polls and listens to NOTIFY)."""
        if self.relay is not None:
            self.relay.wake()


def gateway_state(connection: HTTPConnection) -> GatewayState:
    """FastAPI dependency (works for requests and WebSockets alike)."""
    state = connection.app.state.gateway
    assert isinstance(state, GatewayState)
    return state
