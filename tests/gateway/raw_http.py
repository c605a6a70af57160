"""A raw HTTP/1.1 client for the upload tests: send a request head and any part of a body, pause, read the
answer, and see whether the server closed the connection. httpx cannot stall mid-body on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from tests.gateway.support import Gateway

BOUNDARY = "xyz"


def file_part(field: str, filename: str, content: bytes, *, first: bool = False) -> bytes:
    """One file part of a `multipart/form-data; boundary=xyz` body (a closing boundary is not included)."""
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n\r\n'
    return (b"" if first else b"\r\n") + head.encode() + content


CLOSING = f"\r\n--{BOUNDARY}--\r\n".encode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class RawConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def close(self) -> None:
        """Close from the client side, as a client that gives up does (idempotent)."""
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, *, within: float) -> Answer:
        async with asyncio.timeout(within):
            status_line = await self.reader.readline()
            headers: dict[str, str] = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            payload = await self.reader.readexactly(int(headers["content-length"]))
        return Answer(int(status_line.split()[1]), headers, json.loads(payload))

    async def closed_by_server(self, *, within: float) -> bool:
        """True when the server closes the connection (EOF) within `within` seconds, without sending more."""
        try:
            async with asyncio.timeout(within):
                rest = await self.reader.read()
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return rest == b""


@contextlib.asynccontextmanager
async def upload_connection(
    gateway: Gateway, tenant: str, *, content_length: int, token: str | None = None
) -> AsyncIterator[RawConnection]:
    """A connection on which the head of a batch upload has been sent, with a declared `content_length`."""
    host, port = gateway.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    connection = RawConnection(reader, writer)
    head = (
        f"POST /api/v1/tenants/{tenant}/batches HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token or gateway.token(tenant)}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {content_length}\r\n\r\n"
    )
    try:
        await connection.send(head.encode())
        yield connection
    finally:
        await connection.close()
