"""Tenants (docs/api.md, Tenants): admins create them; a token sees only the tenants it lists."""

from __future__ import annotations

import structlog
from fastapi import APIRouter

from comptaflow.common import tenants
from comptaflow.gateway.auth import CurrentPrincipal, State, require_admin, visible_tenant
from comptaflow.gateway.errors import ApiError, error_responses
from comptaflow.gateway.schemas import TenantIn, TenantList, TenantOut

router = APIRouter(prefix="/api/v1", tags=["tenants"])
log = structlog.get_logger("comptaflow.gateway.tenants")


@router.post(
    "/tenants",
    status_code=201,
    summary="Create a tenant (admin only)",
    responses=error_responses(401, 403, 409, 422),
)
async def create_tenant(body: TenantIn, who: CurrentPrincipal, state: State) -> TenantOut:
    require_admin(who)
    try:
        async with state.infra.db.acquire() as conn:
            tenant = await tenants.create_tenant(conn, body.id, body.name)
    except tenants.TenantExistsError:
        raise ApiError(409, "TENANT_EXISTS", f"tenant {body.id!r} already exists", {"id": body.id}) from None
    log.info("tenant_created", tenant_id=tenant.id)
    return TenantOut.of(tenant)


@router.get("/tenants", summary="The tenants this token may see", responses=error_responses(401))
async def list_tenants(who: CurrentPrincipal, state: State) -> TenantList:
    async with state.infra.db.acquire() as conn:
        found = await tenants.list_tenants(conn, None if who.all_tenants else sorted(who.tenants))
    return TenantList(items=[TenantOut.of(t) for t in found])


@router.get("/tenants/{tenant_id}", summary="One tenant", responses=error_responses(401, 404))
async def get_tenant(tenant_id: str, who: CurrentPrincipal, state: State) -> TenantOut:
    return TenantOut.of(await visible_tenant(state, who, tenant_id))
