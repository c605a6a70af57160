"""Reading batches (docs/api.md, Reading a batch): the shape of `GET /batches/{id}`, isolation, the tenant's list."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import date

import pytest

from comptaflow.common import batches
from comptaflow.common.contracts import BatchStatus
from comptaflow.common.tokens import Role
from tests.gateway.support import EXCEL_FIELDS, Gateway, excel_files, fec_bytes, fec_file
from tests.gateway.test_auth_tenants import assert_error

pytestmark = pytest.mark.infra

BATCH_FIELDS = {
    "batch_id",
    "tenant_id",
    "kind",
    "status",
    "stage",
    "progress",
    "period_start",
    "period_end",
    "errors",
    "warnings",
    "files",
    "stats",
    "created_at",
    "updated_at",
}
UTC_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


async def test_a_fresh_batch_has_exactly_the_contract_fields(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    files = excel_files()
    batch_id = (await gateway.upload(tenant, files)).json()["batch_id"]

    response = await gateway.client.get(f"/api/v1/batches/{batch_id}", headers=gateway.auth(tenant, role=Role.VIEWER))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == BATCH_FIELDS
    assert body["batch_id"] == batch_id
    assert body["tenant_id"] == tenant
    assert body["kind"] == "excel"
    assert body["status"] == "PENDING"
    assert body["stage"] == "uploaded"
    assert body["progress"] == 0.0
    assert body["period_start"] is None
    assert body["period_end"] is None
    assert body["errors"] == []
    assert body["warnings"] == []
    assert body["stats"] == {}
    assert UTC_TIMESTAMP.match(body["created_at"])
    assert UTC_TIMESTAMP.match(body["updated_at"])
    expected_files = sorted(
        (
            {"field": field, "filename": filename, "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
            for field, (filename, content, _) in files
        ),
        key=lambda f: str(f["field"]),
    )
    assert sorted(body["files"], key=lambda f: f["field"]) == expected_files
    assert {f["field"] for f in body["files"]} == set(EXCEL_FIELDS)


async def test_a_processed_batch_shows_its_period_findings_and_stats(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    batch_id = uuid.UUID((await gateway.upload(tenant, fec_file())).json()["batch_id"])
    async with gateway.infra.db.acquire() as conn:
        await batches.transition(conn, batch_id, BatchStatus.VALIDATING, stage="parsing", progress=0.2)
        await batches.transition(
            conn,
            batch_id,
            BatchStatus.FAILED,
            stage="validated",
            progress=1.0,
            period=(date(2024, 1, 1), date(2024, 12, 31)),
            errors=[{"code": "UNBALANCED", "message": "debit != credit", "file": "fec", "row": 12}],
            warnings=[{"code": "UNKNOWN_JOURNAL", "message": "journal XX"}],
            stats={"rows": 3},
        )
    body = (await gateway.client.get(f"/api/v1/batches/{batch_id}", headers=gateway.auth(tenant))).json()
    assert set(body) == BATCH_FIELDS
    assert body["kind"] == "fec"
    assert body["status"] == "FAILED"
    assert body["stage"] == "validated"
    assert body["progress"] == 1.0
    assert (body["period_start"], body["period_end"]) == ("2024-01-01", "2024-12-31")
    assert body["errors"] == [{"code": "UNBALANCED", "message": "debit != credit", "file": "fec", "row": 12}]
    assert body["warnings"] == [{"code": "UNKNOWN_JOURNAL", "message": "journal XX"}]
    assert body["stats"] == {"rows": 3}
    assert body["files"] == [
        {
            "field": "fec",
            "filename": "123456789FEC20241231.txt",
            "size": len(fec_bytes()),
            "sha256": hashlib.sha256(fec_bytes()).hexdigest(),
        }
    ]


async def test_a_batch_of_another_tenant_is_404_like_a_missing_one(gateway: Gateway) -> None:
    tenant, other = await gateway.create_tenant(), await gateway.create_tenant()
    batch_id = (await gateway.upload(other, fec_file())).json()["batch_id"]
    for path in (
        f"/api/v1/batches/{batch_id}",
        f"/api/v1/batches/{uuid.uuid4()}",
        "/api/v1/batches/not-a-uuid",
        "/api/v1/batches/123",
    ):
        response = await gateway.client.get(path, headers=gateway.auth(tenant))
        assert response.status_code == 404, path
        assert_error(response.json(), "NOT_FOUND")
    everywhere = await gateway.client.get(f"/api/v1/batches/{batch_id}", headers=gateway.auth("*", role=Role.VIEWER))
    assert everywhere.status_code == 200


async def test_listing_a_tenants_batches_newest_first_with_a_cursor(gateway: Gateway) -> None:
    tenant, other = await gateway.create_tenant(), await gateway.create_tenant()
    uploaded = [(await gateway.upload(tenant, fec_file())).json()["batch_id"] for _ in range(3)]
    await gateway.upload(other, fec_file())
    headers = gateway.auth(tenant, role=Role.VIEWER)

    first = await gateway.client.get(f"/api/v1/tenants/{tenant}/batches", params={"limit": 2}, headers=headers)
    assert first.status_code == 200
    page = first.json()
    assert set(page) == {"items", "next_cursor"}
    assert [b["batch_id"] for b in page["items"]] == uploaded[::-1][:2]
    assert all(set(b) == BATCH_FIELDS for b in page["items"])
    assert page["next_cursor"]

    second = await gateway.client.get(
        f"/api/v1/tenants/{tenant}/batches", params={"limit": 2, "cursor": page["next_cursor"]}, headers=headers
    )
    rest = second.json()
    assert [b["batch_id"] for b in rest["items"]] == [uploaded[0]]
    assert rest["next_cursor"] is None

    bad = await gateway.client.get(f"/api/v1/tenants/{tenant}/batches", params={"cursor": "nonsense"}, headers=headers)
    assert bad.status_code == 422
    assert_error(bad.json(), "INVALID_CURSOR")
    too_many = await gateway.client.get(f"/api/v1/tenants/{tenant}/batches", params={"limit": 0}, headers=headers)
    assert too_many.status_code == 422
    assert_error(too_many.json(), "VALIDATION_ERROR")
