"""Running untrusted work (parsing an uploaded file) in a child process under hard budgets.

The parent survives whatever the child does — abort, hang, running out of memory, a segmentation fault — and
learns which of these it was:

- memory: the child's address space is capped (`RLIMIT_AS`, set in the child before the work starts); an
  allocation over it fails, the work dies with `MemoryError` or the Rust allocator aborts → `OverBudget`;
- time: the parent kills the child once the work has run for `timeout_s` (wall clock) → `OverBudget`;
- anything else that ends the child without a result (a signal, an exit) → `ChildCrashed`; an exception the
  work raised → `ChildFailed` (its text is for the log, not for users).

Children are warm: a pool keeps `spares` started ahead of time with the heavy modules imported (`preload`),
so a job does not pay for importing polars. Each child runs exactly one job and exits, giving all its memory
back; a new spare is started when the job is over (started beside it, its imports slowed the parse by a
second). A child's environment is the parent's minus every
`COMPTAFLOW_*` and `AWS_*` variable: what parses a hostile file holds no database URL, key or token. Results
are small JSON values; bulky output (tables) goes through files the work writes in a folder the parent owns.

Cancelling `run()` (a worker shutting down) kills the child at once; `stop()` kills every child.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog

log = structlog.get_logger("comptaflow.sandbox")

CHILD_MODULE: Final = "comptaflow.common.sandbox.child"
START_TIMEOUT_S: Final = 120.0
"""A child that is not ready within this time (imports on a loaded machine) is abandoned."""
STDERR_LINES: Final = 40
LINE_LIMIT: Final = 16 * 1024 * 1024
_HIDDEN_ENV: Final = ("COMPTAFLOW_", "AWS_")
_MEMORY_SIGNS: Final = ("memory allocation", "memoryerror", "cannot allocate memory", "bad_alloc", "out of memory")
"""What a child that ran out of its address space prints on its way out (compared in lower case)."""
_CHILD_ENV: Final = {
    "RUST_BACKTRACE": "0",  # a Rust abort prints one line, the one that says why
    "OPENBLAS_NUM_THREADS": "1",  # OpenBLAS (if some library loads it) reserves buffers per thread
}

Progress = Callable[[str, float], None]


class SandboxError(Exception):
    """The work did not produce a result."""


@dataclass(frozen=True)
class OverBudget(SandboxError):
    """The work needed more than its memory or time budget."""

    budget: str  # "memory" | "time"
    limit: float  # MiB or seconds

    def __str__(self) -> str:
        if self.budget == "memory":
            return f"over the memory budget of {self.limit:,.0f} MiB"
        return f"over the time budget of {self.limit:g} s"


class ChildCrashed(SandboxError):
    """The child ended without a result (killed by a signal, or exited)."""


class ChildFailed(SandboxError):
    """The work raised an exception; `kind` is its type name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent's environment without its secrets, with libraries told to stay small (`_CHILD_ENV`)."""
    source = os.environ if environ is None else environ
    kept = {key: value for key, value in source.items() if not key.startswith(_HIDDEN_ENV)}
    return kept | _CHILD_ENV


class _Child:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.out_of_memory = False
        assert process.stderr is not None
        self.drained = asyncio.create_task(self._drain_stderr(process.stderr), name="sandbox-stderr")
        self.ready: asyncio.Task[bool] = asyncio.create_task(self._wait_ready(), name="sandbox-ready")

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        # Read continuously (a full pipe would block the child) and keep only the last lines.
        with contextlib.suppress(ValueError, ConnectionError):
            while line := await stream.readline():
                text = line[:500].decode(errors="replace").rstrip()
                lowered = text.lower()
                self.out_of_memory = self.out_of_memory or any(sign in lowered for sign in _MEMORY_SIGNS)
                self.stderr.append(text)

    async def _wait_ready(self) -> bool:
        message = await self.read()
        return message is not None and "ready" in message

    async def read(self) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        try:
            line = await self.process.stdout.readline()
        except (ValueError, ConnectionError, asyncio.LimitOverrunError):
            return None
        if not line:
            return None
        try:
            message = json.loads(line)
        except ValueError:
            return None
        return message if isinstance(message, dict) else None

    def send(self, job: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(job).encode() + b"\n")

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def reap(self) -> int:
        self.kill()
        code = await self.process.wait()
        self.ready.cancel()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.drained, timeout=1.0)
        self.drained.cancel()
        await asyncio.gather(self.ready, self.drained, return_exceptions=True)
        return code


