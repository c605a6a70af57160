"""Running the fake over real HTTP: in a background thread for tests (`FakeServer`, `serve`), or in the
foreground for `comptaflow fake pennylane` (`run`).

    fake = FakePennylane(rate_limit=1000)
    fake.add_company(seed=1, size="small", token="test-token")
    with FakeServer(fake) as base_url:          # or: async with FakeServer(fake) as base_url
        httpx.get(f"{base_url}/me", headers={"Authorization": "Bearer test-token"})

    with serve(seed=1, rate_limit=1000) as base_url: ...   # the same, one company, token "test-token"

`base_url` is `http://127.0.0.1:<free port>/api/external/v2`; `FakeServer.origin` is the part before
`/api/external/v2` (where `/__admin` lives).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from types import TracebackType

import uvicorn

from comptaflow.fakes.pennylane.fake import FakePennylane
from comptaflow.fakes.pennylane.resources import API_PREFIX

START_TIMEOUT = 10.0


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _config(fake: FakePennylane, log_level: str, *, own_process: bool = False) -> uvicorn.Config:
    # The app sets `Date` itself, on the fake's clock (a client reads the API's time there).
    # In another program's process (a test), uvicorn must not reconfigure logging: its dictConfig, or the
    # levels it sets on the `uvicorn.*` loggers, would change what the host logs (and its tests capture).
    return uvicorn.Config(
        fake.app,
        log_level=log_level if own_process else None,
        log_config=uvicorn.config.LOGGING_CONFIG if own_process else None,
        lifespan="off",
        ws="none",
        access_log=False,
        date_header=False,
    )


class FakeServer:
    """The fake under uvicorn in a daemon thread, on `host` and a free port (or `port`)."""

    def __init__(self, fake: FakePennylane, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.fake = fake
        self.host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def origin(self) -> str:
        if self._socket is None:
            raise RuntimeError("the fake server is not running")
        port = self._socket.getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.origin + API_PREFIX

    def start(self) -> str:
        if self._server is not None:
            raise RuntimeError("the fake server is already running")
        self._socket = _bind(self.host, self._port)
        self._server = uvicorn.Server(_config(self.fake, "warning"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="fake-pennylane", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the fake Pennylane server did not start")
            time.sleep(0.01)
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> str:
        return self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(
    *,
    seed: int = 0,
    size: str = "small",
    token: str = "test-token",  # noqa: S107 - the documented token of the fake, not a secret
    scopes: Sequence[str] | None = None,
    rate_limit: int = 25,
    rate_window: float = 5.0,
    export_delay: float = 1.0,
    fail_rate: float = 0.0,
    latency_ms: int = 0,
    host: str = "127.0.0.1",
    port: int = 0,
) -> FakeServer:
    """A `FakeServer` of a new fake with one generated company reachable with `token`."""
    fake = FakePennylane(
        rate_limit=rate_limit,
        rate_window=rate_window,
        export_delay=export_delay,
        fail_rate=fail_rate,
        latency_ms=latency_ms,
        fault_seed=seed,
    )
    fake.add_company(seed=seed, size=size, token=token, scopes=scopes)
    return FakeServer(fake, host=host, port=port)


def run(fake: FakePennylane, *, host: str, port: int, token: str) -> None:
    """Serve in the foreground until interrupted; print one line with the base URL and the token."""
    sock = _bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"fake pennylane http://{shown}:{sock.getsockname()[1]}{API_PREFIX} token={token}", flush=True)
    uvicorn.Server(_config(fake, "info", own_process=True)).run(sockets=[sock])
