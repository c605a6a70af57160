"""Hostile files against the whole `comptaflow up` process, as the attacker tried them.

One platform (embedded PostgreSQL and S3, chdb, in-process bus) runs with a 2 GiB parsing budget. For each
file: tenant A uploads a period carrying it while tenant B uploads a valid one; A's batch fails with the
contract's code and the limit named, B's batch completes, the process is still up, and while it worked the
`up` process stayed under `PARENT_RSS_LIMIT` and each parsing child under its cap (`RLIMIT_AS` bounds the
address space; resident memory is at most that). Then SIGINT stops `up` within the grace period although a
validation is running, with exit code 0 and no temporary folder left behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psutil
import pytest

from comptaflow.cli.embedded import free_port
from comptaflow.common.tokens import Role, mint
from comptaflow.testkit import malformed
from comptaflow.testkit.excel import write_period
from comptaflow.testkit.fec import FecSpec, write_fec

pytestmark = [pytest.mark.infra, pytest.mark.slow]

FIELDS = ("grand_livre_comptes", "grand_livre_tiers", "plan_comptes", "plan_tiers", "code_journal")
JWT_SECRET = "a-test-secret-of-sufficient-length-0123456789"
CAP_MB = 2048
"""The children's address-space cap (a warm child already takes about 0.85 GB of address space, 80 MB resident)."""
PARENT_RSS_LIMIT = 1024 * 1024**2
"""The `up` process (gateway, workers, chdb) never parses a file: it stays far under the children's cap."""
FEC_HEADER = (
    "JournalCode|JournalLib|EcritureNum|EcritureDate|CompteNum|CompteLib|CompAuxNum|CompAuxLib|PieceRef|"
    "PieceDate|EcritureLib|Debit|Credit|EcritureLet|DateLet|ValidDate|Montantdevise|Idevise"
)


@dataclass
class MemoryWatch:
    """Samples the resident size of `up` and of each of its children while a test runs."""

    pid: int
    parent_peak: int = 0
    child_peak: int = 0
    children_seen: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> MemoryWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        process = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                self.parent_peak = max(self.parent_peak, process.memory_info().rss)
                for child in _parsing_children(self.pid):
                    try:
                        self.children_seen.add(child.pid)
                        self.child_peak = max(self.child_peak, child.memory_info().rss)
                    except psutil.Error:
                        continue
            except psutil.Error:
                return
            time.sleep(0.05)


@dataclass
class Up:
    process: subprocess.Popen[str]
    base_url: str
    home: Path
    stderr: IO[str]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.stderr.close()

    def client(self) -> httpx.AsyncClient:
        token = mint(JWT_SECRET, sub="alice", role=Role.ADMIN, tenants=["*"])
        return httpx.AsyncClient(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def _start(home: Path, tmp_path: Path, *, cap_mb: int = CAP_MB) -> Up:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPTAFLOW_")}
    env |= {
        "COMPTAFLOW_HOME": str(home),
        "COMPTAFLOW_HTTP_PORT": str(port),
        "COMPTAFLOW_JWT_SECRET": JWT_SECRET,
        "COMPTAFLOW_PARSE_MEMORY_MB": str(cap_mb),
        "COMPTAFLOW_PARSE_TIMEOUT_S": "120",
        "COMPTAFLOW_SHUTDOWN_GRACE_S": "3",
        "COMPTAFLOW_UPLOAD_IDLE_S": "2",
        "COMPTAFLOW_MAX_UPLOADS_PER_TENANT": "4",
        "COMPTAFLOW_LOG_FORMAT": "json",
    }
    stderr = (tmp_path / f"up-{port}.stderr").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "comptaflow.cli.main", "up"], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("comptaflow ready "):
            return Up(process, line.split()[-1], home, stderr)
        if not line and process.poll() is not None:
            break
    process.kill()
    process.wait()
    stderr.close()
    raise AssertionError(f"`comptaflow up` did not start: {(tmp_path / f'up-{port}.stderr').read_text()[-3000:]}")


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("hostile-up")
    running = _start(tmp / "home", tmp)
    yield running
    running.close()


async def _wait(
    client: httpx.AsyncClient, batch_id: str, final: tuple[str, ...], within: float = 240
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        batch = (await client.get(f"/api/v1/batches/{batch_id}")).json()
        if batch["status"] in final:
            return batch  # type: ignore[no-any-return]
        await asyncio.sleep(0.2)
    raise AssertionError(f"batch {batch_id} did not reach {final}: {batch}")


async def _tenant(client: httpx.AsyncClient) -> str:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    assert (await client.post("/api/v1/tenants", json={"id": tenant, "name": tenant})).status_code == 201
    return tenant


async def _upload(client: httpx.AsyncClient, tenant: str, paths: dict[str, Path], **form: str) -> str:
    files = [(field, (path.name, path.read_bytes())) for field, path in paths.items()]
    answer = await client.post(f"/api/v1/tenants/{tenant}/batches", files=files, data=form)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["batch_id"])


