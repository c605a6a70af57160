"""No answer carries internal exception text (errors.py): an unexpected exception is a 500 INTERNAL_ERROR
with a fixed message, an unreachable dependency a 503, a 5xx HTTPException its status phrase; what went
wrong is in the logs."""

from __future__ import annotations

import uuid

import pytest
from starlette.exceptions import HTTPException
from structlog.testing import capture_logs

from tests.gateway.support import Gateway

pytestmark = pytest.mark.infra

SECRET_TEXT = "password=hunter2 host=db.internal:5432 /srv/comptaflow/secret.py"


def failing_with(exc: Exception) -> object:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise exc

    return broken


@pytest.mark.parametrize(
    ("exc", "status", "error"),
    [
        (
            RuntimeError(SECRET_TEXT),
            500,
            {"code": "INTERNAL_ERROR", "message": "internal error", "details": {}},
        ),
        (
            KeyError(SECRET_TEXT),
            500,
            {"code": "INTERNAL_ERROR", "message": "internal error", "details": {}},
        ),
        (
            HTTPException(500, detail=SECRET_TEXT),
            500,
            {"code": "INTERNAL_SERVER_ERROR", "message": "Internal Server Error", "details": {}},
        ),
        (
            ConnectionRefusedError(111, SECRET_TEXT),
            503,
            {
                "code": "SERVICE_UNAVAILABLE",
                "message": "a dependency of the gateway is unavailable, retry later",
                "details": {},
            },
        ),
    ],
    ids=["runtime-error", "key-error", "http-500-detail", "connection-refused"],
)
async def test_internal_exception_text_never_reaches_the_client(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, exc: Exception, status: int, error: dict[str, object]
) -> None:
    monkeypatch.setattr("comptaflow.gateway.routes.batches.batches.get_batch", failing_with(exc))
    with capture_logs() as logs:
        response = await gateway.client.get(f"/api/v1/batches/{uuid.uuid4()}", headers=gateway.auth("*"))
    assert response.status_code == status
    assert response.json() == {"error": error}
    assert "hunter2" not in response.text
    assert "db.internal" not in response.text
    assert "hunter2" in repr(logs)  # the operator sees what happened


async def test_a_boundary_the_parser_refuses_is_a_422_not_a_500(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    boundary = "b" * 300  # python-multipart takes at most 256 bytes
    response = await gateway.client.post(
        f"/api/v1/tenants/{tenant}/batches",
        content=f"--{boundary}\r\n".encode(),
        headers={**gateway.auth(tenant), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "BAD_MULTIPART"
    assert await gateway.stored_keys(tenant) == []
    assert await gateway.batch_count(tenant) == 0
