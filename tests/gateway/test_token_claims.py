"""The time claims of a token are JSON numbers (docs/api.md, Auth): a numeric string, a boolean or a number no
float holds is an unusable token, a 401 on HTTP and a 4401 close on the WebSocket. A token whose `exp` was
the string "1999999999" used to be accepted, its WebSocket never expiring."""

from __future__ import annotations

import time

import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from comptaflow.common.tokens import InvalidTokenError, verify
from tests.gateway.support import Gateway
from tests.gateway.test_auth_tenants import assert_error
from tests.gateway.test_ws import receive, socket, subscribe

pytestmark = pytest.mark.infra

HOUR = 3600


def signed(gateway: Gateway, tenant: str, **time_claims: object) -> str:
    now = int(time.time())
    claims: dict[str, object] = {"sub": "alice", "role": "accountant", "tenants": [tenant], "iat": now}
    claims["exp"] = now + HOUR
    claims.update(time_claims)
    return jwt.encode(claims, gateway.secret, algorithm="HS256")


def unusable_time_claims() -> list[tuple[dict[str, object], str]]:
    """Claims that make a token unusable, each with the reason `verify` gives."""
    now = int(time.time())
    return [
        ({"exp": str(now + HOUR)}, "exp"),
        ({"iat": str(now)}, "iat"),
        ({"iat": True}, "iat"),
        ({"iat": False}, "iat"),
        ({"nbf": str(now)}, "nbf"),
        ({"exp": 10**400}, "exp"),  # an int no float holds: it was a 500
        ({"exp": f"{now + HOUR}.5"}, "DecodeError"),  # PyJWT's own int() check refuses this one
    ]


UNUSABLE_IDS = ["exp-string", "iat-string", "iat-true", "iat-false", "nbf-string", "exp-huge", "exp-decimal-string"]


@pytest.mark.parametrize(("claims", "reason"), unusable_time_claims(), ids=UNUSABLE_IDS)
async def test_a_token_whose_time_claims_are_not_numbers_is_401(
    gateway: Gateway, claims: dict[str, object], reason: str
) -> None:
    tenant = await gateway.create_tenant()
    token = signed(gateway, tenant, **claims)
    for path in ("/api/v1/tenants", f"/api/v1/tenants/{tenant}/batches"):
        response = await gateway.client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert_error(response.json(), "UNAUTHORIZED")
    with pytest.raises(InvalidTokenError, match=rf"^{reason}$"):
        verify(gateway.secret, token)


@pytest.mark.parametrize("claims", [claims for claims, _ in unusable_time_claims()[:3]], ids=UNUSABLE_IDS[:3])
async def test_the_websocket_refuses_such_a_token(gateway: Gateway, claims: dict[str, object]) -> None:
    tenant = await gateway.create_tenant()
    async with socket(gateway, signed(gateway, tenant, **claims)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_numeric_time_claims_still_work_and_a_float_exp_still_ends_the_socket(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    now = time.time()
    accepted = signed(gateway, tenant, iat=now - 1.5, exp=now + HOUR + 0.25)
    response = await gateway.client.get("/api/v1/tenants", headers={"Authorization": f"Bearer {accepted}"})
    assert response.status_code == 200
    assert verify(gateway.secret, accepted).expires_at == now + HOUR + 0.25

    async with socket(gateway, signed(gateway, tenant, exp=time.time() + 2.0)) as ws:
        assert (await subscribe(ws, tenant_id=tenant))["type"] == "subscribed"
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws, within=10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "token expired")
