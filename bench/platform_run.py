"""What the end-to-end benchmarks share: child processes, and one upload to COMPLETED under `comptaflow up`.

`Platform` starts `comptaflow up` as a child process (embedded PostgreSQL, SeaweedFS, chdb, in-process
bus); each `upload` creates a tenant, subscribes to it on the WebSocket, uploads the files with
`auto_load=true` and waits, as a client would, for the batch's final status event. The time runs from the
start of the upload to that event; the timeline records when each status event arrived.
`upload_to_completed` is one upload into a freshly started platform.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect


@dataclass(frozen=True)
class Upload:
    field: str
    path: Path
    content_type: str | None = None


@dataclass(frozen=True)
class Completed:
    seconds: float
    peak_rss: int  # bytes, the `up` process's high-water mark
    batch: dict[str, Any]  # GET /batches/{id} once COMPLETED
    timeline: list[tuple[float, str]]


def run_child(code: str, *args: str) -> list[float]:
    """Run `code` in a fresh interpreter; its stdout is a list of numbers."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{done.stderr[-3000:]}")
    return [float(x) for x in done.stdout.split()]


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _token(env: dict[str, str]) -> str:
    command = [sys.executable, "-m", "comptaflow.cli.main", "token", "--sub", "bench", "--role", "admin"]
    done = subprocess.run([*command, "--tenant", "*"], env=env, capture_output=True, text=True, check=True)  # noqa: S603
    return done.stdout.strip()


class Platform:
    """`comptaflow up` as a child process, with an admin token, an HTTP client and a WebSocket."""

    def __init__(self, home: Path, **settings: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPTAFLOW_")}
        env |= {"COMPTAFLOW_HOME": str(home), "COMPTAFLOW_HTTP_PORT": "0", "COMPTAFLOW_LOG_LEVEL": "WARNING"}
        self._env = env | {f"COMPTAFLOW_{name.upper()}": value for name, value in settings.items()}
        self._stack = ExitStack()

    def __enter__(self) -> Platform:
        up = subprocess.Popen(
            [sys.executable, "-m", "comptaflow.cli.main", "up"], env=self._env, stdout=subprocess.PIPE, text=True
        )
        self._up = up
        self._stack.callback(self._stop)
        try:
            assert up.stdout is not None
            line = up.stdout.readline()
            assert line.startswith("comptaflow ready "), line
            base = line.split()[-1]
            token = _token(self._env)
            ws_url = base.replace("http://", "ws://") + f"/api/v1/ws?token={token}"
            self._client = self._stack.enter_context(
                httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=600)
            )
            self._ws = self._stack.enter_context(connect(ws_url))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _stop(self) -> None:
        self._up.terminate()
        self._up.wait(timeout=60)
        if self._up.stdout is not None:
            self._up.stdout.close()

    def upload(self, uploads: list[Upload], tenant: str = "bench") -> Completed:
        """Create `tenant`, upload the files with auto_load, wait on the WebSocket for the final status."""
        client, ws = self._client, self._ws
        client.post("/api/v1/tenants", json={"id": tenant, "name": f"{tenant} SARL"}).raise_for_status()
        # Wait as a client would, on the WebSocket (polling would compete with the pipeline for CPU);
        # subscribed to the tenant before the upload, so every stage of the batch is seen.
        ws.send(json.dumps({"subscribe": {"tenant_id": tenant}}))
        assert json.loads(ws.recv(timeout=60))["type"] == "subscribed"
        with ExitStack() as files:
            parts = {}
            for upload in uploads:
                handle = files.enter_context(upload.path.open("rb"))
                parts[upload.field] = (
                    (upload.path.name, handle, upload.content_type)
                    if upload.content_type
                    else (upload.path.name, handle)
                )
            started = time.perf_counter()
            response = client.post(f"/api/v1/tenants/{tenant}/batches", files=parts, data={"auto_load": "true"})
            response.raise_for_status()
        batch_id = response.json()["batch_id"]
        timeline = [(time.perf_counter() - started, "upload answered")]
        while True:
            event = json.loads(ws.recv(timeout=600))
            if event.get("type") != "status" or event.get("batch_id") != batch_id:
                continue
            timeline.append((time.perf_counter() - started, f"{event['status']:<10} {event['stage']}"))
            if event["status"] in ("COMPLETED", "FAILED"):
                break
        elapsed = time.perf_counter() - started
        batch = client.get(f"/api/v1/batches/{batch_id}").json()
        assert batch["status"] == "COMPLETED", batch.get("errors")
        return Completed(elapsed, peak_rss(self._up.pid), batch, timeline)


def upload_to_completed(uploads: list[Upload], home: Path) -> Completed:
    """One upload into a freshly started platform."""
    with Platform(home) as platform:
        return platform.upload(uploads)
