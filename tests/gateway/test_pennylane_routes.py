"""Pennylane routes (docs/api.md, Pennylane): the connection (token checked, stored encrypted, never shown),
starting a sync (a job and its message), and the state of the tables.

Pennylane is a stub of its `GET /me` served by uvicorn in this process: tokens it knows answer their
scopes, any other one the API's 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from structlog.testing import capture_logs

from comptaflow.common import jobs
from comptaflow.common.contracts import PennylaneSyncRequested, SyncMode
from comptaflow.common.pennylane import connections, tables
from comptaflow.common.secrets import Keyring, generate_key
from comptaflow.common.settings import Settings
from comptaflow.common.tokens import Role
from comptaflow.pennylane_sync.service import SERVICE as PENNYLANE_SYNC
from tests.gateway.support import Gateway, free_socket, running_gateway, serve
from tests.gateway.test_auth_tenants import assert_error

pytestmark = pytest.mark.infra

EVERY_SCOPE = list(tables.SCOPES)
COMPANY = {"id": 4242, "name": "ACME SARL", "reg_no": "123456789"}
(PENNYLANE_SYNC_QUEUE,) = PENNYLANE_SYNC.queues


@dataclass
class FakePennylane:
    """`GET {base_url}/me` as Pennylane answers it; `seen` keeps the Authorization headers it received."""

    base_url: str
    tokens: dict[str, list[str]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def token(self, scopes: list[str]) -> str:
        token = f"pl-{uuid.uuid4().hex}{uuid.uuid4().hex}"
        self.tokens[token] = scopes
        return token


def _stub(fake: FakePennylane) -> FastAPI:
    app = FastAPI()

    @app.get("/api/external/v2/me")
    async def me(request: Request) -> JSONResponse:
        header = request.headers.get("authorization", "")
        fake.seen.append(header)
        scopes = fake.tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        if scopes is None:
            return JSONResponse({"error": "The access token is invalid", "status": 401}, status_code=401)
        return JSONResponse({"user": None, "company": COMPANY, "scopes": scopes})

    @app.get("/elsewhere/me")
    async def not_found() -> JSONResponse:
        return JSONResponse({"error": "Not found", "status": 404}, status_code=404)

    return app


@pytest.fixture
async def pennylane() -> AsyncIterator[FakePennylane]:
    fake = FakePennylane(base_url="")
    async with serve(_stub(fake)) as root:
        fake.base_url = root + "/api/external/v2"
        yield fake


@pytest.fixture
def keyring_setting() -> str:
    return generate_key()


@pytest.fixture
def keyed_settings(settings: Settings, keyring_setting: str) -> Settings:
    return settings.model_copy(update={"secret_key": SecretStr(keyring_setting)})


@pytest.fixture
async def gateway(keyed_settings: Settings) -> AsyncIterator[Gateway]:
    """The gateway with a COMPTAFLOW_SECRET_KEY (tenant secrets), on the in-process bus."""
    async with running_gateway(keyed_settings) as running:
        yield running


@dataclass
class Logs:
    events: list[MutableMapping[str, Any]]
    caplog: pytest.LogCaptureFixture

    @property
    def text(self) -> str:
        """Every structlog event and stdlib record (httpx, uvicorn…), with all their fields."""
        records = "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in self.caplog.records)
        return f"{self.events!r}\n{records}"

    @property
    def names(self) -> list[str]:
        return [str(e.get("event")) for e in self.events]


@contextlib.contextmanager
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[Logs]:
    caplog.set_level(logging.DEBUG)
    with capture_logs() as events:
        yield Logs(events, caplog)


async def put(gateway: Gateway, tenant: str, body: dict[str, Any], *, role: Role = Role.ACCOUNTANT) -> Any:
    return await gateway.client.put(
        f"/api/v1/tenants/{tenant}/pennylane", json=body, headers=gateway.auth(tenant, role=role)
    )


async def get(gateway: Gateway, tenant: str, path: str = "", *, role: Role = Role.VIEWER) -> Any:
    return await gateway.client.get(
        f"/api/v1/tenants/{tenant}/pennylane{path}", headers=gateway.auth(tenant, role=role)
    )


async def start_sync(gateway: Gateway, tenant: str, body: dict[str, Any], *, role: Role = Role.ACCOUNTANT) -> Any:
    return await gateway.client.post(
        f"/api/v1/tenants/{tenant}/pennylane/sync", json=body, headers=gateway.auth(tenant, role=role)
    )


async def connect(gateway: Gateway, pennylane: FakePennylane, tenant: str, scopes: list[str] | None = None) -> str:
    token = pennylane.token(EVERY_SCOPE if scopes is None else scopes)
    response = await put(gateway, tenant, {"api_token": token, "base_url": pennylane.base_url})
    assert response.status_code == 200, response.text
    return token


async def test_before_a_put_the_tenant_is_not_configured(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    response = await get(gateway, tenant)
    assert response.status_code == 200
    assert response.json() == {"configured": False}


async def test_a_put_checks_the_token_with_me_then_stores_it_encrypted_and_never_shows_it(
    gateway: Gateway, pennylane: FakePennylane, keyring_setting: str, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await gateway.create_tenant()
    token = pennylane.token(EVERY_SCOPE)

    with all_logs(caplog) as logs:
        response = await put(gateway, tenant, {"api_token": token, "base_url": pennylane.base_url + "/"})
        read = await get(gateway, tenant)

    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: v for k, v in body.items() if k != "updated_at"} == {
        "configured": True,
        "base_url": pennylane.base_url,  # without its trailing slash
        "enabled": True,
        "scopes": EVERY_SCOPE,
        "missing_scopes": {},
        "company": {"id": 4242, "name": "ACME SARL"},
    }
    assert body["updated_at"].endswith("Z")
    assert pennylane.seen == [f"Bearer {token}"]  # checked once, before anything was stored
    assert read.status_code == 200
    assert read.json() == body
    for text in (response.text, read.text, logs.text):
        assert token not in text
    assert "pennylane_connected" in logs.names

    async with gateway.infra.db.acquire() as conn:
        blob = await conn.fetchval(
            "SELECT ciphertext FROM tenant_secrets WHERE tenant_id = $1 AND name = $2", tenant, connections.TOKEN_SECRET
        )
        row = await conn.fetchrow("SELECT * FROM pennylane_connections WHERE tenant_id = $1", tenant)
        stored = await connections.token_of(conn, Keyring.from_setting(keyring_setting), tenant)
    assert row is not None
    assert isinstance(blob, bytes)
    assert token.encode() not in blob
    assert token not in repr(dict(row))
    assert stored is not None
    assert stored.get_secret_value() == token
    assert (row["base_url"], row["enabled"], row["company_id"], row["company_name"]) == (
        pennylane.base_url,
        True,
        4242,
        "ACME SARL",
    )


async def test_a_rejected_token_stores_nothing_and_keeps_the_previous_connection(
    gateway: Gateway, pennylane: FakePennylane, keyring_setting: str, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await gateway.create_tenant()
    first = await connect(gateway, pennylane, tenant, ["customers:readonly"])
    before = (await get(gateway, tenant)).json()
    wrong = f"pl-wrong-{uuid.uuid4().hex}"

    with all_logs(caplog) as logs:
        response = await put(gateway, tenant, {"api_token": wrong, "base_url": pennylane.base_url, "enabled": False})

    assert response.status_code == 422
    assert_error(response.json(), "PENNYLANE_TOKEN_REJECTED")
    assert response.json()["error"]["details"] == {"pennylane_status": 401}
    assert wrong not in response.text
    assert wrong not in logs.text
    assert "pennylane_token_rejected" in logs.names
    assert pennylane.seen[-1] == f"Bearer {wrong}"
    assert (await get(gateway, tenant)).json() == before
    async with gateway.infra.db.acquire() as conn:
        stored = await connections.token_of(conn, Keyring.from_setting(keyring_setting), tenant)
    assert stored is not None
    assert stored.get_secret_value() == first

    fresh = await gateway.create_tenant()
    refused = await put(gateway, fresh, {"api_token": wrong, "base_url": pennylane.base_url})
    assert refused.status_code == 422
    assert (await get(gateway, fresh)).json() == {"configured": False}
    async with gateway.infra.db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tenant_secrets WHERE tenant_id = $1", fresh) == 0


async def test_the_tables_the_token_cannot_read_are_named_with_the_scopes_they_lack(
    gateway: Gateway, pennylane: FakePennylane
) -> None:
    tenant = await gateway.create_tenant()
    readable = [s for s in EVERY_SCOPE if s not in ("exports:fec", "ledger_entries:readonly", "customers:readonly")]
    token = pennylane.token([*readable, "customers:all"])  # `:all` grants the read scope too

    response = await put(gateway, tenant, {"api_token": token, "base_url": pennylane.base_url})

    assert response.status_code == 200
    assert response.json()["missing_scopes"] == {
        "ledger_entry_lines": ["ledger_entries:readonly"],
        "ledger_entries": ["ledger_entries:readonly"],
        "fec": ["exports:fec"],
    }
    assert (await get(gateway, tenant)).json()["missing_scopes"] == response.json()["missing_scopes"]


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://app.pennylane.com/api/external/v2",
        "app.pennylane.com/api/external/v2",
        "https://user:s3cr3t-pw@app.pennylane.com/api/external/v2",
        "https://app.pennylane.com/api/external/v2?token=s3cr3t-pw",
        "https://app.pennylane.com/api/external/v2#s3cr3t-pw",
        "https:///api/external/v2",
        "https://app.pennylane.com:99999/api",
        "https://app.pennylane.com/api external",
    ],
)
async def test_a_base_url_that_is_not_plain_http_is_a_validation_error(gateway: Gateway, base_url: str) -> None:
    tenant = await gateway.create_tenant()
    response = await put(gateway, tenant, {"api_token": "pl-token", "base_url": base_url})
    assert response.status_code == 422
    assert_error(response.json(), "VALIDATION_ERROR")
    assert response.json()["error"]["details"]["errors"][0]["loc"] == ["body", "base_url"]
    assert "s3cr3t-pw" not in response.text
    assert (await get(gateway, tenant)).json() == {"configured": False}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"api_token": ""},
        {"api_token": "two words"},
        {"api_token": "pl-token", "extra": 1},
        {"api_token": "pl-token", "enabled": "maybe"},
    ],
)
async def test_a_malformed_body_is_a_validation_error_that_never_echoes_the_token(
    gateway: Gateway, body: dict[str, Any]
) -> None:
    tenant = await gateway.create_tenant()
    response = await put(gateway, tenant, body)
    assert response.status_code == 422
    assert_error(response.json(), "VALIDATION_ERROR")
    assert "two words" not in response.text


async def test_an_unreachable_pennylane_is_a_502_and_stores_nothing(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    closed = free_socket()  # bound, never listening: connections are refused
    try:
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/api/external/v2"
        response = await put(gateway, tenant, {"api_token": "pl-token-unreachable", "base_url": url})
    finally:
        closed.close()
    assert response.status_code == 502
    assert_error(response.json(), "PENNYLANE_UNAVAILABLE")
    assert (await get(gateway, tenant)).json() == {"configured": False}


async def test_a_base_url_that_is_not_the_pennylane_api_is_a_502(gateway: Gateway, pennylane: FakePennylane) -> None:
    tenant = await gateway.create_tenant()
    elsewhere = pennylane.base_url.replace("/api/external/v2", "/elsewhere")
    response = await put(gateway, tenant, {"api_token": pennylane.token(EVERY_SCOPE), "base_url": elsewhere})
    assert response.status_code == 502
    assert_error(response.json(), "PENNYLANE_BAD_RESPONSE")
    assert response.json()["error"]["details"] == {"pennylane_status": 404}


async def test_an_unlisted_tenant_is_a_404_and_a_viewer_may_only_read(
    gateway: Gateway, pennylane: FakePennylane
) -> None:
    tenant, other = await gateway.create_tenant(), await gateway.create_tenant()
    await connect(gateway, pennylane, other)
    token = pennylane.token(EVERY_SCOPE)
    calls = pennylane.seen.copy()
    theirs = gateway.auth(tenant)  # lists `tenant`, not `other`
    body = {"api_token": token, "base_url": pennylane.base_url}
    refused = [
        await gateway.client.put(f"/api/v1/tenants/{other}/pennylane", json=body, headers=theirs),
        await gateway.client.get(f"/api/v1/tenants/{other}/pennylane", headers=theirs),
        await gateway.client.post(f"/api/v1/tenants/{other}/pennylane/sync", json={"mode": "full"}, headers=theirs),
        await gateway.client.get(f"/api/v1/tenants/{other}/pennylane/state", headers=theirs),
        await gateway.client.get("/api/v1/tenants/no-such-tenant/pennylane", headers=gateway.auth("*")),
    ]
    for response in refused:
        assert response.status_code == 404, response.request.url
        assert response.json()["error"] == {"code": "NOT_FOUND", "message": "tenant not found", "details": {}}

    viewer_put = await put(gateway, other, body, role=Role.VIEWER)
    viewer_sync = await start_sync(gateway, other, {"mode": "incremental"}, role=Role.VIEWER)
    for response in (viewer_put, viewer_sync):
        assert response.status_code == 403
        assert response.json()["error"]["message"] == "this token may only read"
    assert pennylane.seen == calls  # no token was checked for a refused request
    assert (await get(gateway, other, role=Role.VIEWER)).status_code == 200
    assert (await get(gateway, other, "/state", role=Role.VIEWER)).status_code == 200
    anonymous = await gateway.client.get(f"/api/v1/tenants/{other}/pennylane")
    assert anonymous.status_code == 401


async def test_a_sync_is_a_job_and_its_message_committed_together(
    keyed_settings: Settings, pennylane: FakePennylane
) -> None:
    """Without a relay in this process, the committed outbox row waits beside the PENDING job."""
    async with running_gateway(keyed_settings, relay=False) as gateway:
        tenant = await gateway.create_tenant()
        await connect(gateway, pennylane, tenant)
        response = await start_sync(gateway, tenant, {"mode": "full", "tables": ["fec", "customers", "fec"]})
        assert response.status_code == 202, response.text
        assert set(response.json()) == {"job_id"}
        job_id = response.json()["job_id"]
        job = await gateway.client.get(f"/api/v1/jobs/{job_id}", headers=gateway.auth(tenant, role=Role.VIEWER))
        async with gateway.infra.db.acquire() as conn:
            params = await conn.fetchval("SELECT params FROM jobs WHERE id = $1", uuid.UUID(job_id))
            rows = await conn.fetch("SELECT routing_key, body FROM outbox WHERE body::jsonb ->> 'job_id' = $1", job_id)
            await conn.execute("DELETE FROM outbox WHERE body::jsonb ->> 'job_id' = $1", job_id)

    assert job.status_code == 200
    assert {k: job.json()[k] for k in ("job_id", "tenant_id", "kind", "status")} == {
        "job_id": job_id,
        "tenant_id": tenant,
        "kind": "pennylane.sync",
        "status": "PENDING",
    }
    assert params == {"mode": "full", "tables": ["customers", "fec"]}  # catalogue order, once each
    assert [r["routing_key"] for r in rows] == ["pennylane.sync_requested"]
    event = PennylaneSyncRequested.model_validate_json(rows[0]["body"])
    assert (event.tenant_id, str(event.job_id), event.mode, event.tables) == (
        tenant,
        job_id,
        SyncMode.FULL,
        ("customers", "fec"),
    )


async def test_a_sync_of_every_table_reaches_the_sync_queue(gateway: Gateway, pennylane: FakePennylane) -> None:
    tenant = await gateway.create_tenant()
    await connect(gateway, pennylane, tenant)
    received: list[PennylaneSyncRequested] = []

    async def handler(event: Any, _delivery: Any) -> None:
        received.append(event)

    consumer = await gateway.infra.bus.consume(PENNYLANE_SYNC_QUEUE, handler, prefetch=1)
    try:
        response = await start_sync(gateway, tenant, {"mode": "incremental"})
        assert response.status_code == 202
        for _ in range(200):
            if received:
                break
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop(grace=1)
    assert [(str(e.job_id), e.mode, e.tables) for e in received] == [
        (response.json()["job_id"], SyncMode.INCREMENTAL, None)
    ]
    async with gateway.infra.db.acquire() as conn:
        job = await jobs.get_job(conn, uuid.UUID(response.json()["job_id"]))
    assert job is not None
    assert job.params == {"mode": "incremental", "tables": None}


async def test_an_unknown_table_is_a_422_naming_it_and_starts_nothing(
    gateway: Gateway, pennylane: FakePennylane
) -> None:
    tenant = await gateway.create_tenant()
    await connect(gateway, pennylane, tenant)
    response = await start_sync(
        gateway, tenant, {"mode": "incremental", "tables": ["customers", "invoices", "tenants"]}
    )
    assert response.status_code == 422
    assert_error(response.json(), "UNKNOWN_TABLE")
    error = response.json()["error"]
    assert error["details"] == {"tables": ["invoices", "tenants"], "known": list(tables.NAMES)}
    assert "invoices, tenants" in error["message"]
    async with gateway.infra.db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobs WHERE tenant_id = $1", tenant) == 0


@pytest.mark.parametrize(
    "body", [{}, {"mode": "partial"}, {"mode": "full", "tables": []}, {"mode": "full", "extra": True}]
)
async def test_a_malformed_sync_request_is_a_validation_error(
    gateway: Gateway, pennylane: FakePennylane, body: dict[str, Any]
) -> None:
    tenant = await gateway.create_tenant()
    await connect(gateway, pennylane, tenant)
    response = await start_sync(gateway, tenant, body)
    assert response.status_code == 422
    assert_error(response.json(), "VALIDATION_ERROR")


async def test_a_sync_needs_an_enabled_connection(gateway: Gateway, pennylane: FakePennylane) -> None:
    tenant = await gateway.create_tenant()
    unconfigured = await start_sync(gateway, tenant, {"mode": "incremental"})
    assert unconfigured.status_code == 409
    assert_error(unconfigured.json(), "PENNYLANE_NOT_CONFIGURED")

    token = pennylane.token(EVERY_SCOPE)
    disabled = await put(gateway, tenant, {"api_token": token, "base_url": pennylane.base_url, "enabled": False})
    assert disabled.status_code == 200
    assert disabled.json()["enabled"] is False
    refused = await start_sync(gateway, tenant, {"mode": "incremental"})
    assert refused.status_code == 409
    assert_error(refused.json(), "PENNYLANE_DISABLED")
    async with gateway.infra.db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobs WHERE tenant_id = $1", tenant) == 0

    await put(gateway, tenant, {"api_token": token, "base_url": pennylane.base_url})  # enabled by default
    assert (await start_sync(gateway, tenant, {"mode": "incremental"})).status_code == 202


async def test_the_state_lists_every_table_with_its_last_sync_and_the_scopes_it_lacks(
    gateway: Gateway, pennylane: FakePennylane
) -> None:
    tenant = await gateway.create_tenant()
    never = await get(gateway, tenant, "/state")
    assert never.status_code == 200
    assert never.json() == {
        "tables": [
            {
                "table": name,
                "mode": None,
                "last_synced_at": None,
                "cursor_at": None,
                "rows": 0,
                "status": "NEVER_SYNCED",
                "error": None,
                "missing_scopes": [],
            }
            for name in tables.NAMES
        ]
    }

    await connect(gateway, pennylane, tenant, [s for s in EVERY_SCOPE if s != "exports:fec"])
    synced_at = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
    cursor_at = datetime(2025, 3, 1, 8, 29, 59, 123456, tzinfo=UTC)
    async with gateway.infra.db.acquire() as conn:
        await connections.record_success(
            conn, tenant, "customers", SyncMode.INCREMENTAL, synced_at=synced_at, cursor_at=cursor_at, rows=12, stats={}
        )
        await connections.mark_running(conn, tenant, "suppliers", SyncMode.FULL)
        await connections.record_failure(conn, tenant, "journals", SyncMode.FULL, "Pennylane answered 503 on /journals")

    state = await get(gateway, tenant, "/state")
    by_table = {t["table"]: t for t in state.json()["tables"]}
    assert [t["table"] for t in state.json()["tables"]] == list(tables.NAMES)
    assert by_table["customers"] == {
        "table": "customers",
        "mode": "incremental",
        "last_synced_at": "2025-03-01T08:30:00Z",
        "cursor_at": "2025-03-01T08:29:59.123456Z",
        "rows": 12,
        "status": "SUCCEEDED",
        "error": None,
        "missing_scopes": [],
    }
    assert (by_table["suppliers"]["status"], by_table["suppliers"]["mode"]) == ("RUNNING", "full")
    assert (by_table["journals"]["status"], by_table["journals"]["error"]) == (
        "FAILED",
        "Pennylane answered 503 on /journals",
    )
    assert by_table["fec"] == {
        "table": "fec",
        "mode": None,
        "last_synced_at": None,
        "cursor_at": None,
        "rows": 0,
        "status": "NEVER_SYNCED",
        "error": "the Pennylane token lacks the scope(s) exports:fec",
        "missing_scopes": ["exports:fec"],
    }
    assert by_table["products"]["status"] == "NEVER_SYNCED"


async def test_without_a_secret_key_a_put_is_unavailable_and_stores_nothing(
    settings: Settings, pennylane: FakePennylane
) -> None:
    async with running_gateway(settings) as gateway:  # no COMPTAFLOW_SECRET_KEY
        tenant = await gateway.create_tenant()
        response = await put(
            gateway, tenant, {"api_token": pennylane.token(EVERY_SCOPE), "base_url": pennylane.base_url}
        )
        assert response.status_code == 503
        assert_error(response.json(), "SERVICE_UNAVAILABLE")
        assert pennylane.seen == []
        assert (await get(gateway, tenant)).json() == {"configured": False}


async def test_the_openapi_document_describes_the_pennylane_routes(gateway: Gateway) -> None:
    paths = (await gateway.client.get("/openapi.json")).json()["paths"]
    for path, method, statuses in (
        ("/api/v1/tenants/{tenant_id}/pennylane", "put", {"200", "401", "403", "404", "422", "502", "503"}),
        ("/api/v1/tenants/{tenant_id}/pennylane", "get", {"200", "401", "404"}),
        ("/api/v1/tenants/{tenant_id}/pennylane/sync", "post", {"202", "401", "403", "404", "409", "422"}),
        ("/api/v1/tenants/{tenant_id}/pennylane/state", "get", {"200", "401", "404"}),
        ("/api/v1/tenants/{tenant_id}/bi-credentials", "post", {"201", "401", "403", "404", "409"}),
    ):
        operation = paths[path][method]
        assert operation["summary"]
        assert statuses <= set(operation["responses"]), (path, method)
