"""Batch upload (docs/api.md, Upload): streaming multipart → S3, one transaction for the batch and its event."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator

import pytest

from comptaflow.common import batches
from comptaflow.common.bus import Delivery
from comptaflow.common.bus.memory import MemoryBus
from comptaflow.common.contracts import BatchKind, BatchUploaded, Message
from comptaflow.common.settings import Settings
from comptaflow.common.tokens import Role
from tests.common.support import eventually
from tests.gateway.support import (
    EXCEL_FIELDS,
    FileSpec,
    Gateway,
    excel_files,
    fec_bytes,
    fec_file,
    running_gateway,
    xlsx_bytes,
)
from tests.gateway.test_auth_tenants import assert_error
from tests.queues import PERIOD_VALIDATOR_QUEUE

pytestmark = pytest.mark.infra

OLE2_XLS = bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 504  # an OLE2 header: what an old .xls starts with


async def consumed_events(bus: MemoryBus, count: int, *, within: float = 10.0) -> list[Message]:
    """Consume `count` events from the period-validator queue of the in-process bus."""
    received: list[Message] = []
    done = asyncio.Event()

    async def handler(event: Message, _delivery: Delivery) -> None:
        received.append(event)
        if len(received) >= count:
            done.set()

    consumer = await bus.consume(PERIOD_VALIDATOR_QUEUE, handler, prefetch=1)
    try:
        await asyncio.wait_for(done.wait(), timeout=within)
    finally:
        await consumer.stop(grace=1)
    return received


async def assert_nothing_stored(gateway: Gateway, tenant: str) -> None:
    assert await gateway.stored_keys(tenant) == []
    assert await gateway.batch_count(tenant) == 0
    async with gateway.infra.db.acquire() as conn:
        pending = await conn.fetchval("SELECT count(*) FROM outbox WHERE body::jsonb ->> 'tenant_id' = $1", tenant)
    assert pending == 0


async def test_excel_upload_stores_five_files_and_relays_the_event(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    files = excel_files()
    response = await gateway.upload(tenant, files, {"auto_load": "true"})

    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"batch_id", "tenant_id", "kind", "status"}
    assert body["tenant_id"] == tenant
    assert body["kind"] == "excel"
    assert body["status"] == "PENDING"
    batch_id = uuid.UUID(body["batch_id"])

    assert sorted(await gateway.stored_keys(tenant)) == sorted(
        f"{tenant}/incoming/{batch_id}/{field}.xlsx" for field in EXCEL_FIELDS
    )
    async with gateway.infra.db.acquire() as conn:
        batch = await batches.get_batch(conn, batch_id)
    assert batch is not None
    assert batch.status.value == "PENDING"
    assert batch.auto_load is True
    assert batch.created_by == "alice"
    by_field = {f.field: f for f in batch.files}
    for field, (filename, content, _) in files:
        stored = by_field[field]
        assert stored.filename == filename
        assert stored.size == len(content)
        assert stored.sha256 == hashlib.sha256(content).hexdigest()
        assert stored.object_key == f"{tenant}/incoming/{batch_id}/{field}.xlsx"
        assert await gateway.infra.storage.get_bytes(stored.object_key) == content

    assert isinstance(gateway.infra.bus, MemoryBus)
    [event] = await consumed_events(gateway.infra.bus, 1)
    assert isinstance(event, BatchUploaded)
    assert (event.tenant_id, event.batch_id, event.kind, event.auto_load) == (tenant, batch_id, BatchKind.EXCEL, True)

    async def relayed() -> bool:  # the relay deletes the row in the transaction that published it
        async with gateway.infra.db.acquire() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM outbox WHERE message_id = $1", event.message_id) == 0)

    await eventually(relayed)


async def test_an_old_xls_is_accepted_and_stored_as_xls(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    files = excel_files(plan_tiers=OLE2_XLS)
    response = await gateway.upload(tenant, files)
    assert response.status_code == 202, response.text
    batch_id = response.json()["batch_id"]
    keys = await gateway.stored_keys(tenant)
    assert f"{tenant}/incoming/{batch_id}/plan_tiers.xls" in keys
    assert f"{tenant}/incoming/{batch_id}/plan_comptes.xlsx" in keys


async def test_fec_upload_with_period(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    content = fec_bytes(lines=3)
    response = await gateway.upload(
        tenant, fec_file(content), {"period_start": "2024-01-01", "period_end": "2024-12-31", "auto_load": "false"}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["kind"] == "fec"
    assert body["status"] == "PENDING"
    batch_id = uuid.UUID(body["batch_id"])
    async with gateway.infra.db.acquire() as conn:
        batch = await batches.get_batch(conn, batch_id)
    assert batch is not None
    assert batch.kind is BatchKind.FEC
    assert batch.auto_load is False
    assert batch.options == {"period_start": "2024-01-01", "period_end": "2024-12-31"}
    [stored] = batch.files
    assert (stored.field, stored.filename, stored.size) == ("fec", "123456789FEC20241231.txt", len(content))
    assert stored.object_key == f"{tenant}/incoming/{batch_id}/fec.txt"
    assert await gateway.infra.storage.get_bytes(stored.object_key) == content

    assert isinstance(gateway.infra.bus, MemoryBus)
    [event] = await consumed_events(gateway.infra.bus, 1)
    assert isinstance(event, BatchUploaded)
    assert (event.batch_id, event.kind, event.auto_load) == (batch_id, BatchKind.FEC, False)


@pytest.mark.parametrize(
    "header",
    [
        b"JournalCode|JournalLib|EcritureNum|EcritureDate|CompteNum\n",
        b"journalcode;journallib;ecriturenum\r\n",
        b'"JournalCode","JournalLib","EcritureNum"\n',
        b"JournalCode\tJournalLib",  # a header without a newline at all
    ],
    ids=["pipe", "semicolon-lowercase", "comma-quoted", "no-newline"],
)
async def test_fec_separators(gateway: Gateway, header: bytes) -> None:
    tenant = await gateway.create_tenant()
    response = await gateway.upload(tenant, fec_file(header + b"VT|Ventes|1|20240131|411000\n"))
    assert response.status_code == 202, response.text


async def test_uploading_is_refused_to_a_viewer_and_for_a_hidden_tenant(gateway: Gateway) -> None:
    tenant, other = await gateway.create_tenant(), await gateway.create_tenant()
    viewer = await gateway.upload(tenant, excel_files(), role=Role.VIEWER)
    assert viewer.status_code == 403
    assert_error(viewer.json(), "FORBIDDEN")
    hidden = await gateway.client.post(
        f"/api/v1/tenants/{other}/batches", files=excel_files(), headers=gateway.auth(tenant)
    )
    assert hidden.status_code == 404
    assert_error(hidden.json(), "NOT_FOUND")
    unknown = await gateway.client.post(
        "/api/v1/tenants/never-created/batches", files=excel_files(), headers=gateway.auth("*")
    )
    assert unknown.status_code == 404
    assert_error(unknown.json(), "NOT_FOUND")
    for t in (tenant, other):
        await assert_nothing_stored(gateway, t)


CSV_AS_XLSX = b"compte;libelle;debit;credit\n411000;Clients;120,00;0,00\n"
ODS = b"PK\x03\x04" + b"\x14\x00" + b"\x00" * 20 + (8).to_bytes(2, "little") + b"\x00\x00" + b"mimetypeapplication/x"


def _without(field: str) -> list[FileSpec]:
    return [spec for spec in excel_files() if spec[0] != field]


@pytest.mark.parametrize(
    ("files", "data", "code", "details"),
    [
        (_without("plan_tiers"), {}, "MISSING_FILE", {"missing": ["plan_tiers"]}),
        ([], {"auto_load": "true"}, "MISSING_FILE", {"missing": list(EXCEL_FIELDS)}),
        (
            [*excel_files(), ("plan_comptes", ("again.xlsx", xlsx_bytes(), "application/octet-stream"))],
            {},
            "DUPLICATE_FIELD",
            {"field": "plan_comptes"},
        ),
        (
            [*excel_files(), ("balance", ("b.xlsx", xlsx_bytes(), "application/octet-stream"))],
            {},
            "UNKNOWN_FIELD",
            None,
        ),
        ([*excel_files()], {"comment": "hello"}, "UNKNOWN_FIELD", None),
        ([*excel_files(), *fec_file()], {}, "MIXED_FIELDS", None),
        (excel_files(code_journal=b""), {}, "EMPTY_FILE", {"field": "code_journal", "filename": "code_journal.xlsx"}),
        (fec_file(b""), {}, "EMPTY_FILE", {"field": "fec", "filename": "123456789FEC20241231.txt"}),
        (excel_files(grand_livre_tiers=CSV_AS_XLSX), {}, "NOT_EXCEL", {"field": "grand_livre_tiers"}),
        (excel_files(plan_comptes=ODS), {}, "NOT_EXCEL", {"field": "plan_comptes"}),
        (excel_files(plan_comptes=b"PK\x03"), {}, "NOT_EXCEL", {"field": "plan_comptes"}),
        (fec_file(b"Date;Compte;Montant\n2024-01-01;411000;12\n"), {}, "NOT_FEC", {"field": "fec"}),
        (fec_file(xlsx_bytes()), {}, "NOT_FEC", {"field": "fec"}),
        (fec_file("JournalCode\tJournalLib\n".encode("utf-16")), {}, "NOT_FEC", {"field": "fec"}),
        (excel_files(), {"auto_load": "yes"}, "INVALID_FIELD", {"field": "auto_load"}),
        (fec_file(), {"period_start": "2024-02-30", "period_end": "2024-12-31"}, "INVALID_FIELD", None),
        (fec_file(), {"period_start": "2024-01-01"}, "INVALID_FIELD", {"field": "period_end"}),
        (fec_file(), {"period_start": "2024-12-31", "period_end": "2024-01-01"}, "INVALID_FIELD", None),
        (excel_files(), {"period_start": "2024-01-01", "period_end": "2024-12-31"}, "INVALID_FIELD", None),
    ],
    ids=[
        "missing-one",
        "no-file-at-all",
        "duplicate",
        "unknown-file-field",
        "unknown-text-field",
        "fec-and-excel",
        "empty-excel",
        "empty-fec",
        "csv-renamed-xlsx",
        "ods-not-ooxml",
        "truncated-zip",
        "csv-not-fec",
        "xlsx-as-fec",
        "utf16-fec",
        "bad-auto-load",
        "impossible-date",
        "half-a-period",
        "reversed-period",
        "period-on-excel",
    ],
)
async def test_rejected_uploads_store_nothing(
    gateway: Gateway, files: list[FileSpec], data: dict[str, str], code: str, details: dict[str, object] | None
) -> None:
    tenant = await gateway.create_tenant()
    response = await gateway.upload(tenant, files, data)
    assert response.status_code == 422, response.text
    body = response.json()
    assert_error(body, code)
    if details is not None:
        assert {k: body["error"]["details"][k] for k in details} == details
    await assert_nothing_stored(gateway, tenant)


async def test_files_stored_before_a_rejected_one_are_deleted(gateway: Gateway) -> None:
    """A 9 MiB first file (a completed S3 multipart upload), then a bad second file: nothing remains."""
    tenant = await gateway.create_tenant()
    big = xlsx_bytes() + b"\x00" * (9 * 1024 * 1024)
    files = excel_files(grand_livre_comptes=big, grand_livre_tiers=CSV_AS_XLSX)
    response = await gateway.upload(tenant, files)
    assert response.status_code == 422
    assert_error(response.json(), "NOT_EXCEL")
    await assert_nothing_stored(gateway, tenant)
    uploads = await gateway.infra.storage.client.list_multipart_uploads(
        Bucket=gateway.infra.storage.bucket, Prefix=f"{tenant}/"
    )
    assert uploads.get("Uploads", []) == []


@pytest.mark.parametrize(
    ("content_type", "body", "code"),
    [
        ("application/json", b'{"fec": "x"}', "MISSING_FILE"),
        ("multipart/form-data", b"--x\r\n", "BAD_MULTIPART"),
        (
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="fec"\r\n\r\nJournal',
            "BAD_MULTIPART",
        ),
        (
            "multipart/form-data; boundary=xyz",
            b"--xyz\r\nContent-Type: text/plain\r\n\r\nhello\r\n--xyz--\r\n",
            "BAD_MULTIPART",
        ),
    ],
    ids=["json", "no-boundary", "truncated", "part-without-name"],
)
async def test_a_body_that_is_not_proper_multipart_is_422(
    gateway: Gateway, content_type: str, body: bytes, code: str
) -> None:
    tenant = await gateway.create_tenant()
    response = await gateway.client.post(
        f"/api/v1/tenants/{tenant}/batches",
        content=body,
        headers={**gateway.auth(tenant), "Content-Type": content_type},
    )
    assert response.status_code == 422
    assert_error(response.json(), code)
    await assert_nothing_stored(gateway, tenant)


async def test_a_file_over_the_limit_is_refused_as_soon_as_it_crosses_it(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_upload_mb": 1})
    async with running_gateway(limited) as gateway:
        tenant = await gateway.create_tenant()
        too_big = xlsx_bytes() + b"\x00" * (2 * 1024 * 1024)
        response = await gateway.upload(tenant, excel_files(plan_comptes=too_big))
        assert response.status_code == 422
        body = response.json()
        assert_error(body, "FILE_TOO_LARGE")
        assert body["error"]["details"]["field"] == "plan_comptes"
        assert body["error"]["details"]["limit_bytes"] == 1024 * 1024
        await assert_nothing_stored(gateway, tenant)

        just_fits = xlsx_bytes() + b"\x00" * (1024 * 1024 - len(xlsx_bytes()))
        accepted = await gateway.upload(tenant, excel_files(plan_comptes=just_fits))
        assert accepted.status_code == 202, accepted.text


async def raw_post(gateway: Gateway, path: str, head: dict[str, str], body: bytes) -> tuple[int, dict[str, object]]:
    """Send the head and the start of a body, never the rest; return the answer that comes anyway."""
    host, port = gateway.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in head.items()), "", ""]
        writer.write("\r\n".join(lines).encode() + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        payload = await reader.readexactly(int(headers["content-length"]))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return int(status_line.split()[1]), json.loads(payload)


async def test_a_declared_length_beyond_any_valid_upload_is_refused_before_reading(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_upload_mb": 1})
    async with running_gateway(limited) as gateway:
        tenant = await gateway.create_tenant()
        status, body = await raw_post(
            gateway,
            f"/api/v1/tenants/{tenant}/batches",
            {
                "Authorization": f"Bearer {gateway.token(tenant)}",
                "Content-Type": "multipart/form-data; boundary=xyz",
                "Content-Length": str(50 * 1024 * 1024),
                "Expect": "100-continue",
            },
            b"",  # not a byte of the body is sent: the answer cannot depend on it
        )
        assert status == 422
        assert_error(body, "FILE_TOO_LARGE")
        await assert_nothing_stored(gateway, tenant)


async def test_reading_stops_as_soon_as_a_file_crosses_the_limit(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_upload_mb": 1})
    async with running_gateway(limited) as gateway:
        tenant = await gateway.create_tenant()
        part_head = (
            b'--xyz\r\nContent-Disposition: form-data; name="plan_comptes"; filename="p.xlsx"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        started = part_head + xlsx_bytes() + b"\x00" * (1024 * 1024 + 64 * 1024)
        status, body = await raw_post(
            gateway,
            f"/api/v1/tenants/{tenant}/batches",
            {
                "Authorization": f"Bearer {gateway.token(tenant)}",
                "Content-Type": "multipart/form-data; boundary=xyz",
                "Content-Length": str(len(started) + 4 * 1024 * 1024),  # the rest never comes
            },
            started,
        )
        assert status == 422
        assert_error(body, "FILE_TOO_LARGE")
        await assert_nothing_stored(gateway, tenant)


async def test_chunked_upload_without_content_length(gateway: Gateway) -> None:
    """Files are streamed whatever the framing: a chunked body without Content-Length works too."""
    tenant = await gateway.create_tenant()
    request = gateway.client.build_request(
        "POST", f"/api/v1/tenants/{tenant}/batches", files=fec_file(), headers=gateway.auth(tenant)
    )
    content = request.read()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 7):  # tiny chunks: parts and headers split anywhere
            yield content[start : start + 7]

    response = await gateway.client.post(
        f"/api/v1/tenants/{tenant}/batches",
        content=chunks(),
        headers={**gateway.auth(tenant), "Content-Type": request.headers["Content-Type"]},
    )
    assert response.status_code == 202, response.text
    assert len(await gateway.stored_keys(tenant)) == 1


async def test_upload_is_isolated_per_batch(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    first, second = await asyncio.gather(gateway.upload(tenant, fec_file()), gateway.upload(tenant, excel_files()))
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["batch_id"] != second.json()["batch_id"]
    assert len(await gateway.stored_keys(tenant)) == 6
    assert await gateway.batch_count(tenant) == 2


async def test_the_batch_and_its_event_are_committed_together(settings: Settings) -> None:
    """Without a relay in this process, the committed outbox row waits beside the PENDING batch."""
    async with running_gateway(settings, relay=False) as gateway:
        tenant = await gateway.create_tenant()
        response = await gateway.upload(tenant, fec_file(), {"auto_load": "true"})
        assert response.status_code == 202
        batch_id = response.json()["batch_id"]
        async with gateway.infra.db.acquire() as conn:
            status = await conn.fetchval("SELECT status FROM batches WHERE id = $1", uuid.UUID(batch_id))
            rows = await conn.fetch(
                "SELECT routing_key, body FROM outbox WHERE body::jsonb ->> 'batch_id' = $1", batch_id
            )
            await conn.execute("DELETE FROM outbox WHERE body::jsonb ->> 'batch_id' = $1", batch_id)
    assert status == "PENDING"
    assert len(rows) == 1
    assert rows[0]["routing_key"] == "batch.uploaded"
    event = BatchUploaded.model_validate_json(rows[0]["body"])
    assert (str(event.batch_id), event.tenant_id, event.kind, event.auto_load) == (
        batch_id,
        tenant,
        BatchKind.FEC,
        True,
    )


async def test_a_client_that_goes_away_mid_upload_leaves_nothing(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    host, port = gateway.base_url.removeprefix("http://").split(":")
    first = (
        b'--xyz\r\nContent-Disposition: form-data; name="plan_comptes"; filename="p.xlsx"\r\n\r\n'
        + xlsx_bytes()
        + b'\r\n--xyz\r\nContent-Disposition: form-data; name="plan_tiers"; filename="t.xlsx"\r\n\r\n'
        + xlsx_bytes()[:20]
    )
    head = (
        f"POST /api/v1/tenants/{tenant}/batches HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {gateway.token(tenant)}\r\n"
        f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {len(first) + 10_000}\r\n\r\n"
    )
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(head.encode() + first)
    await writer.drain()

    async def first_file_stored() -> bool:
        return len(await gateway.stored_keys(tenant)) == 1

    await eventually(first_file_stored)  # plan_comptes is complete, plan_tiers is being received
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()

    async def cleaned_up() -> bool:
        return await gateway.stored_keys(tenant) == []

    await eventually(cleaned_up)
    assert await gateway.batch_count(tenant) == 0
