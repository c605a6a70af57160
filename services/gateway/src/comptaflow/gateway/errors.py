"""The error envelope and the exception handlers that produce it (docs/api.md, Errors).

Every error the gateway answers has the same body, whoever raised it (a route, FastAPI's request
validation, Starlette's routing, an unreachable dependency):

    {"error": {"code": "UPPER_SNAKE", "message": "human text", "details": {...}}}

    ApiError               — raised by routes and dependencies with a status and a code
    RequestValidationError — FastAPI's 422                       → VALIDATION_ERROR
    HTTPException          — Starlette's 404/405 for unknown routes → NOT_FOUND, METHOD_NOT_ALLOWED, …
    TransientError (DependencyUnavailable: a database, broker or store that did not answer; a database
    transaction that lost a race, `db.DatabaseConflict`) and lost connections (OSError) → 503 SERVICE_UNAVAILABLE
    anything else                                                → 500 INTERNAL_ERROR (logged)

No answer carries the text of an exception the gateway did not write for the client: it can hold SQL,
paths, hosts or secrets. Unexpected exceptions, unavailable dependencies and 5xx HTTPExceptions are
answered with a fixed message; what went wrong is logged (type, text, traceback) for the operator.
"""

from __future__ import annotations

import http
import uuid
from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from comptaflow.common.db import CONNECTION_ERRORS
from comptaflow.common.errors import TransientError

log = structlog.get_logger("comptaflow.gateway")


class ApiError(Exception):
    """An error answered to the client as it is."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})


class Refusal(Exception):
    """A request the domain refuses, with the code the client sees; routes choose its HTTP status."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


def unauthorized(message: str = "missing, invalid or expired bearer token") -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "FORBIDDEN", message)


def not_found(what: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} not found")


def uuid_or_404(value: str, what: str) -> uuid.UUID:
    """A path id; one that is not a UUID names nothing, so it is a 404 like an unknown one."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found(what) from None


def envelope(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": dict(details or {})}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(envelope(code, message, details), status_code=status, headers=dict(headers or {}))


# The OpenAPI description of the envelope, referenced by every route's error responses.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "example": "NOT_FOUND"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each listed status documented with the envelope."""
    return {
        status: {
            "description": http.HTTPStatus(status).phrase,
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
        for status in statuses
    }


def _code_for_status(status: int) -> str:
    try:
        return http.HTTPStatus(status).name
    except ValueError:
        return "HTTP_ERROR"


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, headers=exc.headers)


async def _http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _code_for_status(exc.status_code)
    phrase = _phrase(exc.status_code)
    if exc.status_code >= 500:  # a server-side failure: its detail is for the logs
        log.error("http_exception", status=exc.status_code, reason=str(exc.detail))
        message = phrase
    else:
        message = exc.detail if isinstance(exc.detail, str) else phrase
    return error_response(exc.status_code, code, message, headers=exc.headers)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", "")), "type": err.get("type")}
        for err in exc.errors()
    ]
    return error_response(422, "VALIDATION_ERROR", "the request is not valid", {"errors": errors})


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("dependency_unavailable", error=type(exc).__name__, reason=str(exc))
    return error_response(
        503,
        "SERVICE_UNAVAILABLE",
        "a dependency of the gateway is unavailable, retry later",
        headers={"Retry-After": "5"},
    )


async def _internal(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_exception", error=type(exc).__name__, exc_info=exc)
    return error_response(500, "INTERNAL_ERROR", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(TransientError, _unavailable)
    for exc_type in CONNECTION_ERRORS:
        if issubclass(exc_type, Exception):
            app.add_exception_handler(exc_type, _unavailable)
    app.add_exception_handler(Exception, _internal)
