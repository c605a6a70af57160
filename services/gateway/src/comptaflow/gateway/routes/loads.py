"""Loading validated batches, the periods timeline and restoring backups (docs/api.md, Batches)."""

from __future__ import annotations

import structlog
from fastapi import APIRouter

from comptaflow.common import batches, loads
from comptaflow.gateway.auth import CurrentPrincipal, State, require_writer, visible_tenant
from comptaflow.gateway.errors import ApiError, error_responses, not_found, uuid_or_404
from comptaflow.gateway.load_requests import LoadRefused, request_load, request_restore
from comptaflow.gateway.schemas import LoadAccepted, PeriodList, PeriodOut

router = APIRouter(prefix="/api/v1", tags=["loads"])
log = structlog.get_logger("comptaflow.gateway.loads")

_LOAD_DESCRIPTION = """
Load a `VALIDATED` batch into the warehouse. The batch becomes `PROCESSING` (stage `queued`) at once
and a load request is queued for the loader; follow it with `GET /api/v1/batches/{batch_id}` or the
WebSocket. When the load completes, its data becomes the current data of its period in one step
(readers never see a partial load); a load of a period equal to an already loaded one keeps the
earlier load as a backup.

409 `BATCH_NOT_VALIDATED` unless the batch is `VALIDATED` (`details.status` says what it is);
409 `PERIOD_BUSY` while another batch of the tenant with an overlapping period is `PROCESSING`
(`details.batch_id` names it).
"""

_RESTORE_DESCRIPTION = """
Make an earlier load of a period (a backup listed by `GET /api/v1/tenants/{tenant_id}/periods`) the
current data of its period again; the load it replaces becomes a backup in turn. Answers at once with
the backup's batch; the swap is done by the loader (follow it on the WebSocket).

409 `PERIOD_BUSY` while a batch of the tenant with an overlapping period is `PROCESSING`.
"""


def _refused(exc: LoadRefused) -> ApiError:
    log.info("load_refused", code=exc.code, reason=exc.message)
    return ApiError(409, exc.code, exc.message, exc.details)


@router.post(
    "/batches/{batch_id}/load",
    status_code=202,
    summary="Load a validated batch",
    description=_LOAD_DESCRIPTION,
    responses=error_responses(401, 403, 404, 409, 503),
)
async def load_batch(batch_id: str, who: CurrentPrincipal, state: State) -> LoadAccepted:
    parsed = uuid_or_404(batch_id, "batch")
    async with state.infra.db.acquire() as conn:
        batch = await batches.get_batch(conn, parsed)
        if batch is None or not who.can_see(batch.tenant_id):
            raise not_found("batch")
        structlog.contextvars.bind_contextvars(tenant_id=batch.tenant_id, batch_id=str(parsed))
        require_writer(who)
        try:
            async with conn.transaction():
                await request_load(conn, batch)
        except LoadRefused as exc:
            raise _refused(exc) from None
    state.wake_relay()
    log.info("load_requested")
    return LoadAccepted(batch_id=str(parsed))


@router.get(
    "/tenants/{tenant_id}/periods",
    summary="The tenant's loaded periods and their backups",
    description="Every loaded period of the tenant, ordered by `period_start`, with the batch of its current "
    "load and its restorable backups (newest first).",
    responses=error_responses(401, 404, 503),
)
async def list_periods(tenant_id: str, who: CurrentPrincipal, state: State) -> PeriodList:
    await visible_tenant(state, who, tenant_id)
    async with state.infra.db.acquire() as conn:
        periods = await loads.list_periods(conn, tenant_id)
    return PeriodList(items=[PeriodOut.of(p) for p in periods])


@router.post(
    "/backups/{backup_id}/restore",
    status_code=202,
    summary="Restore a backup as the current data of its period",
    description=_RESTORE_DESCRIPTION,
    responses=error_responses(401, 403, 404, 409, 503),
)
async def restore_backup(backup_id: str, who: CurrentPrincipal, state: State) -> LoadAccepted:
    parsed = uuid_or_404(backup_id, "backup")
    async with state.infra.db.acquire() as conn:
        backup = await loads.get_backup(conn, parsed)
        if backup is None or not who.can_see(backup.tenant_id):
            raise not_found("backup")
        structlog.contextvars.bind_contextvars(tenant_id=backup.tenant_id, batch_id=str(backup.batch_id))
        require_writer(who)
        try:
            async with conn.transaction():
                ticket = await request_restore(conn, parsed)
        except LoadRefused as exc:
            raise _refused(exc) from None
    if ticket is None:
        raise not_found("backup")
    state.wake_relay()
    log.info("restore_requested", backup_id=str(parsed))
    return LoadAccepted(batch_id=str(ticket.batch_id))
