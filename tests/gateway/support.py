"""Helpers of the gateway tests: a gateway served by uvicorn in this process, tokens, upload bodies."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import uuid
import zipfile
from collections.abc import AsyncIterator, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from comptaflow.common import tenants
from comptaflow.common.bus import Bus
from comptaflow.common.infra import Infra, open_infra
from comptaflow.common.settings import Settings
from comptaflow.common.tokens import Role, mint
from comptaflow.gateway.app import create_app

EXCEL_FIELDS = ("grand_livre_comptes", "grand_livre_tiers", "plan_comptes", "plan_tiers", "code_journal")
FEC_HEADER = (
    "JournalCode\tJournalLib\tEcritureNum\tEcritureDate\tCompteNum\tCompteLib\tCompAuxNum\tCompAuxLib\t"
    "PieceRef\tPieceDate\tEcritureLib\tDebit\tCredit\tEcritureLet\tDateLet\tValidDate\tMontantdevise\tIdevise"
)
FEC_LINE = "VT\tVentes\t1\t20240131\t411000\tClients\t\t\tF1\t20240131\tFacture\t120,00\t0,00\t\t\t20240131\t\t"


def tenant_id() -> str:
    return f"gw-{uuid.uuid4().hex[:12]}"


def xlsx_bytes(marker: str = "x") -> bytes:
    """A minimal OOXML-looking ZIP: enough for the gateway's content check (not a readable workbook)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("xl/workbook.xml", f"<workbook><!-- {marker} --></workbook>")
    return buffer.getvalue()


def fec_bytes(lines: int = 1) -> bytes:
    return ("\ufeff" + FEC_HEADER + "\r\n" + (FEC_LINE + "\r\n") * lines).encode("utf-8")


FileSpec = tuple[str, tuple[str, bytes, str]]


def excel_files(**overrides: bytes) -> list[FileSpec]:
    """The five Excel fields, each a distinct minimal .xlsx (or the bytes given for a field)."""
    return [
        (field, (f"{field}.xlsx", overrides.get(field, xlsx_bytes(field)), "application/octet-stream"))
        for field in EXCEL_FIELDS
    ]


def fec_file(content: bytes | None = None, filename: str = "123456789FEC20241231.txt") -> list[FileSpec]:
    return [("fec", (filename, fec_bytes() if content is None else content, "text/plain"))]


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class _Server(uvicorn.Server):
    """uvicorn without signal handling: the test owns the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class Gateway:
    app: FastAPI
    infra: Infra
    base_url: str
    secret: str
    client: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/api/v1/ws"

    def token(self, *tenant_ids: str, role: Role = Role.ACCOUNTANT, sub: str = "alice", ttl: int = 3600) -> str:
        return mint(self.secret, sub=sub, role=role, tenants=list(tenant_ids), ttl=ttl)

    def auth(self, *tenant_ids: str, role: Role = Role.ACCOUNTANT) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*tenant_ids, role=role)}"}

    async def create_tenant(self, tenant: str | None = None, name: str = "Test SARL") -> str:
        tenant = tenant or tenant_id()
        async with self.infra.db.acquire() as conn:
            await tenants.create_tenant(conn, tenant, name)
        return tenant

    async def upload(
        self,
        tenant: str,
        files: Sequence[FileSpec],
        data: dict[str, str] | None = None,
        *,
        role: Role = Role.ACCOUNTANT,
    ) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/tenants/{tenant}/batches",
            files=list(files),
            data=data or {},
            headers=self.auth(tenant, role=role),
        )

    async def stored_keys(self, tenant: str) -> list[str]:
        return await self.infra.storage.list_keys(f"{tenant}/")

    async def batch_count(self, tenant: str) -> int:
        async with self.infra.db.acquire() as conn:
            count: int = await conn.fetchval("SELECT count(*) FROM batches WHERE tenant_id = $1", tenant)
        return count


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` (lifespan included) on a free local port; yield its base URL."""
    sock = free_socket()
    config = uvicorn.Config(app, lifespan="on", log_config=None, access_log=False, timeout_graceful_shutdown=5)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings, *, bus: Bus | None = None, **app_options: Any) -> AsyncIterator[Gateway]:
    assert settings.jwt_secret is not None
    secret = settings.jwt_secret.get_secret_value()
    async with open_infra(settings, service="gateway", bus=bus) as infra:
        app = create_app(infra, jwt_secret=secret, **app_options)
        async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            yield Gateway(app=app, infra=infra, base_url=base_url, secret=secret, client=client)
