"""Pennylane sync (docs/api.md, Pennylane): a tenant's connection, its syncs and the state of its tables.

    PUT  /tenants/{tenant_id}/pennylane         the token is checked with `GET /me`, then stored encrypted
    GET  /tenants/{tenant_id}/pennylane         the connection, never the token
    POST /tenants/{tenant_id}/pennylane/sync    a `pennylane.sync` job and its message, committed together
    GET  /tenants/{tenant_id}/pennylane/state   one entry per table the sync keeps

What Pennylane answers to the check becomes (`comptaflow.common.pennylane.api` raises):

    Unauthorized, Forbidden                        → 422 PENNYLANE_TOKEN_REJECTED
    Unavailable, or no answer within CHECK_TIMEOUT_S → 502 PENNYLANE_UNAVAILABLE
    any other PennylaneError (not the API's `/me`)  → 502 PENNYLANE_BAD_RESPONSE

The token is in no answer, no error message and no log event: it is a `SecretStr` from the request body
to the encrypted row, unwrapped only in the client's `Authorization` header. Pennylane's own error texts are
not repeated either (a base URL can point anywhere, and its answer could echo what it was sent).
"""

from __future__ import annotations

import asyncio
from typing import Final

import structlog
from fastapi import APIRouter

from comptaflow.common import jobs, outbox
from comptaflow.common.contracts import PennylaneSyncRequested
from comptaflow.common.errors import NotFound
from comptaflow.common.pennylane import api, connections, tables
from comptaflow.common.pennylane.budget import PostgresBudget
from comptaflow.common.secrets import Keyring
from comptaflow.gateway.auth import CurrentPrincipal, State, require_writer, visible_tenant
from comptaflow.gateway.errors import ApiError, error_responses, not_found
from comptaflow.gateway.schemas import (
    JobAccepted,
    PennylaneConnectionIn,
    PennylaneConnectionOut,
    PennylaneNotConfigured,
    PennylaneStateOut,
    PennylaneSyncIn,
    PennylaneTableOut,
)
from comptaflow.gateway.state import GatewayState

router = APIRouter(prefix="/api/v1", tags=["pennylane"])
log = structlog.get_logger("comptaflow.gateway.pennylane")

SYNC_KIND: Final = "pennylane.sync"
CHECK_TIMEOUT_S: Final = 20.0
"""The whole `/me` check, retries and the wait for the token's request budget included."""
# A person waits for the check: fewer, shorter retries than a sync's.
_CHECK_RETRY: Final = api.RetryPolicy(
    attempts=3, throttled_attempts=2, backoff_s=0.25, backoff_max_s=2.0, retry_after_max_s=5.0
)

_PUT_DESCRIPTION = """
Connect the tenant to its Pennylane company (Company API v2). The token is checked first with
`GET {base_url}/me`; only a token Pennylane accepts is stored, encrypted (a refused one changes nothing:
an earlier connection stays as it was). The token is never returned. The answer is the connection, as
`GET` gives it, with `missing_scopes`: for each table the token cannot read, the scopes it lacks (those
tables are reported FAILED by a sync, the others are synced).

A PUT replaces the whole connection: `base_url` omitted is Pennylane's
(`https://app.pennylane.com/api/external/v2`), `enabled` omitted is `true`.

422 `VALIDATION_ERROR` for a `base_url` that is not http(s), or holds credentials, a query or a fragment;
422 `PENNYLANE_TOKEN_REJECTED` when Pennylane refuses the token (401 or 403 to `/me`, in `details.pennylane_status`);
502 `PENNYLANE_UNAVAILABLE` when Pennylane cannot be reached or keeps failing (within 20 s);
502 `PENNYLANE_BAD_RESPONSE` when `base_url` does not answer `/me` as the Pennylane API does.
"""

_SYNC_DESCRIPTION = """
Start a sync of the tenant's Pennylane company into its PostgreSQL schema `pennylane_<tenant>`: answers at
once with the job (kind `pennylane.sync`); follow it with `GET /api/v1/jobs/{job_id}` or the WebSocket.
`incremental` applies the changes since each table's checkpoint; `full` lists every table whole again
(and exports the FEC). `tables` limits the sync to those tables (default: all).

422 `UNKNOWN_TABLE` for a table the sync does not keep (`details.tables` names them, `details.known` lists
the others); 409 `PENNYLANE_NOT_CONFIGURED` before a `PUT …/pennylane`; 409 `PENNYLANE_DISABLED` while the
connection is disabled.
"""

_STATE_DESCRIPTION = """
One entry per table the sync keeps, in catalogue order. `status` is `NEVER_SYNCED` until a sync considers
the table, then `RUNNING`, `SUCCEEDED` or `FAILED` (the last sync's outcome; `error` says why it failed).
`last_synced_at`, `cursor_at` and `rows` are those of the last successful sync (null, null and 0 before
one). A table the token lacks scopes for names them in `missing_scopes` and, unless its last sync failed
for another reason, in `error`.
"""


def _keyring(state: GatewayState) -> Keyring:
    if state.keyring is None:
        log.error("secret_key_missing")
        raise ApiError(
            503,
            "SERVICE_UNAVAILABLE",
            "a dependency of the gateway is unavailable, retry later",
            headers={"Retry-After": "5"},
        )
    return state.keyring


