"""Loading a batch, the periods timeline and restoring a backup (docs/api.md, Batches) through the gateway.

The gateway runs on a recording in-process bus: what the outbox relay publishes is what a loader
would receive.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date

import pytest

from comptaflow.common import batches, loads
from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.contracts import BatchKind, BatchStatus, LoadRequested, parse_message
from comptaflow.common.settings import Settings
from comptaflow.common.tokens import Role
from comptaflow.gateway.schemas import utc_timestamp
from tests.gateway.support import Gateway, running_gateway, tenant_id
from tests.gateway.test_auth_tenants import assert_error

pytestmark = pytest.mark.infra

JAN = (date(2024, 1, 1), date(2024, 1, 31))
FEB = (date(2024, 2, 1), date(2024, 2, 29))
MAR = (date(2024, 3, 1), date(2024, 3, 31))  # the period of the sentinel loads: no test loads it otherwise


class RecordingBus(MemoryBus):
    """The in-process bus, keeping every event it is handed."""

    def __init__(self) -> None:
        super().__init__(service="gateway", delivery_limit=3)
        self.published: list[tuple[str, bytes]] = []
        self._arrived = asyncio.Condition()

    async def publish_raw(self, routing_key: str, body: bytes, *, message_id: str) -> None:
        await super().publish_raw(routing_key, body, message_id=message_id)
        async with self._arrived:
            self.published.append((routing_key, body))
            self._arrived.notify_all()

    def load_requests(self, tenant: str) -> list[LoadRequested]:
        found = [parse_message(body, (LoadRequested,)) for key, body in self.published if key == "batch.load_requested"]
        return [e for e in found if isinstance(e, LoadRequested) and e.tenant_id == tenant]

    async def wait_for_load_requests(self, tenant: str, count: int) -> list[LoadRequested]:
        async with asyncio.timeout(10), self._arrived:
            await self._arrived.wait_for(lambda: len(self.load_requests(tenant)) >= count)
        return self.load_requests(tenant)

    async def wait_for_load_request(self, tenant: str, batch_id: uuid.UUID) -> None:
        async with asyncio.timeout(10), self._arrived:
            await self._arrived.wait_for(lambda: any(r.batch_id == batch_id for r in self.load_requests(tenant)))


@pytest.fixture
async def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
async def gateway(settings: Settings, bus: RecordingBus) -> AsyncIterator[Gateway]:
    async with running_gateway(settings, bus=bus) as running:
        yield running


async def make_batch(
    gw: Gateway,
    tenant: str,
    status: BatchStatus = BatchStatus.VALIDATED,
    period: tuple[date, date] = JAN,
) -> uuid.UUID:
    """A batch of `tenant` brought to `status` through the state machine (period set on validation)."""
    batch_id = uuid.uuid4()
    async with gw.infra.db.acquire() as conn:
        await batches.insert_batch(
            conn, batch_id=batch_id, tenant_id=tenant, kind=BatchKind.EXCEL, files=[], auto_load=False, created_by="t"
        )
        path = {
            BatchStatus.PENDING: [],
            BatchStatus.VALIDATING: [BatchStatus.VALIDATING],
            BatchStatus.VALIDATED: [BatchStatus.VALIDATING, BatchStatus.VALIDATED],
            BatchStatus.PROCESSING: [BatchStatus.VALIDATING, BatchStatus.VALIDATED, BatchStatus.PROCESSING],
            BatchStatus.COMPLETED: [
                BatchStatus.VALIDATING,
                BatchStatus.VALIDATED,
                BatchStatus.PROCESSING,
                BatchStatus.COMPLETED,
            ],
            BatchStatus.FAILED: [BatchStatus.FAILED],
        }[status]
        for step in path:
            moved = await batches.transition(
                conn,
                batch_id,
                step,
                stage=step.value.lower(),
                progress=1.0 if step is BatchStatus.COMPLETED else 0.5,
                period=period if step is BatchStatus.VALIDATED else None,
            )
            assert moved is not None
    return batch_id


async def loads_requested_until_a_sentinel(gw: Gateway, bus: RecordingBus, tenant: str) -> list[uuid.UUID]:
    """The batches of the load requests published for `tenant` before a sentinel's, requested now.

    The outbox relays its rows in commit order, and a request commits its row before it answers: once the
    sentinel's load request is published, whatever the earlier requests committed was published before it.
    The sentinel is a validated March batch; it is left out of the list."""
    sentinel = await make_batch(gw, tenant, BatchStatus.VALIDATED, MAR)
    response = await gw.client.post(f"/api/v1/batches/{sentinel}/load", headers=gw.auth(tenant))
    assert response.status_code == 202
    await bus.wait_for_load_request(tenant, sentinel)
    requested = [request.batch_id for request in bus.load_requests(tenant)]
    assert requested[-1:] == [sentinel]
    return requested[:-1]


async def batch_state(gw: Gateway, batch_id: uuid.UUID) -> tuple[str, str, float]:
    async with gw.infra.db.acquire() as conn:
        batch = await batches.get_batch(conn, batch_id)
    assert batch is not None
    return batch.status.value, batch.stage, batch.progress


# --- POST /batches/{id}/load ---------------------------------------------------------------------------


async def test_loading_a_validated_batch_makes_it_processing_and_requests_the_load(
    gateway: Gateway, bus: RecordingBus
) -> None:
    tenant = await gateway.create_tenant()
    batch_id = await make_batch(gateway, tenant)

    response = await gateway.client.post(f"/api/v1/batches/{batch_id}/load", headers=gateway.auth(tenant))

    assert response.status_code == 202
    assert response.json() == {"batch_id": str(batch_id), "status": "PROCESSING"}
    assert await batch_state(gateway, batch_id) == ("PROCESSING", "queued", 0.0)
    [request] = await bus.wait_for_load_requests(tenant, 1)
    assert (request.tenant_id, request.batch_id, request.backup_id) == (tenant, batch_id, None)
    shown = (await gateway.client.get(f"/api/v1/batches/{batch_id}", headers=gateway.auth(tenant))).json()
    assert (shown["status"], shown["stage"], shown["progress"]) == ("PROCESSING", "queued", 0.0)


@pytest.mark.parametrize(
    "status", [BatchStatus.PENDING, BatchStatus.VALIDATING, BatchStatus.COMPLETED, BatchStatus.FAILED]
)
async def test_only_a_validated_batch_can_be_loaded(gateway: Gateway, bus: RecordingBus, status: BatchStatus) -> None:
    tenant = await gateway.create_tenant()
    batch_id = await make_batch(gateway, tenant, status)
    before = await batch_state(gateway, batch_id)

    response = await gateway.client.post(f"/api/v1/batches/{batch_id}/load", headers=gateway.auth(tenant))

    assert response.status_code == 409
    assert_error(response.json(), "BATCH_NOT_VALIDATED")
    assert response.json()["error"]["details"] == {"status": status.value}
    assert await batch_state(gateway, batch_id) == before
    assert await loads_requested_until_a_sentinel(gateway, bus, tenant) == []


async def test_a_batch_is_loaded_once(gateway: Gateway, bus: RecordingBus) -> None:
    tenant = await gateway.create_tenant()
    batch_id = await make_batch(gateway, tenant)
    first = await gateway.client.post(f"/api/v1/batches/{batch_id}/load", headers=gateway.auth(tenant))
    second = await gateway.client.post(f"/api/v1/batches/{batch_id}/load", headers=gateway.auth(tenant))
    assert first.status_code == 202
    assert second.status_code == 409
    assert_error(second.json(), "BATCH_NOT_VALIDATED")
    assert await loads_requested_until_a_sentinel(gateway, bus, tenant) == [batch_id]


async def test_an_overlapping_period_is_busy_while_another_batch_of_the_tenant_is_processing(
    gateway: Gateway, bus: RecordingBus
) -> None:
    tenant = await gateway.create_tenant()
    other_tenant = await gateway.create_tenant()
    processing = await make_batch(gateway, tenant, BatchStatus.PROCESSING, JAN)
    await make_batch(gateway, other_tenant, BatchStatus.PROCESSING, FEB)
    overlapping = await make_batch(gateway, tenant, BatchStatus.VALIDATED, (date(2024, 1, 31), date(2024, 2, 29)))
    disjoint = await make_batch(gateway, tenant, BatchStatus.VALIDATED, FEB)
    headers = gateway.auth(tenant)

    busy = await gateway.client.post(f"/api/v1/batches/{overlapping}/load", headers=headers)
    assert busy.status_code == 409
    assert_error(busy.json(), "PERIOD_BUSY")
    assert busy.json()["error"]["details"] == {
        "batch_id": str(processing),
        "period_start": "2024-01-31",
        "period_end": "2024-02-29",
    }
    assert (await batch_state(gateway, overlapping))[0] == "VALIDATED"

    # Another period of the same tenant, and another tenant's batch of the same period, do not block.
    ok = await gateway.client.post(f"/api/v1/batches/{disjoint}/load", headers=headers)
    assert ok.status_code == 202
    [request] = await bus.wait_for_load_requests(tenant, 1)
    assert request.batch_id == disjoint


async def test_two_overlapping_loads_requested_at_once_are_decided_one_after_the_other(
    gateway: Gateway, bus: RecordingBus
) -> None:
    tenant = await gateway.create_tenant()
    first = await make_batch(gateway, tenant, BatchStatus.VALIDATED, JAN)
    second = await make_batch(gateway, tenant, BatchStatus.VALIDATED, JAN)
    headers = gateway.auth(tenant)

    answers = await asyncio.gather(
        *(gateway.client.post(f"/api/v1/batches/{b}/load", headers=headers) for b in (first, second))
    )

    assert sorted(a.status_code for a in answers) == [202, 409]
    refused = next(a for a in answers if a.status_code == 409)
    assert_error(refused.json(), "PERIOD_BUSY")
    states = sorted([(await batch_state(gateway, b))[0] for b in (first, second)])
    assert states == ["PROCESSING", "VALIDATED"]
    accepted = next(b for b, a in zip((first, second), answers, strict=True) if a.status_code == 202)
    assert await loads_requested_until_a_sentinel(gateway, bus, tenant) == [accepted]


async def test_load_is_refused_to_other_tenants_viewers_and_anonymous_callers(
    gateway: Gateway, bus: RecordingBus
) -> None:
    tenant = await gateway.create_tenant()
    other = await gateway.create_tenant()
    batch_id = await make_batch(gateway, tenant)
    url = f"/api/v1/batches/{batch_id}/load"

    other_tenant = await gateway.client.post(url, headers=gateway.auth(other))
    assert other_tenant.status_code == 404
    assert_error(other_tenant.json(), "NOT_FOUND")
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        missing = await gateway.client.post(f"/api/v1/batches/{unknown}/load", headers=gateway.auth("*"))
        assert missing.status_code == 404
        assert_error(missing.json(), "NOT_FOUND")
    viewer = await gateway.client.post(url, headers=gateway.auth(tenant, role=Role.VIEWER))
    assert viewer.status_code == 403
    assert_error(viewer.json(), "FORBIDDEN")
    anonymous = await gateway.client.post(url)
    assert anonymous.status_code == 401
    assert_error(anonymous.json(), "UNAUTHORIZED")

    assert await batch_state(gateway, batch_id) == ("VALIDATED", "validated", 0.5)
    assert await loads_requested_until_a_sentinel(gateway, bus, tenant) == []


# --- GET /tenants/{id}/periods and POST /backups/{id}/restore -------------------------------------------


async def seed_periods(gw: Gateway, tenant: str) -> dict[str, uuid.UUID]:
    """Feb loaded once; Jan loaded twice (its first load kept as a backup), then a third time."""
    ids = {
        name: await make_batch(gw, tenant, BatchStatus.COMPLETED, period)
        for name, period in (
            ("feb", FEB),
            ("jan1", JAN),
            ("jan2", JAN),
            ("jan3", JAN),
        )
    }
    async with gw.infra.db.acquire() as conn:
        await loads.switch(
            conn, tenant_id=tenant, start=FEB[0], end=FEB[1], batch_id=ids["feb"], kind="fec", backup_prefix=None
        )
        for name in ("jan1", "jan2", "jan3"):
            async with conn.transaction():
                switched = await loads.switch(
                    conn,
                    tenant_id=tenant,
                    start=JAN[0],
                    end=JAN[1],
                    batch_id=ids[name],
                    kind="excel",
                    backup_prefix=f"{tenant}/declaration/2024/periode-20240101-20240131/backup/x/",
                )
            if switched.backup_id is not None:
                replaced = next(n for n, b in ids.items() if b == switched.replaced)
                ids[f"backup_{replaced}"] = switched.backup_id
    return ids


async def test_periods_list_the_current_load_of_each_period_and_its_backups(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    ids = await seed_periods(gateway, tenant)
    await seed_periods(gateway, await gateway.create_tenant())  # another tenant's periods never show

    response = await gateway.client.get(
        f"/api/v1/tenants/{tenant}/periods", headers=gateway.auth(tenant, role=Role.VIEWER)
    )

    assert response.status_code == 200
    async with gateway.infra.db.acquire() as conn:
        loaded = {
            r["batch_id"]: r["loaded_at"]
            for r in await conn.fetch("SELECT batch_id, loaded_at FROM loaded_periods WHERE tenant_id = $1", tenant)
        }
        created = {
            r["id"]: r["created_at"]
            for r in await conn.fetch("SELECT id, created_at FROM backups WHERE tenant_id = $1", tenant)
        }
    backup_jan2 = ids["backup_jan2"]
    backup_jan1 = ids["backup_jan1"]
    assert response.json() == {
        "items": [
            {
                "period_start": "2024-01-01",
                "period_end": "2024-01-31",
                "batch_id": str(ids["jan3"]),
                "loaded_at": utc_timestamp(loaded[ids["jan3"]]),
                "kind": "excel",
                "backups": [
                    {
                        "backup_id": str(backup_jan2),
                        "batch_id": str(ids["jan2"]),
                        "created_at": utc_timestamp(created[backup_jan2]),
                    },
                    {
                        "backup_id": str(backup_jan1),
                        "batch_id": str(ids["jan1"]),
                        "created_at": utc_timestamp(created[backup_jan1]),
                    },
                ],
            },
            {
                "period_start": "2024-02-01",
                "period_end": "2024-02-29",
                "batch_id": str(ids["feb"]),
                "loaded_at": utc_timestamp(loaded[ids["feb"]]),
                "kind": "fec",
                "backups": [],
            },
        ]
    }


async def test_periods_of_a_tenant_without_loads_and_of_hidden_tenants(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    empty = await gateway.client.get(f"/api/v1/tenants/{tenant}/periods", headers=gateway.auth(tenant))
    assert empty.status_code == 200
    assert empty.json() == {"items": []}
    hidden = await gateway.client.get(f"/api/v1/tenants/{tenant}/periods", headers=gateway.auth("someone-else"))
    assert hidden.status_code == 404
    assert_error(hidden.json(), "NOT_FOUND")
    missing = await gateway.client.get(f"/api/v1/tenants/{tenant_id()}/periods", headers=gateway.auth("*"))
    assert missing.status_code == 404
    anonymous = await gateway.client.get(f"/api/v1/tenants/{tenant}/periods")
    assert anonymous.status_code == 401


async def test_restoring_a_backup_requests_a_load_of_its_batch(gateway: Gateway, bus: RecordingBus) -> None:
    tenant = await gateway.create_tenant()
    ids = await seed_periods(gateway, tenant)
    backup_id = ids["backup_jan1"]

    response = await gateway.client.post(f"/api/v1/backups/{backup_id}/restore", headers=gateway.auth(tenant))

    assert response.status_code == 202
    assert response.json() == {"batch_id": str(ids["jan1"]), "status": "PROCESSING"}
    [request] = await bus.wait_for_load_requests(tenant, 1)
    assert (request.tenant_id, request.batch_id, request.backup_id) == (tenant, ids["jan1"], backup_id)


async def test_restore_is_refused_to_other_tenants_viewers_and_while_the_period_is_loading(
    gateway: Gateway, bus: RecordingBus
) -> None:
    tenant = await gateway.create_tenant()
    other = await gateway.create_tenant()
    ids = await seed_periods(gateway, tenant)
    url = f"/api/v1/backups/{ids['backup_jan1']}/restore"

    hidden = await gateway.client.post(url, headers=gateway.auth(other))
    assert hidden.status_code == 404
    assert_error(hidden.json(), "NOT_FOUND")
    for unknown in (str(uuid.uuid4()), "nope"):
        missing = await gateway.client.post(f"/api/v1/backups/{unknown}/restore", headers=gateway.auth("*"))
        assert missing.status_code == 404
        assert_error(missing.json(), "NOT_FOUND")
    viewer = await gateway.client.post(url, headers=gateway.auth(tenant, role=Role.VIEWER))
    assert viewer.status_code == 403
    assert_error(viewer.json(), "FORBIDDEN")
    assert (await gateway.client.post(url)).status_code == 401

    loading = await make_batch(gateway, tenant, BatchStatus.PROCESSING, (date(2024, 1, 15), date(2024, 2, 15)))
    busy = await gateway.client.post(url, headers=gateway.auth(tenant))
    assert busy.status_code == 409
    assert_error(busy.json(), "PERIOD_BUSY")
    assert busy.json()["error"]["details"]["batch_id"] == str(loading)

    assert await loads_requested_until_a_sentinel(gateway, bus, tenant) == []
