"""The ASGI app: the API (`routes`), the control plane (`admin`), the signed export files, and the gate
every API request passes (rate limit, injected faults, request log, `ratelimit-*` headers)."""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from comptaflow.fakes.pennylane.admin import admin_router
from comptaflow.fakes.pennylane.faults import Fault
from comptaflow.fakes.pennylane.mutations import AdminError
from comptaflow.fakes.pennylane.query import ApiError
from comptaflow.fakes.pennylane.resources import API_PREFIX
from comptaflow.fakes.pennylane.routes import api_router, bearer

if TYPE_CHECKING:
    from comptaflow.fakes.pennylane.fake import FakePennylane

Next = Callable[[Request], Awaitable[Response]]


def _fault_response(fault: Fault) -> Response:
    status = fault.status
    if status == 429:
        return PlainTextResponse("Rate limit exceeded. Please retry in 1 seconds.", 429, headers={"retry-after": "1"})
    if status >= 500:
        return Response(status_code=status)
    message = "The access token is invalid" if status == 401 else HTTPStatus(status).phrase
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def _corrupt(response: Response, fault: Fault) -> Response:
    chunks = [chunk async for chunk in response.body_iterator]  # type: ignore[attr-defined]
    body = b"".join(chunk if isinstance(chunk, bytes) else chunk.encode() for chunk in chunks)
    if fault.kind == "malformed":
        body = body[: len(body) // 2]
    else:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            targets = parsed["items"] if isinstance(parsed.get("items"), list) else [parsed]
            for item in targets:
                if isinstance(item, dict):
                    item.pop(fault.key, None)
            body = json.dumps(parsed).encode()
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
    return Response(body, status_code=response.status_code, headers=headers, media_type="application/json")


def build_app(fake: FakePennylane) -> FastAPI:
    app = FastAPI(title="Fake Pennylane Company API v2", openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(api_router(fake))
    app.include_router(admin_router(fake))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return JSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(AdminError)
    async def admin_error(request: Request, exc: AdminError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith(API_PREFIX):
            message = "Not Found" if exc.status_code == 404 else HTTPStatus(exc.status_code).phrase
            return JSONResponse({"error": message, "status": exc.status_code}, status_code=exc.status_code)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/public/exports/{signature}/{filename}")
    async def download(signature: str, filename: str) -> Response:
        with fake.lock:
            export, expired = fake.exports.download(signature)
        if export is None or export.content is None or filename != export.filename:
            return PlainTextResponse("Not Found", 404)
        if expired:
            return PlainTextResponse("This link has expired", 403)
        disposition = f'attachment; filename="{export.filename}"'
        return Response(export.content, media_type=export.media_type, headers={"content-disposition": disposition})

    @app.middleware("http")
    async def gate(request: Request, call_next: Next) -> Response:
        path = request.url.path
        if not path.startswith(API_PREFIX):
            return await call_next(request)
        token = bearer(request)
        decision = fake.limiter.hit(token or "")
        response: Response
        if not decision.allowed:
            response = PlainTextResponse(decision.message(), 429, headers=decision.headers())
        else:
            if fake.faults.latency_ms:
                await asyncio.sleep(fake.faults.latency_ms / 1000)
            fault = fake.faults.take(path)
            if fault is not None and fault.kind == "latency":
                await asyncio.sleep(fault.latency_s)
            if fault is not None and fault.kind == "status":
                response = _fault_response(fault)
            else:
                response = await call_next(request)
                if fault is not None and fault.kind in ("malformed", "drop_key"):
                    response = await _corrupt(response, fault)
            for name, value in decision.headers().items():
                response.headers.setdefault(name, value)
        # HTTP's `Date` is the server's clock: the fake's, moved by `/__admin/clock/advance`.
        response.headers["date"] = email.utils.format_datetime(fake.clock.now(), usegmt=True)
        query: dict[str, Any] = dict(request.query_params)
        fake.traffic.record(
            method=request.method,
            path=path,
            query=query,
            status=response.status_code,
            token=token,
            at=datetime.now(UTC),
        )
        return response

    return app
