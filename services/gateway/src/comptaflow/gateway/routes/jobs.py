"""Jobs (docs/api.md, Jobs): work that is not an accounting batch (a Pennylane sync, a payroll import, a refresh).

Read-only here: the routes that start a job belong to what it does (`POST …/pennylane/sync` → `job_id`).
Isolation is the batches': a job of a tenant the token does not list is a 404, like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from comptaflow.common import jobs
from comptaflow.common.contracts import JobStatus

# The keyset cursor of the batches' list, (created_at, id) of the last item: the same order here.
from comptaflow.gateway import cursors
from comptaflow.gateway.auth import CurrentPrincipal, State, visible_tenant
from comptaflow.gateway.errors import error_responses, not_found, uuid_or_404
from comptaflow.gateway.schemas import JobOut, JobPage

router = APIRouter(prefix="/api/v1", tags=["jobs"])

DEFAULT_PAGE = 50
MAX_PAGE = 200

_LIST_DESCRIPTION = f"""
A tenant's jobs, newest first, optionally of one `kind` (exact, e.g. `pennylane.sync`) and/or one
`status`. Pages of `limit` jobs (default {DEFAULT_PAGE}, at most {MAX_PAGE}); pass `next_cursor` back as
`cursor` for the next page with the same filters; `next_cursor` is null on the last page.

422 `VALIDATION_ERROR` for a status that is not PENDING, RUNNING, SUCCEEDED or FAILED, or a bad limit;
422 `INVALID_CURSOR` for a cursor this API did not return.
"""


@router.get(
    "/jobs/{job_id}",
    summary="A job and its progress",
    description="Status `PENDING → RUNNING → SUCCEEDED`, or `FAILED` (with `errors`). Live: WebSocket `/api/v1/ws`.",
    responses=error_responses(401, 404),
)
async def get_job(job_id: str, who: CurrentPrincipal, state: State) -> JobOut:
    parsed = uuid_or_404(job_id, "job")
    async with state.infra.db.acquire() as conn:
        job = await jobs.get_job(conn, parsed)
    if job is None or not who.can_see(job.tenant_id):
        raise not_found("job")
    return JobOut.of(job)


@router.get(
    "/tenants/{tenant_id}/jobs",
    summary="A tenant's jobs, newest first (cursor pagination)",
    description=_LIST_DESCRIPTION,
    responses=error_responses(401, 404, 422),
)
async def list_jobs(
    tenant_id: str,
    *,
    who: CurrentPrincipal,
    state: State,
    kind: Annotated[str | None, Query(description="only jobs of this kind", max_length=64)] = None,
    status: Annotated[JobStatus | None, Query(description="only jobs in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="jobs per page")] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> JobPage:
    await visible_tenant(state, who, tenant_id)
    after = cursors.decode(cursor) if cursor is not None else None
    async with state.infra.db.acquire() as conn:
        # One job more than the page tells whether another page follows (no empty last page).
        found = await jobs.list_jobs(conn, tenant_id, kind=kind, status=status, limit=limit + 1, after=after)
    page = found[:limit]
    next_cursor = cursors.encode(page[-1].created_at, page[-1].id) if len(found) > limit else None
    return JobPage(items=[JobOut.of(j) for j in page], next_cursor=next_cursor)
