"""A large upload is streamed: stored intact, without the gateway holding the file in memory."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import psutil
import pytest

from comptaflow.common import batches
from tests.gateway.support import FEC_HEADER, FEC_LINE, Gateway

pytestmark = [pytest.mark.infra, pytest.mark.slow]

SIZE = 48 * 1024 * 1024


def write_fec(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    line = (FEC_LINE + "\r\n").encode()
    with path.open("wb") as fh:
        head = (FEC_HEADER + "\r\n").encode()
        fh.write(head)
        digest.update(head)
        written = len(head)
        block = line * (1024 * 1024 // len(line))
        while written < size:
            fh.write(block)
            digest.update(block)
            written += len(block)
    return digest.hexdigest()


async def test_a_large_fec_is_streamed_to_storage(gateway: Gateway, tmp_path: Path) -> None:
    tenant = await gateway.create_tenant()
    source = tmp_path / "big-fec.txt"
    expected_sha = write_fec(source, SIZE)
    size = source.stat().st_size

    process = psutil.Process()
    before = process.memory_info().rss
    with source.open("rb") as fh:
        response = await gateway.client.post(
            f"/api/v1/tenants/{tenant}/batches",
            files=[("fec", ("big-fec.txt", fh, "text/plain"))],
            headers=gateway.auth(tenant),
        )
    growth = process.memory_info().rss - before
    assert response.status_code == 202, response.text

    batch_id = uuid.UUID(response.json()["batch_id"])
    async with gateway.infra.db.acquire() as conn:
        batch = await batches.get_batch(conn, batch_id)
    assert batch is not None
    [stored] = batch.files
    assert (stored.size, stored.sha256) == (size, expected_sha)

    copy = tmp_path / "stored.txt"
    assert await gateway.infra.storage.download_file(stored.object_key, copy) == size
    digest = hashlib.sha256()
    with copy.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    assert digest.hexdigest() == expected_sha

    # Client and gateway share this process; S3 parts are 8 MiB, so a few parts' worth is the budget.
    assert growth < size // 2, f"RSS grew by {growth / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB upload"
