"""Authentication, tenant isolation and the tenant routes (docs/api.md: Auth, Tenants)."""

from __future__ import annotations

import pytest

from comptaflow.common.tokens import Role, mint
from tests.gateway.support import Gateway, tenant_id

pytestmark = pytest.mark.infra


def assert_error(body: dict[str, object], code: str) -> None:
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict)
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], dict)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"Authorization": "Bearer"},
    ],
    ids=["none", "garbage", "basic", "empty-bearer"],
)
async def test_requests_without_a_usable_token_are_401(gateway: Gateway, headers: dict[str, str]) -> None:
    for method, path in [
        ("GET", "/api/v1/tenants"),
        ("POST", "/api/v1/tenants"),
        ("GET", "/api/v1/batches/00000000-0000-0000-0000-000000000000"),
        ("POST", "/api/v1/tenants/acme/batches"),
    ]:
        response = await gateway.client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
        assert_error(response.json(), "UNAUTHORIZED")


async def test_expired_token_and_wrong_signature_are_401(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    expired = gateway.token(tenant, ttl=-30)
    forged = mint("another-secret-of-sufficient-length!!", sub="eve", role=Role.ADMIN, tenants=["*"])
    for token in (expired, forged):
        response = await gateway.client.get("/api/v1/tenants", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert_error(response.json(), "UNAUTHORIZED")


async def test_admin_creates_a_tenant(gateway: Gateway) -> None:
    tenant = tenant_id()
    response = await gateway.client.post(
        "/api/v1/tenants", json={"id": tenant, "name": "ACME SARL"}, headers=gateway.auth("*", role=Role.ADMIN)
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "created_at"}
    assert body["id"] == tenant
    assert body["name"] == "ACME SARL"
    assert body["created_at"].endswith("Z")

    again = await gateway.client.post(
        "/api/v1/tenants", json={"id": tenant, "name": "Other"}, headers=gateway.auth("*", role=Role.ADMIN)
    )
    assert again.status_code == 409
    assert_error(again.json(), "TENANT_EXISTS")


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "A-upper", "name": "x"},
        {"id": "-starts-with-dash", "name": "x"},
        {"id": "a", "name": "too short id"},
        {"id": "x" * 64, "name": "too long id"},
        {"id": "has_underscore", "name": "x"},
        {"id": "ok-id", "name": ""},
        {"id": "ok-id"},
        {"name": "no id"},
    ],
)
async def test_invalid_tenant_is_422(gateway: Gateway, payload: dict[str, str]) -> None:
    response = await gateway.client.post("/api/v1/tenants", json=payload, headers=gateway.auth("*", role=Role.ADMIN))
    assert response.status_code == 422
    assert_error(response.json(), "VALIDATION_ERROR")


async def test_malformed_json_is_422_with_the_envelope(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/api/v1/tenants",
        content=b"{not json",
        headers={**gateway.auth("*", role=Role.ADMIN), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert_error(response.json(), "VALIDATION_ERROR")


@pytest.mark.parametrize("role", [Role.ACCOUNTANT, Role.VIEWER])
async def test_only_an_admin_creates_tenants(gateway: Gateway, role: Role) -> None:
    tenant = tenant_id()
    response = await gateway.client.post(
        "/api/v1/tenants", json={"id": tenant, "name": "x"}, headers=gateway.auth("*", role=role)
    )
    assert response.status_code == 403
    assert_error(response.json(), "FORBIDDEN")
    listed = await gateway.client.get("/api/v1/tenants", headers=gateway.auth("*", role=Role.ADMIN))
    assert tenant not in {t["id"] for t in listed.json()["items"]}


async def test_tenant_list_is_limited_to_the_token(gateway: Gateway) -> None:
    mine, other = await gateway.create_tenant(name="Mine"), await gateway.create_tenant(name="Other")
    response = await gateway.client.get(
        "/api/v1/tenants", headers=gateway.auth(mine, "never-created", role=Role.VIEWER)
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items"}
    assert [t["id"] for t in body["items"]] == [mine]
    assert set(body["items"][0]) == {"id", "name", "created_at"}
    assert body["items"][0]["name"] == "Mine"

    everything = await gateway.client.get("/api/v1/tenants", headers=gateway.auth("*", role=Role.VIEWER))
    ids = {t["id"] for t in everything.json()["items"]}
    assert {mine, other} <= ids


async def test_a_tenant_the_token_does_not_list_is_404_like_a_missing_one(gateway: Gateway) -> None:
    mine, other = await gateway.create_tenant(), await gateway.create_tenant()
    headers = gateway.auth(mine)
    hidden = await gateway.client.get(f"/api/v1/tenants/{other}", headers=headers)
    missing = await gateway.client.get(f"/api/v1/tenants/{tenant_id()}", headers=gateway.auth("*"))
    for response in (hidden, missing):
        assert response.status_code == 404
        assert_error(response.json(), "NOT_FOUND")
    assert hidden.json()["error"]["message"] == missing.json()["error"]["message"]
    assert (await gateway.client.get(f"/api/v1/tenants/{mine}", headers=headers)).status_code == 200
    listing = await gateway.client.get(f"/api/v1/tenants/{other}/batches", headers=headers)
    assert listing.status_code == 404
    assert_error(listing.json(), "NOT_FOUND")


async def test_unknown_routes_and_methods_use_the_envelope(gateway: Gateway) -> None:
    missing = await gateway.client.get("/api/v1/nothing-here", headers=gateway.auth("*"))
    assert missing.status_code == 404
    assert_error(missing.json(), "NOT_FOUND")
    wrong_method = await gateway.client.delete("/api/v1/tenants", headers=gateway.auth("*"))
    assert wrong_method.status_code == 405
    assert_error(wrong_method.json(), "METHOD_NOT_ALLOWED")
