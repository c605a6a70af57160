"""The worker health endpoint, over real HTTP on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from comptaflow.common.health import HealthServer

Readiness = Callable[[], Awaitable[dict[str, bool]]]
StartServer = Callable[[Readiness], Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def serve() -> AsyncIterator[StartServer]:
    """Starts a HealthServer on a free port with the given readiness check; returns a client for it."""
    servers: list[HealthServer] = []
    clients: list[httpx.AsyncClient] = []

    async def start(readiness: Readiness) -> httpx.AsyncClient:
        server = HealthServer(host="127.0.0.1", port=0, readiness=readiness)
        await server.start()
        servers.append(server)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5)
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.aclose()
    for server in servers:
        await server.stop()


def ready(**checks: bool) -> Readiness:
    async def readiness() -> dict[str, bool]:
        return dict(checks)

    return readiness


async def test_healthz_is_200_whatever_the_dependencies(serve: StartServer) -> None:
    client = await serve(ready(database=False))
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["content-type"] == "application/json"


async def test_readyz_is_200_when_every_dependency_answers(serve: StartServer) -> None:
    client = await serve(ready(database=True, bus=True, storage=True))
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": True, "bus": True, "storage": True}}


async def test_readyz_is_503_when_a_dependency_does_not_answer(serve: StartServer) -> None:
    client = await serve(ready(database=True, bus=False, storage=True))
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": True, "bus": False, "storage": True}}


async def test_readyz_follows_the_readiness_check_over_time(serve: StartServer) -> None:
    state = {"bus": False}

    async def readiness() -> dict[str, bool]:
        return dict(state)

    client = await serve(readiness)
    assert (await client.get("/readyz")).status_code == 503
    state["bus"] = True
    assert (await client.get("/readyz")).status_code == 200


async def test_readyz_is_503_when_the_readiness_check_itself_fails(serve: StartServer) -> None:
    async def broken() -> dict[str, bool]:
        raise RuntimeError("pool closed under our feet")

    client = await serve(broken)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {}}
    assert (await client.get("/healthz")).status_code == 200  # the server is still up


async def test_metrics_serves_the_comptaflow_metrics_in_prometheus_text(serve: StartServer) -> None:
    client = await serve(ready())
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    body = response.text
    for name in (
        "comptaflow_messages_handled_total",
        "comptaflow_message_seconds",
        "comptaflow_messages_published_total",
        "comptaflow_outbox_pending",
    ):
        assert f"# TYPE {name} " in body
    assert "python_gc_objects_collected_total" not in body  # our registry only, not the default one


@pytest.mark.parametrize("path", ["/", "/health", "/healthz/extra", "/api/v1/tenants"])
async def test_unknown_path_is_404_with_the_error_envelope(serve: StartServer, path: str) -> None:
    client = await serve(ready())
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "NOT_FOUND", "message": "no such route", "details": {}}}


async def test_a_probe_with_a_query_string_reaches_its_route(serve: StartServer) -> None:
    client = await serve(ready(database=True))
    assert (await client.get("/healthz", params={"probe": "kubelet"})).status_code == 200
    assert (await client.get("/readyz?verbose=1")).status_code == 200
