"""Probes and metrics (docs/api.md, Running it): `/healthz` (live), `/readyz` (dependencies reachable), `/metrics`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from comptaflow.common.metrics import render_metrics
from comptaflow.gateway.auth import State
from comptaflow.gateway.errors import envelope, error_responses

router = APIRouter(tags=["operations"])

READINESS_TIMEOUT = 10.0


@router.get("/healthz", summary="Liveness probe")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness probe: 200 when PostgreSQL, the bus and object storage answer",
    responses={200: {"description": '{"status": "ok", "checks": {...}}'}, **error_responses(503)},
)
async def readyz(state: State) -> JSONResponse:
    try:
        checks: dict[str, Any] = await asyncio.wait_for(state.infra.readiness(), timeout=READINESS_TIMEOUT)
    except TimeoutError:
        checks = {"timeout": False}
    if checks and all(checks.values()):
        return JSONResponse({"status": "ok", "checks": checks})
    failing = sorted(name for name, ok in checks.items() if not ok)
    body = envelope("NOT_READY", "unavailable: " + ", ".join(failing), {"checks": checks})
    # `status`/`checks` at the top level too, as the workers' probe answers.
    return JSONResponse({**body, "status": "unavailable", "checks": checks}, status_code=503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics() -> Response:
    data, content_type = render_metrics()
    return Response(content=data, media_type=content_type)