async def _check_token(state: GatewayState, base_url: str, body: PennylaneConnectionIn) -> api.Me:
    """Pennylane's `/me` for the token, or the ApiError its answer calls for."""
    budget = PostgresBudget(state.infra.db, connections.budget_key(body.api_token))
    try:
        async with (
            asyncio.timeout(CHECK_TIMEOUT_S),
            api.PennylaneClient(base_url, body.api_token, budget=budget, timeout=10.0, retry=_CHECK_RETRY) as client,
        ):
            return await client.me()
    except (api.Unauthorized, api.Forbidden) as exc:
        log.info("pennylane_token_rejected", pennylane_status=exc.status)
        raise ApiError(
            422,
            "PENNYLANE_TOKEN_REJECTED",
            f"Pennylane refused the token ({exc.status} to GET /me): nothing was stored",
            {"pennylane_status": exc.status},
        ) from None
    except (api.Unavailable, TimeoutError) as exc:
        status = exc.status if isinstance(exc, api.Unavailable) else None
        log.warning("pennylane_unavailable", error=type(exc).__name__, pennylane_status=status)
        raise ApiError(
            502,
            "PENNYLANE_UNAVAILABLE",
            "Pennylane could not be reached or kept failing; nothing was stored, retry later",
            {"pennylane_status": status},
        ) from None
    except api.PennylaneError as exc:
        log.warning("pennylane_bad_response", error=type(exc).__name__, pennylane_status=exc.status)
        raise ApiError(
            502,
            "PENNYLANE_BAD_RESPONSE",
            "base_url did not answer GET /me as the Pennylane API does (check base_url); nothing was stored",
            {"pennylane_status": exc.status},
        ) from None


@router.put(
    "/tenants/{tenant_id}/pennylane",
    summary="Connect the tenant to Pennylane (the token is checked, then stored encrypted)",
    description=_PUT_DESCRIPTION,
    responses=error_responses(401, 403, 404, 422, 502, 503),
)
async def put_connection(
    tenant_id: str, body: PennylaneConnectionIn, who: CurrentPrincipal, state: State
) -> PennylaneConnectionOut:
    await visible_tenant(state, who, tenant_id)
    require_writer(who)
    keyring = _keyring(state)
    base_url = body.base_url or connections.DEFAULT_BASE_URL
    me = await _check_token(state, base_url, body)
    try:
        async with state.infra.db.acquire() as conn, conn.transaction():
            connection = await connections.put_connection(
                conn,
                keyring,
                tenant_id,
                token=body.api_token,
                base_url=base_url,
                enabled=body.enabled,
                scopes=me.scopes,
                company_id=me.company_id,
                company_name=me.company_name,
            )
    except NotFound:  # the tenant was deleted meanwhile
        raise not_found("tenant") from None
    log.info("pennylane_connected", base_url=base_url, enabled=body.enabled, scopes=len(me.scopes))
    return PennylaneConnectionOut.of(connection)


@router.get(
    "/tenants/{tenant_id}/pennylane",
    summary="The tenant's Pennylane connection (never the token)",
    description='`{"configured": false}` until a `PUT`; then the connection, with `missing_scopes` as the PUT '
    "answered it (the scopes are those Pennylane gave at the PUT or at the start of the latest sync).",
    responses=error_responses(401, 404, 503),
)
async def get_connection(
    tenant_id: str, who: CurrentPrincipal, state: State
) -> PennylaneConnectionOut | PennylaneNotConfigured:
    await visible_tenant(state, who, tenant_id)
    async with state.infra.db.acquire() as conn:
        connection = await connections.get_connection(conn, tenant_id)
    return PennylaneNotConfigured() if connection is None else PennylaneConnectionOut.of(connection)


@router.post(
    "/tenants/{tenant_id}/pennylane/sync",
    status_code=202,
    summary="Start a Pennylane sync (a job)",
    description=_SYNC_DESCRIPTION,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
async def start_sync(tenant_id: str, body: PennylaneSyncIn, who: CurrentPrincipal, state: State) -> JobAccepted:
    await visible_tenant(state, who, tenant_id)
    require_writer(who)
    try:
        chosen = tables.select(body.tables)
    except tables.UnknownTable as exc:
        raise ApiError(
            422, "UNKNOWN_TABLE", str(exc), {"tables": list(exc.names), "known": list(tables.NAMES)}
        ) from None
    names = None if body.tables is None else tuple(t.name for t in chosen)
    async with state.infra.db.acquire() as conn, conn.transaction():
        connection = await connections.get_connection(conn, tenant_id)
        if connection is None:
            raise ApiError(
                409, "PENNYLANE_NOT_CONFIGURED", "the tenant has no Pennylane connection: PUT …/pennylane first"
            )
        if not connection.enabled:
            raise ApiError(409, "PENNYLANE_DISABLED", "the tenant's Pennylane connection is disabled")
        job, _ = await jobs.create_job(
            conn, tenant_id, SYNC_KIND, {"mode": body.mode.value, "tables": None if names is None else list(names)}
        )
        await outbox.enqueue(
            conn, PennylaneSyncRequested(tenant_id=tenant_id, job_id=job.id, mode=body.mode, tables=names)
        )
    state.wake_relay()
    structlog.contextvars.bind_contextvars(job_id=str(job.id))
    log.info("pennylane_sync_requested", mode=body.mode.value, tables=len(names) if names else "all")
    return JobAccepted(job_id=str(job.id))


@router.get(
    "/tenants/{tenant_id}/pennylane/state",
    summary="The state of each Pennylane table of the tenant",
    description=_STATE_DESCRIPTION,
    responses=error_responses(401, 404, 503),
)
async def sync_state(tenant_id: str, who: CurrentPrincipal, state: State) -> PennylaneStateOut:
    await visible_tenant(state, who, tenant_id)
    async with state.infra.db.acquire() as conn:
        connection = await connections.get_connection(conn, tenant_id)
        states = await connections.table_states(conn, tenant_id)
    lacking = {} if connection is None else tables.missing_scopes(tables.TABLES, connection.scopes)
    return PennylaneStateOut(
        tables=[PennylaneTableOut.of(t.name, states.get(t.name), lacking.get(t.name, ())) for t in tables.TABLES]
    )