class Sandbox:
    """A pool of warm children, each running one job under the memory and time budgets."""

    def __init__(self, *, preload: tuple[str, ...] = (), memory_mb: int, timeout_s: float, spares: int = 1) -> None:
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self._preload = preload
        self._spares = spares
        self._idle: collections.deque[_Child] = collections.deque()
        self._busy: set[_Child] = set()
        self._starting: set[asyncio.Task[None]] = set()
        self._stopped = False
        self._warm = False

    async def start(self) -> None:
        """Start the spares; from now on a spare is started again after each job (until `stop()`). A sandbox
        never started spawns a child per job and keeps none."""
        self._stopped = False
        self._warm = True
        for _ in range(self._spares - len(self._idle)):
            self._idle.append(await self._spawn())

    async def stop(self) -> None:
        self._stopped = True
        self._warm = False
        for task in self._starting:
            task.cancel()
        await asyncio.gather(*self._starting, return_exceptions=True)
        children = [*self._idle, *self._busy]
        self._idle.clear()
        await asyncio.gather(*(child.reap() for child in children), return_exceptions=True)

    async def _spawn(self) -> _Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            CHILD_MODULE,
            *self._preload,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_environment(),
            limit=LINE_LIMIT,
            start_new_session=True,  # a Ctrl-C in a terminal reaches the parent, which then kills the child
        )
        return _Child(process)

    def _replenish(self) -> None:
        if not self._warm or self._stopped or len(self._idle) + len(self._starting) >= self._spares:
            return

        async def spawn() -> None:
            child = await self._spawn()
            if self._stopped:
                await child.reap()
            else:
                self._idle.append(child)

        task = asyncio.create_task(spawn(), name="sandbox-spawn")
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _take(self) -> _Child:
        while self._idle:
            child = self._idle.popleft()
            if child.process.returncode is None:
                return child
            await child.reap()
        return await self._spawn()

    async def run(
        self,
        call: str,
        kwargs: dict[str, Any],
        *,
        on_progress: Progress | None = None,
        on_detail: Callable[[str, Any], None] | None = None,
    ) -> Any:
        """Run `call` ("package.module:function", called with `kwargs` and `on_progress`) in a child.

        `on_progress(stage, fraction)` gets the work's progress; `on_detail(stage, detail)` the detail it
        attached to a progress report (an intermediate result), if any."""
        if self._stopped:
            raise SandboxError("the sandbox is stopped")
        child = await self._take()
        self._busy.add(child)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                ready = await asyncio.shield(child.ready)
            if not ready:
                raise ChildCrashed(f"the parsing process did not start ({'; '.join(child.stderr) or 'no output'})")
            child.send({"call": call, "kwargs": kwargs, "memory_bytes": self.memory_mb * 1024 * 1024})
            try:
                async with asyncio.timeout(self.timeout_s):
                    return await self._follow(child, on_progress, on_detail)
            except TimeoutError:
                raise OverBudget("time", self.timeout_s) from None
        finally:
            self._busy.discard(child)
            # The next spare is started once this job is over, not beside it: its imports would take CPU
            # from the parse (a batch arriving meanwhile starts a child of its own).
            self._replenish()
            code = await child.reap()
            if code not in (0, -signal.SIGKILL):
                log.info("sandbox_child_ended", code=code, stderr=list(child.stderr)[-5:])

    async def _follow(
        self, child: _Child, on_progress: Progress | None, on_detail: Callable[[str, Any], None] | None
    ) -> Any:
        while (message := await child.read()) is not None:
            if "progress" in message:
                stage, fraction = message["progress"]
                if on_progress is not None:
                    on_progress(str(stage), float(fraction))
                if on_detail is not None and "detail" in message:
                    on_detail(str(stage), message["detail"])
            elif "result" in message:
                log.info("sandbox_job_done", peak_rss_mib=round(int(message.get("peak_rss", 0)) / 2**20))
                return message["result"]
            elif message.get("failure") == "memory":
                raise OverBudget("memory", self.memory_mb)
            elif "failure" in message:
                raise ChildFailed(str(message.get("type")), str(message.get("message")))
        code = await child.process.wait()
        with contextlib.suppress(asyncio.TimeoutError):  # the stderr drain catches the last lines
            await asyncio.wait_for(asyncio.shield(child.drained), timeout=1.0)
        if child.out_of_memory:
            raise OverBudget("memory", self.memory_mb)
        what = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        raise ChildCrashed(f"the parsing process stopped ({what})")
