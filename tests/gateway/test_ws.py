"""Live progress over WebSocket (docs/api.md, WebSocket): auth, subscriptions, tenant isolation, order."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from comptaflow.common.contracts import StatusEvent
from tests.gateway.support import Gateway, fec_file

pytestmark = pytest.mark.infra


@asynccontextmanager
async def socket(gateway: Gateway, token: str) -> AsyncIterator[ClientConnection]:
    async with connect(f"{gateway.ws_url}?token={token}", open_timeout=10, close_timeout=5) as ws:
        yield ws


async def receive(ws: ClientConnection, within: float = 5.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), timeout=within)
    data = json.loads(message)
    assert isinstance(data, dict)
    return data


async def subscribe(ws: ClientConnection, **target: str) -> dict[str, Any]:
    await ws.send(json.dumps({"subscribe": target}))
    return await receive(ws)


def status(tenant: str, batch_id: uuid.UUID, stage: str, *, status: str = "VALIDATING", seq: int = 0) -> StatusEvent:
    return StatusEvent(
        tenant_id=tenant,
        batch_id=batch_id,
        service="period-validator",
        stage=stage,
        status=status,
        progress=0.5,
        message=f"{stage} of {batch_id}",
        seq=seq,
    )


@pytest.mark.parametrize("token", ["", "garbage", "expired"])
async def test_a_bad_token_closes_with_4401(gateway: Gateway, token: str) -> None:
    if token == "expired":
        token = gateway.token("*", ttl=-30)
    async with socket(gateway, token) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_the_socket_closes_when_its_token_expires(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    async with socket(gateway, gateway.token(tenant, ttl=2)) as ws:
        assert (await subscribe(ws, tenant_id=tenant))["type"] == "subscribed"
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws, within=10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "token expired")


async def test_tenant_subscription_receives_only_its_tenants_events_in_order(gateway: Gateway) -> None:
    tenant, other = await gateway.create_tenant(), await gateway.create_tenant()
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    async with socket(gateway, gateway.token(tenant)) as ws, socket(gateway, gateway.token(other)) as ws_other:
        assert await subscribe(ws, tenant_id=tenant) == {"type": "subscribed", "tenant_id": tenant}
        assert await subscribe(ws_other, tenant_id=other) == {"type": "subscribed", "tenant_id": other}

        # The other tenant's event goes first: if it leaked, it would be the first thing received.
        await gateway.infra.bus.publish_status(status(other, theirs, "parsing"))
        for seq, stage in enumerate(["parsing", "checking", "done"], start=1):
            await gateway.infra.bus.publish_status(status(tenant, mine, stage, seq=seq))
        # Events reach a socket in the order published: the other tenant's next one, published last, is the
        # next thing its socket receives if none of `tenant`'s leaked to it.
        await gateway.infra.bus.publish_status(status(other, theirs, "checking", seq=2))

        received = [await receive(ws) for _ in range(3)]
        assert [(m["stage"], m["seq"]) for m in received] == [("parsing", 1), ("checking", 2), ("done", 3)]
        first = received[0]
        assert first["type"] == "status"
        assert first["tenant_id"] == tenant
        assert first["batch_id"] == str(mine)
        assert first["service"] == "period-validator"
        assert first["status"] == "VALIDATING"
        assert first["progress"] == 0.5
        assert first["message"] == f"parsing of {mine}"
        assert first["at"].endswith("Z")

        other_received = [await receive(ws_other) for _ in range(2)]
        assert [(m["tenant_id"], m["batch_id"], m["stage"]) for m in other_received] == [
            (other, str(theirs), "parsing"),
            (other, str(theirs), "checking"),
        ]


async def test_subscriptions_the_token_may_not_see_are_refused(gateway: Gateway) -> None:
    tenant, other = await gateway.create_tenant(), await gateway.create_tenant()
    their_batch = (await gateway.upload(other, fec_file())).json()["batch_id"]
    async with socket(gateway, gateway.token(tenant)) as ws:
        for target in (
            {"tenant_id": other},
            {"tenant_id": "never-created"},
            {"batch_id": their_batch},
            {"batch_id": str(uuid.uuid4())},
            {"batch_id": "not-a-uuid"},
        ):
            answer = await subscribe(ws, **target)
            assert answer["type"] == "error", target
            assert answer["error"]["code"] == "NOT_FOUND"
            assert set(answer["error"]) == {"code", "message", "details"}

        # A subscription that is allowed, then the other tenant's event, then one of our own: had a refused
        # subscription been kept, the other tenant's event would arrive first.
        assert (await subscribe(ws, tenant_id=tenant))["type"] == "subscribed"
        await gateway.infra.bus.publish_status(status(other, uuid.UUID(their_batch), "parsing"))
        await gateway.infra.bus.publish_status(status(tenant, uuid.uuid4(), "sentinel"))
        received = await receive(ws)
        assert (received["tenant_id"], received["stage"]) == (tenant, "sentinel")


async def test_a_token_for_all_tenants_cannot_subscribe_to_a_missing_tenant(gateway: Gateway) -> None:
    async with socket(gateway, gateway.token("*")) as ws:
        answer = await subscribe(ws, tenant_id="never-created")
        assert answer["type"] == "error"
        assert answer["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[]",
        '{"subscribe": "acme"}',
        '{"subscribe": {}}',
        '{"subscribe": {"tenant_id": "a", "batch_id": "b"}}',
        '{"subscribe": {"project_id": "x"}}',
        '{"subscribe": {"tenant_id": 42}}',
        '{"unsubscribe": {"tenant_id": "acme"}}',
    ],
)
async def test_malformed_messages_get_bad_request_and_the_socket_stays_open(gateway: Gateway, message: str) -> None:
    tenant = await gateway.create_tenant()
    async with socket(gateway, gateway.token(tenant)) as ws:
        await ws.send(message)
        answer = await receive(ws)
        assert answer["type"] == "error"
        assert answer["error"]["code"] == "BAD_REQUEST"
        assert (await subscribe(ws, tenant_id=tenant))["type"] == "subscribed"
        await ws.send(b"binary frames are refused too")
        assert (await receive(ws))["error"]["code"] == "BAD_REQUEST"


async def test_batch_subscription_gets_the_current_state_then_only_that_batchs_events(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    batch_id = (await gateway.upload(tenant, fec_file())).json()["batch_id"]
    sibling = uuid.uuid4()
    async with socket(gateway, gateway.token(tenant)) as ws:
        ack = await subscribe(ws, batch_id=batch_id)
        assert ack == {
            "type": "subscribed",
            "batch_id": batch_id,
            "tenant_id": tenant,
            "status": "PENDING",
            "stage": "uploaded",
            "progress": 0.0,
        }
        await gateway.infra.bus.publish_status(status(tenant, sibling, "parsing"))
        await gateway.infra.bus.publish_status(status(tenant, uuid.UUID(batch_id), "validated", status="VALIDATED"))
        await gateway.infra.bus.publish_status(status(tenant, sibling, "checking"))
        await gateway.infra.bus.publish_status(status(tenant, uuid.UUID(batch_id), "queued", status="PROCESSING"))
        # In the order published, and only the batch's own: the sibling's events, before each, never come.
        received = [await receive(ws) for _ in range(2)]
        assert [(m["batch_id"], m["status"]) for m in received] == [(batch_id, "VALIDATED"), (batch_id, "PROCESSING")]


async def test_a_client_subscribed_twice_gets_each_event_once(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    batch_id = (await gateway.upload(tenant, fec_file())).json()["batch_id"]
    async with socket(gateway, gateway.token(tenant)) as ws:
        await subscribe(ws, tenant_id=tenant)
        await subscribe(ws, batch_id=batch_id)
        await gateway.infra.bus.publish_status(status(tenant, uuid.UUID(batch_id), "parsing"))
        await gateway.infra.bus.publish_status(status(tenant, uuid.UUID(batch_id), "checking"))
        # A second copy of "parsing" would come before "checking".
        assert [(await receive(ws))["stage"] for _ in range(2)] == ["parsing", "checking"]


async def test_the_token_in_the_websocket_url_is_never_logged(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    token = gateway.token("*")
    with caplog.at_level(logging.DEBUG):
        async with socket(gateway, token) as ws:
            await ws.send("{}")
            await receive(ws)
    # What the server logged (the test's own websockets client logs its request line at debug level).
    server_side = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.client"))
    assert "/api/v1/ws?token=***" in server_side  # uvicorn's handshake line, redacted
    assert token not in server_side
    assert token.split(".")[2] not in server_side
