"""Accounting batches (docs/api.md, Batches): streaming upload, status, and the tenant's list (an extension)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query, Request
from starlette.requests import ClientDisconnect

from comptaflow.common import batches, outbox
from comptaflow.common.contracts import BatchUploaded
from comptaflow.common.metrics import BATCHES, UPLOAD_BYTES
from comptaflow.common.tokens import Principal
from comptaflow.gateway import cursors, upload
from comptaflow.gateway.admission import RETRY_AFTER_S, TooManyUploads
from comptaflow.gateway.auth import CurrentPrincipal, State, require_writer, visible_tenant
from comptaflow.gateway.errors import ApiError, error_responses, not_found, uuid_or_404
from comptaflow.gateway.schemas import BatchAccepted, BatchOut, BatchPage
from comptaflow.gateway.state import GatewayState

router = APIRouter(prefix="/api/v1", tags=["batches"])
log = structlog.get_logger("comptaflow.gateway.batches")

_UPLOAD_DESCRIPTION = f"""
Upload the files of one accounting batch as `multipart/form-data`. The body is streamed to object
storage as it arrives (never held whole), so send it in any order and any size up to the limit.

**Files** — either
- the five Excel exports (`.xlsx` or `.xls`), one per field: {", ".join(f"`{f}`" for f in upload.EXCEL_FIELDS)}; or
- one FEC text file (tab, `|`, `;` or `,` separated, header line with `JournalCode`) in the field `fec`.

**Options** (text fields)
- `auto_load`: `true` / `false` (default `false`) — load right after a successful validation;
- `period_start`, `period_end` (FEC only, both or neither): `YYYY-MM-DD`, the period the FEC covers.

Files are recognised by their content, not their name. Any problem → 422 with the error envelope and
nothing stored; `error.code` is one of `MISSING_FILE` (`details.missing` lists the fields),
`DUPLICATE_FIELD`, `UNKNOWN_FIELD`, `MIXED_FIELDS`, `EMPTY_FILE`, `NOT_EXCEL`, `NOT_FEC`,
`FILE_TOO_LARGE` (each file ≤ `COMPTAFLOW_MAX_UPLOAD_MB`), `INVALID_FIELD`, `BAD_MULTIPART`.

**Limits** — a body that stops arriving for `COMPTAFLOW_UPLOAD_IDLE_S` seconds (default 60, measured
between two chunks) → 408 `UPLOAD_TIMEOUT`, and the connection is closed. More uploads in flight than
`COMPTAFLOW_MAX_UPLOADS_PER_TENANT` (default 4) for the tenant, or `COMPTAFLOW_MAX_UPLOADS` (default 64)
in this gateway → 429 `TOO_MANY_UPLOADS` with `Retry-After` (seconds), before the body is read. In
both cases nothing is stored.

File names are kept for display only (`files[].filename`): NFC, without control or invisible
formatting characters, at most 255 characters (the extension kept).

