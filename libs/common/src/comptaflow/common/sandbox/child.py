"""The child side of `comptaflow.common.sandbox`: `python -m comptaflow.common.sandbox.child MODULE...`.

Started ahead of time by the parent, the child imports the modules named on its command line (the warm part:
polars and fastexcel take most of a second to import), says it is ready, then waits for one job on stdin:
a JSON line `{"call": "package.module:function", "kwargs": {...}, "memory_bytes": N}`. It caps its own
address space (`RLIMIT_AS`) and core dumps before it calls the function, so whatever the function is given
cannot take more memory than the budget, then writes JSON lines to the protocol channel — `{"progress":
[stage, fraction], "detail"?: ...}` as the function reports them (`on_progress(stage, fraction, detail=None)`:
a detail lets the parent act on an intermediate result while the work goes on), then `{"result": ...}` or
`{"failure": "memory" | "error", "type", "message"}` — and exits at once (`os._exit`: threads still
running are not waited for).

The protocol channel is the stdout the parent gave; the child's own fd 1 is pointed at stderr, so nothing a
library prints can be mistaken for a message. The child dies with its parent (`PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import resource
import signal
import sys
from collections.abc import Callable
from typing import IO, Any

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() == 1:  # the parent died before the call above
        os._exit(1)


def _cap(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _resolve(call: str) -> Callable[..., Any]:
    module, _, name = call.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


def _send(channel: IO[bytes], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, default=str).encode() + b"\n")
    channel.flush()


def main(argv: list[str]) -> None:
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _die_with_parent()
    for module in argv:
        importlib.import_module(module)
    _send(channel, {"ready": os.getpid()})
    line = sys.stdin.buffer.readline()
    if not line:
        os._exit(0)
    job = json.loads(line)
    _cap(int(job["memory_bytes"]))

    def on_progress(stage: str, fraction: float, detail: Any = None) -> None:
        _send(channel, {"progress": [stage, fraction]} | ({} if detail is None else {"detail": detail}))

    try:
        result = _resolve(job["call"])(**job["kwargs"], on_progress=on_progress)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        _send(channel, {"result": result, "peak_rss": peak})
    except MemoryError:
        _send(channel, {"failure": "memory", "type": "MemoryError", "message": "out of memory"})
    except BaseException as exc:
        _send(channel, {"failure": "error", "type": type(exc).__name__, "message": str(exc)[:2000]})
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