def _excel(make: Callable[[Path], Path]) -> Callable[[Path], dict[str, Path]]:
    def build(directory: Path) -> dict[str, Path]:
        paths = dict(write_period(directory / "period").paths)
        paths["grand_livre_comptes"] = make(directory / "hostile.xlsx")
        return paths

    return build


def _fec(text: bytes) -> Callable[[Path], dict[str, Path]]:
    def build(directory: Path) -> dict[str, Path]:
        path = directory / "fec.txt"
        path.write_bytes(text)
        return {"fec": path}

    return build


CASES = {
    "corner-cells": (_excel(malformed.write_corner_cells), "FILE_TOO_COMPLEX", "cells"),
    "false-dimension": (
        _excel(lambda p: malformed.write_corner_cells(p, dimension="A1:B2")),
        "FILE_TOO_COMPLEX",
        "column XFD",
    ),
    "A1-and-GR1048576": (
        _excel(lambda p: malformed.write_corner_cells(p, last=(1_048_576, 200))),
        "FILE_TOO_COMPLEX",
        "column GR",
    ),
    "directory-claims-31KB-inflates-3GB": (_excel(malformed.write_lying_sheet), "NOT_EXCEL", "declares 31,744"),
    "honest-1.9GB-padded": (_excel(malformed.write_padded_honest_sheet), "FILE_TOO_COMPLEX", ""),
    "doctype-in-a-workbook-part": (
        _excel(
            lambda p: malformed.write_raw_workbook(
                p, malformed.sheet_xml("", prologue='<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>')
            )
        ),
        "NOT_EXCEL",
        "DOCTYPE",
    ),
    "fec-header-only-no-newline": (_fec(FEC_HEADER.encode()), "FEC_FORMAT", "no line"),
    "fec-header-then-blank-lines": (_fec(FEC_HEADER.encode() + b"\n\n \n"), "FEC_FORMAT", "no line"),
    "fec-20MB-first-line": (_fec(b"JournalCode|" + b"x" * (20 * 1024**2)), "NOT_FEC", "not a FEC header"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_file_fails_alone_and_the_platform_stays_up(up: Up, tmp_path: Path, case: str) -> None:
    build, code, says = CASES[case]
    hostile = build(tmp_path)
    valid = write_fec(tmp_path / "valid.txt", FecSpec(seed=7)).path

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with up.client() as client:
            attacker, bystander = await _tenant(client), await _tenant(client)
            hostile_id = await _upload(client, attacker, hostile)
            valid_id = await _upload(client, bystander, {"fec": valid}, auto_load="true")
            failed = await _wait(client, hostile_id, ("FAILED", "VALIDATED", "COMPLETED"))
            completed = await _wait(client, valid_id, ("FAILED", "COMPLETED"))
            assert (await client.get("/readyz")).status_code == 200
            return failed, completed

    with MemoryWatch(up.process.pid) as watch:
        failed, completed = asyncio.run(scenario())
    assert failed["status"] == "FAILED", failed
    assert [error["code"] for error in failed["errors"]] == [code], failed["errors"]
    message = failed["errors"][0]["message"]
    assert says in message
    assert "Traceback" not in message
    assert "polars" not in message.lower()
    if code == "FILE_TOO_COMPLEX":
        assert any(word in message for word in ("limit", "budget")), message
    assert completed["status"] == "COMPLETED", completed
    assert up.process.poll() is None
    assert watch.parent_peak < PARENT_RSS_LIMIT, f"up reached {watch.parent_peak / 2**20:.0f} MiB"
    assert watch.child_peak <= CAP_MB * 1024**2, f"a parsing child reached {watch.child_peak / 2**20:.0f} MiB"


def test_stalled_uploads_odd_names_and_string_claims_leave_other_uploads_alone(up: Up, tmp_path: Path) -> None:
    """The gateway's findings against the whole process: six uploads that stall after a few kilobytes get
    408 (four) or 429 (two, over the tenant's limit) and are closed, while another tenant's upload, whose file
    name carries a right-to-left override and NFD accents, completes with the name cleaned; a token whose
    `exp` is a numeric string is refused. (A raw CRLF in a file name is tested on raw bodies in
    tests/gateway/test_upload_filenames.py: an HTTP client encodes it.)"""
    valid = write_fec(tmp_path / "valid.txt", FecSpec(seed=11)).path
    host, port = up.base_url.removeprefix("http://").split(":")

    async def stall(tenant: str, token: str) -> int:
        reader, writer = await asyncio.open_connection(host, int(port))
        body = b'--xyz\r\nContent-Disposition: form-data; name="fec"; filename="a.txt"\r\n\r\n' + FEC_HEADER.encode()
        head = (
            f"POST /api/v1/tenants/{tenant}/batches HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {10 * 1024**2}\r\n\r\n"
        )
        writer.write(head.encode() + body + b"x" * 4096)
        await writer.drain()
        try:
            async with asyncio.timeout(15):
                status = int((await reader.readline()).split()[1])
                if status == 408:  # the stalled connection is closed by the server, not left open
                    while await reader.read(65536):
                        pass
            return status
        finally:
            writer.close()

    async def scenario() -> tuple[list[int], dict[str, Any], int]:
        async with up.client() as client:
            attacker, bystander = await _tenant(client), await _tenant(client)
            token = mint(JWT_SECRET, sub="mallory", role=Role.ADMIN, tenants=["*"])
            stalls = [asyncio.create_task(stall(attacker, token)) for _ in range(6)]
            await asyncio.sleep(0.5)
            name = "livre \u202egpj.txt e\u0301te\u0301.txt"
            answer = await client.post(
                f"/api/v1/tenants/{bystander}/batches",
                files=[("fec", (name, valid.read_bytes()))],
                data={"auto_load": "true"},
            )
            assert answer.status_code == 202, answer.text
            completed = await _wait(client, answer.json()["batch_id"], ("FAILED", "COMPLETED"))
            statuses = await asyncio.gather(*stalls)
            forged = _forged_token(exp="9999999999")
            refused = (await client.get("/api/v1/tenants", headers={"Authorization": f"Bearer {forged}"})).status_code
            return sorted(statuses), completed, refused

    with MemoryWatch(up.process.pid) as watch:
        statuses, completed, refused = asyncio.run(scenario())
    assert statuses == [408, 408, 408, 408, 429, 429]
    assert completed["status"] == "COMPLETED", completed
    (stored,) = completed["files"]
    assert stored["filename"] == "livre gpj.txt \u00e9t\u00e9.txt"
    assert refused == 401
    assert up.process.poll() is None
    assert watch.parent_peak < PARENT_RSS_LIMIT


def _forged_token(**claims: str) -> str:
    """A correctly signed token whose time claims are strings (JSON numbers are required)."""
    import jwt

    return jwt.encode({"sub": "x", "role": "admin", "tenants": ["*"], "iat": 1, **claims}, JWT_SECRET, "HS256")


def test_sigint_stops_up_during_a_validation_and_leaves_no_temporary_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stale = home / "tmp" / "cf-validate-999999-deadbeef"
    stale.mkdir(parents=True)
    (stale / "fec.txt").write_text("left by a killed run")
    running = _start(home, tmp_path, cap_mb=3072)  # room for the reader: the validation lasts seconds
    try:
        assert not stale.exists(), "a stale temporary folder of a dead run was not removed at start"
        # Cells without references: each is placed by walking the XML, a validation of half a minute or more.
        hostile = _excel(lambda p: malformed.write_padded_honest_sheet(p, references=False))(tmp_path)

        async def start_validation() -> list[int]:
            """Upload, then return the pids of the parsing children at work once the batch is validating."""
            async with running.client() as client:
                batch_id = await _upload(client, await _tenant(client), hostile)
                for _ in range(400):
                    batch = (await client.get(f"/api/v1/batches/{batch_id}")).json()
                    busy = [child.pid for child in _parsing_children(running.process.pid)]
                    validating = batch["status"] == "VALIDATING" and list((home / "tmp").glob("cf-validate-*"))
                    if validating and busy:
                        return busy
                    assert batch["status"] in ("PENDING", "VALIDATING"), batch["errors"]
                raise AssertionError("the validation was never seen running")

        children = asyncio.run(start_validation())
        started = time.monotonic()
        running.process.send_signal(signal.SIGINT)
        assert running.process.wait(timeout=60) == 0
        assert time.monotonic() - started < 30
        assert not list((home / "tmp").glob("cf-validate-*"))
        assert not [pid for pid in children if _alive(pid)]
    finally:
        running.close()


def _parsing_children(pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "comptaflow.common.sandbox.child" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
