"""Bearer-token authentication and tenant access (docs/api.md, Auth).

no/invalid/expired token       → 401 UNAUTHORIZED
a tenant the token does not list → 404 NOT_FOUND (existence is never revealed)
a write by a `viewer`          → 403 FORBIDDEN

Every route named after a tenant starts with `visible_tenant`: a tenant the token does not list and one
that does not exist get the same 404, so a token never learns which tenants exist.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from comptaflow.common import tenants
from comptaflow.common.tenants import Tenant
from comptaflow.common.tokens import InvalidTokenError, Principal, verify
from comptaflow.gateway.errors import forbidden, not_found, unauthorized
from comptaflow.gateway.state import GatewayState, gateway_state

_bearer = HTTPBearer(auto_error=False, description="JWT (HS256) with claims sub, role, tenants, exp")


def authenticate_token(secret: str, token: str | None) -> Principal:
    """The principal of a token; raises 401 `ApiError` for a missing or unusable one."""
    if not token:
        raise unauthorized()
    try:
        principal = verify(secret, token)
    except InvalidTokenError as exc:
        raise unauthorized() from exc
    structlog.contextvars.bind_contextvars(sub=principal.sub, role=principal.role.value)
    return principal


async def principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    state: Annotated[GatewayState, Depends(gateway_state)],
) -> Principal:
    return authenticate_token(state.jwt_secret, credentials.credentials if credentials else None)


def require_visible(who: Principal, tenant_id: str) -> None:
    """404 for a tenant the token does not list (the same answer as for a tenant that does not exist)."""
    if not who.can_see(tenant_id):
        raise not_found("tenant")
    structlog.contextvars.bind_contextvars(tenant_id=tenant_id)


async def visible_tenant(state: GatewayState, who: Principal, tenant_id: str) -> Tenant:
    """The tenant, if the token lists it and it exists; else 404 NOT_FOUND "tenant not found".

    The token is checked before the database is asked, so a tenant the token does not list is answered
    404 without a query (and whatever the state of the database).
    """
    require_visible(who, tenant_id)
    async with state.infra.db.acquire() as conn:
        tenant = await tenants.get_tenant(conn, tenant_id)
    if tenant is None:
        raise not_found("tenant")
    return tenant


def require_writer(who: Principal) -> None:
    if not who.can_write:
        raise forbidden("this token may only read")


def require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise forbidden("only an admin may do this")


CurrentPrincipal = Annotated[Principal, Depends(principal)]
State = Annotated[GatewayState, Depends(gateway_state)]
