"""Upload limits against hostile clients (docs/api.md, Upload refusals): a stalled body is a 408 and its connection is
closed; too many uploads in flight, per tenant or in all, are a 429 with Retry-After before the body is
read; in every case nothing is stored and the slot is given back."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from comptaflow.common.settings import Settings
from comptaflow.gateway.admission import RETRY_AFTER_S
from comptaflow.gateway.state import GatewayState
from tests.common.support import eventually
from tests.gateway.raw_http import CLOSING, RawConnection, file_part, upload_connection
from tests.gateway.support import FEC_HEADER, FEC_LINE, Gateway, fec_bytes, fec_file, running_gateway, xlsx_bytes
from tests.gateway.test_auth_tenants import assert_error
from tests.gateway.test_upload import assert_nothing_stored

pytestmark = pytest.mark.infra


def gateway_state(gateway: Gateway) -> GatewayState:
    state = gateway.app.state.gateway
    assert isinstance(state, GatewayState)
    return state


async def open_multipart_uploads(gateway: Gateway, tenant: str) -> int:
    listed = await gateway.infra.storage.client.list_multipart_uploads(
        Bucket=gateway.infra.storage.bucket, Prefix=f"{tenant}/"
    )
    return len(listed.get("Uploads", []))


async def test_a_stalled_body_is_a_408_that_closes_the_connection_and_stores_nothing(settings: Settings) -> None:
    """A complete first file (an S3 object) and 9 MiB of a second (an open multipart upload), then silence."""
    async with running_gateway(settings.model_copy(update={"upload_idle_s": 1.0})) as gateway:
        tenant = await gateway.create_tenant()
        sent = file_part("plan_comptes", "p.xlsx", xlsx_bytes(), first=True) + file_part(
            "plan_tiers", "t.xlsx", xlsx_bytes() + b"\x00" * (9 * 1024 * 1024)
        )
        async with upload_connection(gateway, tenant, content_length=len(sent) + 1024 * 1024) as connection:
            await connection.send(sent)
            sent_at = time.monotonic()

            async def stored_while_stalled() -> bool:
                return (
                    len(await gateway.stored_keys(tenant)) == 1 and await open_multipart_uploads(gateway, tenant) == 1
                )

            await eventually(stored_while_stalled)  # what the 408 must undo
            answer = await connection.answer(within=15)
            waited = time.monotonic() - sent_at

            assert answer.status == 408
            assert_error(answer.body, "UPLOAD_TIMEOUT")
            assert "1 s" in answer.body["error"]["message"]
            assert answer.body["error"]["details"] == {"idle_limit_s": 1.0, "received_bytes": len(sent)}
            assert answer.headers["connection"] == "close"
            assert 0.9 <= waited < 10  # 0.9: the server may read the last bytes just before drain() returns
            assert await connection.closed_by_server(within=2)  # before uvicorn's 5 s keep-alive timeout

        await assert_nothing_stored(gateway, tenant)
        assert await open_multipart_uploads(gateway, tenant) == 0
        assert gateway_state(gateway).uploads.in_flight == 0


async def test_the_idle_limit_is_between_chunks_not_on_the_whole_upload(settings: Settings) -> None:
    """Pieces every 0.2 s for 2.4 s under a 0.5 s idle limit: slow but steady is accepted."""
    async with running_gateway(settings.model_copy(update={"upload_idle_s": 0.5})) as gateway:
        tenant = await gateway.create_tenant()
        content = fec_bytes(lines=11)
        lines = content.split(b"\r\n")
        pieces = [line + b"\r\n" for line in lines[:-1]]
        body = [file_part("fec", "fec.txt", b"", first=True), *pieces, CLOSING]
        started = time.monotonic()
        async with upload_connection(gateway, tenant, content_length=sum(map(len, body))) as connection:
            for piece in body:
                await connection.send(piece)
                await asyncio.sleep(0.2)
            answer = await connection.answer(within=10)
        assert time.monotonic() - started > 2.4
        assert answer.status == 202, answer.body
        assert await gateway.batch_count(tenant) == 1


async def test_a_hundred_stalled_uploads_are_all_answered_and_closed(settings: Settings) -> None:
    """The attack: 100 connections send a head and a few KB of body, then nothing. With the default
    4 uploads per tenant, 4 get the 408 after the idle limit and 96 a 429 at once; the server closes
    every one of them (the 429s once uvicorn's keep-alive timeout passes, as nothing more comes)."""
    async with running_gateway(settings.model_copy(update={"upload_idle_s": 0.5})) as gateway:
        tenant = await gateway.create_tenant()
        started = file_part("fec", "fec.txt", (FEC_HEADER + "\r\n" + (FEC_LINE + "\r\n") * 20).encode(), first=True)

        async def stall() -> tuple[int, str, bool]:
            async with upload_connection(gateway, tenant, content_length=len(started) * 10) as connection:
                await connection.send(started)
                answer = await connection.answer(within=15)
                return answer.status, answer.body["error"]["code"], await connection.closed_by_server(within=15)

        results = await asyncio.gather(*(stall() for _ in range(100)))

        assert sorted(set(results)) == [(408, "UPLOAD_TIMEOUT", True), (429, "TOO_MANY_UPLOADS", True)]
        assert sum(status == 408 for status, _, _ in results) == 4
        await assert_nothing_stored(gateway, tenant)
        assert gateway_state(gateway).uploads.in_flight == 0


HELD_PART = file_part("fec", "held.txt", fec_bytes(), first=True)  # all of a FEC upload but its closing


async def hold(stack: contextlib.AsyncExitStack, gateway: Gateway, tenant: str) -> RawConnection:
    """An upload of `tenant`, admitted and left open: everything but its closing boundary is sent."""
    slots = gateway_state(gateway).uploads
    before = slots.in_flight_for(tenant)
    connection = await stack.enter_async_context(
        upload_connection(gateway, tenant, content_length=len(HELD_PART) + len(CLOSING))
    )
    await connection.send(HELD_PART)
    await eventually(lambda: slots.in_flight_for(tenant) == before + 1)
    return connection


async def test_uploads_over_the_tenant_and_the_total_limits_are_429_and_slots_come_back(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_uploads_per_tenant": 2, "max_uploads": 3, "upload_idle_s": 30})
    async with running_gateway(limited) as gateway, contextlib.AsyncExitStack() as stack:
        slots = gateway_state(gateway).uploads
        first, second, third = [await gateway.create_tenant() for _ in range(3)]
        finishing, abandoned = await hold(stack, gateway, first), await hold(stack, gateway, first)

        over_tenant = await gateway.upload(first, fec_file())
        assert over_tenant.status_code == 429
        assert over_tenant.headers["retry-after"] == str(RETRY_AFTER_S)
        assert_error(over_tenant.json(), "TOO_MANY_UPLOADS")
        assert over_tenant.json()["error"]["details"] == {"scope": "tenant", "limit": 2, "retry_after_s": 5}

        other = await hold(stack, gateway, second)
        over_total = await gateway.upload(third, fec_file())
        assert over_total.status_code == 429
        assert int(over_total.headers["retry-after"]) == RETRY_AFTER_S
        assert_error(over_total.json(), "TOO_MANY_UPLOADS")
        assert over_total.json()["error"]["details"] == {"scope": "gateway", "limit": 3, "retry_after_s": 5}
        await assert_nothing_stored(gateway, third)
        assert await gateway.batch_count(first) == 0  # the refused upload left nothing; the held ones are open
        assert slots.in_flight == 3

        # One held upload completes, one is abandoned by its client: both slots come back.
        await finishing.send(CLOSING)
        assert (await finishing.answer(within=10)).status == 202
        await abandoned.close()
        await eventually(lambda: slots.in_flight_for(first) == 0)
        assert (await gateway.upload(first, fec_file())).status_code == 202
        assert (await gateway.upload(third, fec_file())).status_code == 202

        await other.send(CLOSING)
        assert (await other.answer(within=10)).status == 202
        assert slots.in_flight == 0
        assert [await gateway.batch_count(t) for t in (first, second, third)] == [2, 1, 1]


async def test_a_burst_of_200_uploads_gets_only_202s_and_clean_429s(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_uploads_per_tenant": 4, "max_uploads": 10})
    async with running_gateway(limited) as gateway:
        tenants = [await gateway.create_tenant() for _ in range(5)]
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30, limits=limits) as client:

            async def upload(tenant: str) -> tuple[str, httpx.Response]:
                response = await client.post(
                    f"/api/v1/tenants/{tenant}/batches", files=fec_file(), headers=gateway.auth(tenant)
                )
                return tenant, response

            answers = await asyncio.wait_for(asyncio.gather(*(upload(tenants[i % 5]) for i in range(200))), 60)

        assert {response.status_code for _, response in answers} <= {202, 429}
        refused = [response for _, response in answers if response.status_code == 429]
        assert all(r.headers["retry-after"] == str(RETRY_AFTER_S) for r in refused)
        assert all(r.json()["error"]["code"] == "TOO_MANY_UPLOADS" for r in refused)
        assert len(refused) <= 200 - 4  # the first 4 claims are always admitted, and they went through
        for tenant in tenants:
            accepted = sum(t == tenant and r.status_code == 202 for t, r in answers)
            assert await gateway.batch_count(tenant) == accepted
            assert len(await gateway.stored_keys(tenant)) == accepted
        assert gateway_state(gateway).uploads.in_flight == 0
