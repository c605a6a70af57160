"""Probes, metrics, OpenAPI, request ids and logs (docs/api.md: Running it, Errors)."""

from __future__ import annotations

import re
import uuid

import pytest
import structlog
from structlog.testing import capture_logs

from comptaflow.common.logging import redact_secrets
from comptaflow.common.tokens import Role
from tests.gateway.support import Gateway, fec_file

pytestmark = pytest.mark.infra


async def test_healthz(gateway: Gateway) -> None:
    response = await gateway.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_follows_the_dependencies(gateway: Gateway) -> None:
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": True, "bus": True, "storage": True}}

    await gateway.infra.bus.close()
    try:
        unready = await gateway.client.get("/readyz")
    finally:
        await gateway.infra.bus.connect()
    assert unready.status_code == 503
    body = unready.json()
    assert body["error"]["code"] == "NOT_READY"
    assert body["error"]["details"] == {"checks": {"database": True, "bus": False, "storage": True}}
    assert body["checks"] == {"database": True, "bus": False, "storage": True}


async def test_metrics_count_requests_by_route_template(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    batch_id = (await gateway.upload(tenant, fec_file())).json()["batch_id"]
    await gateway.client.get(f"/api/v1/batches/{batch_id}", headers=gateway.auth(tenant))
    response = await gateway.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert re.search(
        r'comptaflow_http_requests_total\{method="GET",route="/api/v1/batches/\{batch_id\}",status="200"\} \d', text
    )
    assert batch_id not in text  # raw paths never become labels
    assert 'comptaflow_upload_bytes_total{kind="fec"}' in text
    assert "comptaflow_websocket_clients" in text


async def test_openapi_documents_the_routes_and_the_multipart_fields(gateway: Gateway) -> None:
    response = await gateway.client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    paths = spec["paths"]
    for path in (
        "/api/v1/tenants",
        "/api/v1/tenants/{tenant_id}/batches",
        "/api/v1/batches/{batch_id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    upload = paths["/api/v1/tenants/{tenant_id}/batches"]["post"]
    fields = upload["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert set(fields) == {
        "grand_livre_comptes",
        "grand_livre_tiers",
        "plan_comptes",
        "plan_tiers",
        "code_journal",
        "fec",
        "auto_load",
        "period_start",
        "period_end",
    }
    assert "MISSING_FILE" in upload["description"]
    assert set(upload["responses"]) >= {"202", "401", "403", "404", "422"}
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


async def test_request_ids_are_returned_and_logged_and_tokens_never_logged(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    token = gateway.token(tenant, role=Role.ACCOUNTANT)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars, redact_secrets]) as logs:
        response = await gateway.client.post(
            f"/api/v1/tenants/{tenant}/batches",
            files=fec_file(),
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-123"},
        )
        generated = await gateway.client.get("/api/v1/tenants", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202
    assert response.headers["x-request-id"] == "req-123"
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])

    uploaded = [e for e in logs if e["event"] == "batch_uploaded"]
    assert len(uploaded) == 1
    assert uploaded[0]["request_id"] == "req-123"
    assert uploaded[0]["tenant_id"] == tenant
    assert uploaded[0]["batch_id"] == response.json()["batch_id"]
    access = [e for e in logs if e["event"] == "http_request"]
    assert {e["route"] for e in access} == {"/api/v1/tenants/{tenant_id}/batches", "/api/v1/tenants"}
    rendered = repr(logs)
    assert token not in rendered
    assert token.split(".")[2] not in rendered  # not even the signature


async def test_an_unexpected_error_is_a_500_with_the_envelope(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("comptaflow.gateway.routes.batches.batches.get_batch", broken)
    response = await gateway.client.get(f"/api/v1/batches/{uuid.uuid4()}", headers=gateway.auth("*"))
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "INTERNAL_ERROR", "message": "internal error", "details": {}}}
