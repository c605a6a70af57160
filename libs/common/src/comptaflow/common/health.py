"""A minimal HTTP endpoint for workers: `/healthz`, `/readyz`, `/metrics` (Kubernetes probes, Prometheus).

Workers have no web framework; this serves the three routes on asyncio streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

import structlog

from comptaflow.common.metrics import render_metrics

log = structlog.get_logger("comptaflow.health")

Readiness = Callable[[], Awaitable[dict[str, bool]]]


class HealthServer:
    def __init__(self, *, host: str, port: int, readiness: Readiness) -> None:
        self._host = host
        self._port = port
        self._readiness = readiness
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            target = parts[1] if len(parts) >= 2 else "/"
            path = target.split("?", 1)[0]  # a probe or scrape may add a query string
            status, body, ctype = await self._route(path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _route(self, path: str) -> tuple[str, bytes, str]:
        if path == "/healthz":
            return "200 OK", b'{"status":"ok"}', "application/json"
        if path == "/readyz":
            try:
                checks = await self._readiness()
            except Exception as exc:  # a check that crashes means "not ready", never a dropped connection
                log.warning("readiness_check_failed", error=type(exc).__name__, reason=str(exc))
                checks = {}
                ok = False
            else:
                ok = all(checks.values())
            body = json.dumps({"status": "ok" if ok else "unavailable", "checks": checks}).encode()
            return ("200 OK" if ok else "503 Service Unavailable"), body, "application/json"
        if path == "/metrics":
            data, ctype = render_metrics()
            return "200 OK", data, ctype
        return (
            "404 Not Found",
            b'{"error":{"code":"NOT_FOUND","message":"no such route","details":{}}}',
            "application/json",
        )