The batch is then validated asynchronously: follow it with `GET /api/v1/batches/{{batch_id}}` or the
WebSocket `/api/v1/ws`.
"""

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        **{name: {"type": "string", "format": "binary"} for name in upload.FILE_FIELDS},
                        "auto_load": {"type": "string", "enum": ["true", "false"], "default": "false"},
                        "period_start": {"type": "string", "format": "date"},
                        "period_end": {"type": "string", "format": "date"},
                    },
                }
            }
        },
    }
}

DEFAULT_PAGE = 50
MAX_PAGE = 200


@router.post(
    "/tenants/{tenant_id}/batches",
    status_code=202,
    summary="Upload a batch (five Excel files or one FEC)",
    description=_UPLOAD_DESCRIPTION,
    openapi_extra=_UPLOAD_BODY,
    responses=error_responses(401, 403, 404, 408, 422, 429, 503),
)
async def upload_batch(tenant_id: str, request: Request, who: CurrentPrincipal, state: State) -> BatchAccepted:
    # Everything that can be refused without the body is refused before reading it.
    await visible_tenant(state, who, tenant_id)
    require_writer(who)
    try:
        boundary = upload.boundary_of(request.headers.get("content-type"))
        upload.check_content_length(request.headers.get("content-length"), state.infra.settings.max_upload_bytes)
    except upload.UploadRejected as exc:
        raise _rejected(exc) from None
    try:
        with state.uploads.claim(tenant_id):
            return await _receive(tenant_id, request, who, state, boundary)
    except TooManyUploads as exc:
        log.info("upload_refused_busy", code=exc.code, **exc.details)
        raise ApiError(429, exc.code, exc.message, exc.details, headers={"Retry-After": str(RETRY_AFTER_S)}) from None


async def _receive(
    tenant_id: str, request: Request, who: Principal, state: GatewayState, boundary: bytes
) -> BatchAccepted:
    """Stream the body to storage, then record the batch and its event in one transaction."""
    settings = state.infra.settings
    batch_id = uuid.uuid4()
    structlog.contextvars.bind_contextvars(batch_id=str(batch_id))
    # On a refusal we answer at once, without reading the rest of the body: uvicorn (httptools)
    # discards what the client still sends and keeps the connection, so the client reads the 422.
    chunks = request.stream()
    try:
        receiver = upload.BatchReceiver(  # refuses a boundary the parser cannot use (e.g. over 256 bytes)
            state.infra.storage,
            tenant_id=tenant_id,
            batch_id=batch_id,
            boundary=boundary,
            max_file_bytes=settings.max_upload_bytes,
            idle_s=settings.upload_idle_s,
        )
        received = await receiver.receive(chunks)
    except upload.UploadRejected as exc:
        raise _rejected(exc) from None
    except upload.UploadTimedOut as exc:
        # Left open, the connection would wait for the rest of the body: uvicorn discards it, and every
        # byte a client trickles cancels its keep-alive timer. The client is idle, so closing loses nothing.
        log.info("upload_timed_out", code=exc.code, reason=exc.message)
        raise ApiError(408, exc.code, exc.message, exc.details, headers={"Connection": "close"}) from None
    except ClientDisconnect:
        # The receiver has already removed what was stored; nobody is left to read the answer.
        log.info("upload_abandoned_by_client")
        raise ApiError(400, "CLIENT_DISCONNECTED", "the client went away during the upload") from None
    finally:
        await chunks.aclose()

    try:
        async with state.infra.db.acquire() as conn, conn.transaction():
            await batches.insert_batch(
                conn,
                batch_id=batch_id,
                tenant_id=tenant_id,
                kind=received.kind,
                files=received.files,
                auto_load=received.auto_load,
                created_by=who.sub,
                options=received.options,
            )
            event = BatchUploaded(
                tenant_id=tenant_id, batch_id=batch_id, kind=received.kind, auto_load=received.auto_load
            )
            await outbox.enqueue(conn, event)
    except BaseException:
        await receiver.discard()
        raise
    state.wake_relay()
    UPLOAD_BYTES.labels(received.kind.value).inc(received.total_bytes)
    BATCHES.labels(received.kind.value, "PENDING").inc()
    log.info("batch_uploaded", kind=received.kind.value, files=len(received.files), bytes=received.total_bytes)
    return BatchAccepted(batch_id=str(batch_id), tenant_id=tenant_id, kind=received.kind)


def _rejected(exc: upload.UploadRejected) -> ApiError:
    log.info("upload_rejected", code=exc.code, reason=exc.message)
    return ApiError(422, exc.code, exc.message, exc.details)


@router.get("/batches/{batch_id}", summary="A batch and its progress", responses=error_responses(401, 404))
async def get_batch(batch_id: str, who: CurrentPrincipal, state: State) -> BatchOut:
    parsed = uuid_or_404(batch_id, "batch")
    async with state.infra.db.acquire() as conn:
        batch = await batches.get_batch(conn, parsed)
    if batch is None or not who.can_see(batch.tenant_id):
        raise not_found("batch")
    return BatchOut.of(batch)


@router.get(
    "/tenants/{tenant_id}/batches",
    summary="A tenant's batches, newest first",
    responses=error_responses(401, 404, 422),
)
async def list_batches(
    tenant_id: str,
    who: CurrentPrincipal,
    state: State,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> BatchPage:
    await visible_tenant(state, who, tenant_id)
    before = cursors.decode(cursor) if cursor else None
    async with state.infra.db.acquire() as conn:
        found = await batches.list_batches(conn, tenant_id, limit=limit, before=before)
    next_cursor = cursors.encode(found[-1].created_at, found[-1].id) if len(found) == limit else None
    return BatchPage(items=[BatchOut.of(b) for b in found], next_cursor=next_cursor)
