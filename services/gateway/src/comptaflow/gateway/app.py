"""Composition root of the gateway: the FastAPI app, its routes, and one lifespan.

`create_app()` receives the process's connections (`Infra`, opened by the caller) and builds
everything else; the lifespan starts, then stops in reverse order, its background tasks:

    StatusHub    reads `comptaflow.status` once and fans events out to WebSocket clients
    OutboxRelay  publishes committed outbox rows (e.g. `batch.uploaded`) to the bus
    Sweeper      removes the files of long-FAILED batches (comptaflow.common.housekeeping), hourly
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI

from comptaflow.common.housekeeping import Sweeper
from comptaflow.common.infra import Infra
from comptaflow.common.outbox import OutboxRelay
from comptaflow.common.secrets import Keyring
from comptaflow.gateway.admission import UploadSlots
from comptaflow.gateway.errors import install_error_handlers
from comptaflow.gateway.observability import ObservabilityMiddleware, redact_server_logs
from comptaflow.gateway.routes import batches, bi, health, jobs, ledger, loads, pennylane, tenants, ws
from comptaflow.gateway.state import GatewayState
from comptaflow.gateway.status_hub import StatusHub

log = structlog.get_logger("comptaflow.gateway")

API_VERSION = "1.0.0"
_DESCRIPTION = """
Comptaflow's public API (contract v1). Every `/api/v1` route needs `Authorization: Bearer <JWT>`
(HS256; claims `sub`, `role` = admin | accountant | viewer, `tenants`, `exp`). A tenant the token does
not list answers 404, a write by a viewer 403. Every error has the body
`{"error": {"code": "UPPER_SNAKE", "message": "…", "details": {…}}}`.

Live progress: WebSocket `GET /api/v1/ws?token=JWT`, then send `{"subscribe": {"tenant_id": "…"}}` or
`{"subscribe": {"batch_id": "…"}}`; status events arrive as `{"type": "status", …}`.
"""


def create_app(infra: Infra, *, jwt_secret: str, relay: bool = True) -> FastAPI:
    """The gateway app. `relay=False` leaves relaying the outbox to another process."""
    if not jwt_secret:
        raise ValueError("the gateway needs a JWT secret (COMPTAFLOW_JWT_SECRET)")
    hub = StatusHub(infra.bus)
    outbox_relay = OutboxRelay(infra.db, infra.bus) if relay else None
    settings = infra.settings
    uploads = UploadSlots(per_tenant=settings.max_uploads_per_tenant, total=settings.max_uploads)
    # Incoming files of FAILED batches go after COMPTAFLOW_FAILED_RETENTION_DAYS (comptaflow.common.housekeeping).
    sweeper = Sweeper(infra.db, infra.storage, retention_days=settings.failed_retention_days)
    # Tenant secrets (a Pennylane token) are encrypted with COMPTAFLOW_SECRET_KEY, required by `serve` and `up`.
    keyring = Keyring.from_setting(settings.secret_key.get_secret_value()) if settings.secret_key else None
    state = GatewayState(
        infra=infra, jwt_secret=jwt_secret, hub=hub, relay=outbox_relay, uploads=uploads, keyring=keyring
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await hub.start()
            stack.push_async_callback(hub.stop)
            if outbox_relay is not None:
                await outbox_relay.start()
                stack.push_async_callback(outbox_relay.stop)
            await sweeper.start()
            stack.push_async_callback(sweeper.stop)
            log.info("gateway_started", relay=outbox_relay is not None)
            yield
            log.info("gateway_stopping")

    app = FastAPI(
        title="Comptaflow gateway",
        version=API_VERSION,
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.gateway = state
    redact_server_logs()
    install_error_handlers(app)
    app.add_middleware(ObservabilityMiddleware)
    app.include_router(health.router)
    app.include_router(tenants.router)
    app.include_router(batches.router)
    app.include_router(loads.router)
    app.include_router(ledger.router)
    app.include_router(jobs.router)
    app.include_router(pennylane.router)
    app.include_router(bi.router)
    app.include_router(ws.router)
    return app
