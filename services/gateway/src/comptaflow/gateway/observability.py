"""Request ids, access logs and HTTP metrics, as a pure ASGI middleware (it never touches the body).

Metrics are labelled by route template (`/api/v1/batches/{batch_id}`), never by raw path, so their
cardinality stays bounded. Only the path is logged: never the query string (the WebSocket token
travels there) nor any header.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from comptaflow.common.metrics import HTTP_REQUESTS, HTTP_SECONDS

log = structlog.get_logger("comptaflow.gateway.http")

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # probes: logged at debug level


_TOKEN_IN_QUERY = re.compile(r"(?i)(\btoken=)[^&\s\"']+")
# uvicorn logs WebSocket handshakes with their query string ("WebSocket /api/v1/ws?token=…" [accepted]).
_SERVER_LOGGERS = ("uvicorn.error", "uvicorn.access")


class TokenQueryRedactor(logging.Filter):
    """Masks `token=…` in stdlib log records, so a WebSocket token never reaches the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message.lower():
            record.msg = _TOKEN_IN_QUERY.sub(r"\1***", message)
            record.args = ()
        return True


def redact_server_logs() -> None:
    """Install the redactor on uvicorn's loggers (idempotent)."""
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenQueryRedactor) for f in logger.filters):
            logger.addFilter(TokenQueryRedactor())


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and _VALID_REQUEST_ID.fullmatch(value):
            return str(value.decode("ascii"))
    return uuid.uuid4().hex


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        status = 500
        started = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"]
            route = _route_template(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_SECONDS.labels(method, route).observe(elapsed)
            emit = log.debug if scope["path"] in _QUIET_PATHS else log.info
            emit(
                "http_request",
                method=method,
                route=route,
                path=scope["path"],
                status=status,
                ms=round(elapsed * 1000, 1),
            )
