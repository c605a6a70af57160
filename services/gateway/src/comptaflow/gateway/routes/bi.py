"""A tenant's read-only PostgreSQL login for Power BI (docs/api.md, BI credentials).

The login and its grants are `comptaflow.common.bi_logins`; this route hands out where to connect and the
password, once: it is in the answer (sent `Cache-Control: no-store`) and nowhere else, never in a log event.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Response

from comptaflow.common import bi_logins
from comptaflow.gateway.auth import CurrentPrincipal, State, require_admin, visible_tenant
from comptaflow.gateway.errors import ApiError, error_responses
from comptaflow.gateway.schemas import BiCredentialsOut

router = APIRouter(prefix="/api/v1", tags=["bi"])
log = structlog.get_logger("comptaflow.gateway.bi")

_DESCRIPTION = """
A PostgreSQL login for Power BI (or any PostgreSQL client) that reads the tenant's Pennylane schema
`pennylane_<tenant>` (its tables now and those a sync creates later) and nothing else: not the platform's
tables, not another tenant's schema; its sessions are read-only, 5 connections at most, statements of 5
minutes at most. The password is shown once: calling again gives the same `user` a new password, and the
old one stops working (sessions already open are not closed). Admin only.

`host` and `port` are `COMPTAFLOW_BI_HOST` and `COMPTAFLOW_BI_PORT` when set, else the database's.
409 `BI_LOGIN_CONFLICT` when a PostgreSQL role of that name exists that is not this tenant's login (or was
altered by hand); 503 `BI_LOGINS_UNAVAILABLE` when the database does not let the platform issue it safely
(the message says what to change).
"""


@router.post(
    "/tenants/{tenant_id}/bi-credentials",
    status_code=201,
    summary="Issue (or rotate) the tenant's read-only BI login",
    description=_DESCRIPTION,
    responses=error_responses(401, 403, 404, 409, 503),
)
async def issue_credentials(
    tenant_id: str, who: CurrentPrincipal, state: State, response: Response
) -> BiCredentialsOut:
    await visible_tenant(state, who, tenant_id)
    require_admin(who)
    try:
        async with state.infra.db.acquire() as conn, conn.transaction():
            login = await bi_logins.issue(conn, tenant_id)
    except bi_logins.BiLoginRefused as exc:
        log.warning("bi_login_refused", code=exc.code, reason=exc.message)
        status = 409 if exc.code == "BI_LOGIN_CONFLICT" else 503
        raise ApiError(status, exc.code, exc.message) from None
    settings = state.infra.settings
    assert settings.database_url is not None, "the gateway runs on a database"
    host, port = bi_logins.endpoint(
        settings.database_url.get_secret_value(), host=settings.bi_host, port=settings.bi_port
    )
    response.headers["Cache-Control"] = "no-store"
    log.info("bi_credentials_issued", user=login.user, rotated=not login.created)
    return BiCredentialsOut(
        host=host, port=port, database=login.database, user=login.user, password=login.password.get_secret_value()
    )
