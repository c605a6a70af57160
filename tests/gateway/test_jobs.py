"""Reading jobs (docs/api.md, Jobs): `GET /jobs/{id}`, the tenant's list, isolation, and their live events."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import pytest

from comptaflow.common import jobs
from comptaflow.common.contracts import JobStatus
from comptaflow.common.progress import JobReporter
from comptaflow.common.tokens import Role
from tests.gateway.support import Gateway
from tests.gateway.test_auth_tenants import assert_error
from tests.gateway.test_ws import receive, socket, subscribe

pytestmark = pytest.mark.infra

JOB_FIELDS = {
    "job_id",
    "tenant_id",
    "kind",
    "status",
    "stage",
    "progress",
    "message",
    "stats",
    "errors",
    "created_at",
    "updated_at",
}
UTC_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
SYNC = "pennylane.sync"
PAYROLL = "payroll.import"


async def new_job(gateway: Gateway, tenant: str, kind: str = SYNC) -> jobs.Job:
    async with gateway.infra.db.acquire() as conn:
        job, created = await jobs.create_job(conn, tenant, kind, {"mode": "incremental"})
    assert created
    return job


def reporter(gateway: Gateway, job: jobs.Job) -> JobReporter:
    return JobReporter(
        pool=gateway.infra.db, bus=gateway.infra.bus, service="pennylane-sync", tenant_id=job.tenant_id, job_id=job.id
    )


async def get_job(gateway: Gateway, job_id: str, *tenants: str) -> tuple[int, dict[str, Any]]:
    response = await gateway.client.get(f"/api/v1/jobs/{job_id}", headers=gateway.auth(*tenants, role=Role.VIEWER))
    return response.status_code, response.json()


async def test_a_new_job_has_exactly_the_contract_fields(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    job = await new_job(gateway, tenant)

    status, body = await get_job(gateway, str(job.id), tenant)
    assert status == 200
    assert set(body) == JOB_FIELDS
    assert {k: v for k, v in body.items() if k not in ("created_at", "updated_at")} == {
        "job_id": str(job.id),
        "tenant_id": tenant,
        "kind": SYNC,
        "status": "PENDING",
        "stage": "queued",
        "progress": 0.0,
        "message": "",
        "stats": {},
        "errors": [],
    }
    assert UTC_TIMESTAMP.match(body["created_at"])
    assert body["updated_at"] == body["created_at"]


async def test_a_finished_job_shows_its_outcome(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    succeeded, failed = await new_job(gateway, tenant), await new_job(gateway, tenant, PAYROLL)
    await reporter(gateway, succeeded).claim(stage="started", progress=0.05, limit=3)
    await reporter(gateway, succeeded).finish(
        JobStatus.SUCCEEDED, stats={"tables": 3, "rows": 1250}, message="1250 rows synced"
    )
    error = {"code": "ERROR_SILAE", "message": "Silae answered 503"}
    await reporter(gateway, failed).finish(JobStatus.FAILED, errors=[error], message=error["message"])

    _, ok = await get_job(gateway, str(succeeded.id), tenant)
    _, ko = await get_job(gateway, str(failed.id), tenant)
    assert (ok["status"], ok["stage"], ok["progress"], ok["message"], ok["stats"], ok["errors"]) == (
        "SUCCEEDED",
        "succeeded",
        1.0,
        "1250 rows synced",
        {"tables": 3, "rows": 1250},
        [],
    )
    assert (ko["kind"], ko["status"], ko["stage"], ko["message"], ko["errors"]) == (
        PAYROLL,
        "FAILED",
        "failed",
        "Silae answered 503",
        [error],
    )
    assert datetime.fromisoformat(ok["updated_at"]) > datetime.fromisoformat(ok["created_at"])


async def test_a_job_of_another_tenant_is_a_404_like_a_missing_one(gateway: Gateway) -> None:
    tenant, other = await gateway.create_tenant(), await gateway.create_tenant()
    theirs = await new_job(gateway, other)

    answers = [
        await get_job(gateway, str(theirs.id), tenant),
        await get_job(gateway, str(uuid.uuid4()), tenant),
        await get_job(gateway, "not-a-uuid", tenant),
    ]
    for status, body in answers:
        assert status == 404
        assert_error(body, "NOT_FOUND")
    assert len({body["error"]["message"] for _, body in answers}) == 1  # nothing tells them apart
    assert (await get_job(gateway, str(theirs.id), "*"))[0] == 200
    assert (await get_job(gateway, str(theirs.id), tenant, other))[0] == 200
    anonymous = await gateway.client.get(f"/api/v1/jobs/{theirs.id}")
    assert anonymous.status_code == 401
    assert_error(anonymous.json(), "UNAUTHORIZED")


async def test_listing_a_tenants_jobs_newest_first_with_filters_and_a_cursor(gateway: Gateway) -> None:
    tenant, other = await gateway.create_tenant(), await gateway.create_tenant()
    created = [await new_job(gateway, tenant, kind) for kind in (SYNC, PAYROLL, SYNC, SYNC, PAYROLL)]
    await new_job(gateway, other)
    await reporter(gateway, created[2]).claim(stage="started", progress=0.1, limit=3)
    newest_first = [str(j.id) for j in reversed(created)]
    headers = gateway.auth(tenant, role=Role.VIEWER)

    async def walk(**params: Any) -> list[list[str]]:
        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            query = {**params, "limit": 2} | ({"cursor": cursor} if cursor else {})
            response = await gateway.client.get(f"/api/v1/tenants/{tenant}/jobs", params=query, headers=headers)
            assert response.status_code == 200
            page = response.json()
            assert set(page) == {"items", "next_cursor"}
            assert all(set(item) == JOB_FIELDS for item in page["items"])
            pages.append([item["job_id"] for item in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                return pages

    assert await walk() == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]
    assert await walk(kind=SYNC) == [[str(created[3].id), str(created[2].id)], [str(created[0].id)]]
    assert await walk(status="RUNNING") == [[str(created[2].id)]]
    assert await walk(kind=SYNC, status="PENDING") == [[str(created[3].id), str(created[0].id)]]
    assert await walk(kind="refresh") == [[]]

    everything = await gateway.client.get(f"/api/v1/tenants/{tenant}/jobs", headers=headers)
    body = everything.json()
    assert [item["job_id"] for item in body["items"]] == newest_first
    assert body["next_cursor"] is None
    assert {item["tenant_id"] for item in body["items"]} == {tenant}


async def test_the_list_of_a_tenant_the_token_does_not_list_is_a_404(gateway: Gateway) -> None:
    tenant, other = await gateway.create_tenant(), await gateway.create_tenant()
    await new_job(gateway, other)
    for target, token_tenants in [(other, (tenant,)), ("never-created", (tenant,)), ("never-created", ("*",))]:
        response = await gateway.client.get(f"/api/v1/tenants/{target}/jobs", headers=gateway.auth(*token_tenants))
        assert response.status_code == 404, target
        assert_error(response.json(), "NOT_FOUND")
        assert response.json()["error"]["message"] == "tenant not found"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"status": "DONE"}, "VALIDATION_ERROR"),
        ({"status": "running"}, "VALIDATION_ERROR"),
        ({"limit": 0}, "VALIDATION_ERROR"),
        ({"limit": 201}, "VALIDATION_ERROR"),
        ({"limit": "ten"}, "VALIDATION_ERROR"),
        ({"cursor": "nonsense"}, "INVALID_CURSOR"),
        ({"cursor": "MjAyNS0wMS0wMVQwMDowMDowMHxub3QtYS11dWlk"}, "INVALID_CURSOR"),  # 2025-01-01T00:00:00|not-a-uuid
    ],
)
async def test_a_bad_filter_limit_or_cursor_is_a_422(gateway: Gateway, params: dict[str, Any], code: str) -> None:
    tenant = await gateway.create_tenant()
    response = await gateway.client.get(f"/api/v1/tenants/{tenant}/jobs", params=params, headers=gateway.auth(tenant))
    assert response.status_code == 422
    assert_error(response.json(), code)


async def test_a_tenant_subscriber_receives_its_jobs_events_in_order(gateway: Gateway) -> None:
    tenant, other = await gateway.create_tenant(), await gateway.create_tenant()
    job, theirs = await new_job(gateway, tenant), await new_job(gateway, other)
    async with socket(gateway, gateway.token(tenant)) as ws:
        assert await subscribe(ws, tenant_id=tenant) == {"type": "subscribed", "tenant_id": tenant}
        # The other tenant's job goes first: if it leaked, it would be the first thing received.
        await reporter(gateway, theirs).claim(stage="started", progress=0.05, limit=3)
        mine = reporter(gateway, job)
        await mine.claim(stage="started", progress=0.05, limit=3, message="sync started")
        await mine.stage("customers", 0.5, message="customers: 12 rows")
        await mine.finish(JobStatus.SUCCEEDED, stats={"rows": 12}, message="12 rows synced")

        received = [await receive(ws) for _ in range(3)]
        assert [(m["status"], m["stage"], m["progress"], m["message"], m["seq"]) for m in received] == [
            ("RUNNING", "started", 0.05, "sync started", 1),
            ("RUNNING", "customers", 0.5, "customers: 12 rows", 2),
            ("SUCCEEDED", "succeeded", 1.0, "12 rows synced", 3),
        ]
        last = received[-1]
        assert set(last) == {
            "type",
            "tenant_id",
            "job_id",
            "service",
            "stage",
            "status",
            "progress",
            "message",
            "at",
            "seq",
        }
        assert (last["type"], last["tenant_id"], last["job_id"], last["service"]) == (
            "status",
            tenant,
            str(job.id),
            "pennylane-sync",
        )
        assert last["at"].endswith("Z")
        # Events come in the order published: a sentinel job's first event, published last, is the next
        # one received if nothing else was sent after the three above.
        sentinel = await new_job(gateway, tenant)
        await reporter(gateway, sentinel).claim(stage="started", progress=0.05, limit=3)
        following = await receive(ws)
        assert (following["job_id"], following["seq"]) == (str(sentinel.id), 1)


async def test_openapi_documents_the_job_routes(gateway: Gateway) -> None:
    spec = (await gateway.client.get("/openapi.json")).json()
    listing = spec["paths"]["/api/v1/tenants/{tenant_id}/jobs"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"tenant_id", "kind", "status", "limit", "cursor"}
    assert set(listing["responses"]) == {"200", "401", "404", "422"}
    assert {"200", "401", "404"} <= set(spec["paths"]["/api/v1/jobs/{job_id}"]["get"]["responses"])
    schemas = spec["components"]["schemas"]
    assert set(schemas["JobOut"]["required"]) == JOB_FIELDS
    assert schemas["JobStatus"]["enum"] == ["PENDING", "RUNNING", "SUCCEEDED", "FAILED"]


async def test_a_job_subscription_gets_its_state_then_only_that_jobs_events(gateway: Gateway) -> None:
    tenant, other = await gateway.create_tenant(), await gateway.create_tenant()
    job, sibling, theirs = await new_job(gateway, tenant), await new_job(gateway, tenant), await new_job(gateway, other)
    async with socket(gateway, gateway.token(tenant)) as ws:
        assert await subscribe(ws, job_id=str(job.id)) == {
            "type": "subscribed",
            "job_id": str(job.id),
            "tenant_id": tenant,
            "status": "PENDING",
            "stage": job.stage,
            "progress": 0.0,
        }
        # A job of another tenant, and an unknown one, are refused alike.
        for refused in (str(theirs.id), str(uuid.uuid4()), "not-a-uuid"):
            await ws.send(f'{{"subscribe": {{"job_id": "{refused}"}}}}')
            answer = await receive(ws)
            assert (answer["type"], answer["error"]["code"]) == ("error", "NOT_FOUND")
        # The sibling's event goes first: if it leaked, it would be the first thing received.
        await reporter(gateway, sibling).claim(stage="started", progress=0.05, limit=3)
        await reporter(gateway, job).claim(stage="started", progress=0.05, limit=3, message="sync started")
        event = await receive(ws)
        assert (event["job_id"], event["status"], event["seq"], event["message"]) == (
            str(job.id),
            "RUNNING",
            1,
            "sync started",
        )
