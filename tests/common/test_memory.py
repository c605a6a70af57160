"""`retain_heap`: freed memory stays in the process (glibc), and the CLI applies it only when configured."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from comptaflow.cli import main as cli
from comptaflow.common.settings import Settings


def _glibc() -> bool:
    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018
    except (OSError, AttributeError):
        return False
    return sys.platform.startswith("linux")


# In a fresh interpreter: 256 MiB malloc'd, touched, freed; how many MiB stay resident afterwards.
_CHILD = """
import ctypes, sys
from comptaflow.common.memory import retain_heap
applied = retain_heap() if sys.argv[1] == "retain" else False
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS:")) // 1024
before = rss()
size = 256 * 1024 * 1024
block = libc.malloc(size)
ctypes.memset(block, 1, size)
touched = rss()
libc.free(block)
print(applied, touched - before, rss() - before)
"""


def _resident_after_free(mode: str) -> tuple[str, int, int]:
    done = subprocess.run(  # noqa: S603 — our own interpreter, fixed code
        [sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, timeout=60, check=True
    )
    applied, touched, after = done.stdout.split()
    return applied, int(touched), int(after)


@pytest.mark.skipif(not _glibc(), reason="glibc's allocator only")
def test_freed_memory_stays_resident_only_when_retained() -> None:
    applied, touched, after = _resident_after_free("retain")
    assert applied == "True"
    assert touched >= 250
    assert after >= 250  # kept for the next batch: no page to fault in again

    applied, touched, after = _resident_after_free("default")
    assert applied == "False"
    assert touched >= 250
    assert after < 50  # glibc's default gives a block this large back to the kernel


@pytest.mark.parametrize(("value", "calls"), [("true", 1), ("false", 0)])
def test_cli_retains_the_heap_when_configured(monkeypatch: pytest.MonkeyPatch, value: str, calls: int) -> None:
    called: list[bool] = []
    monkeypatch.setattr(cli, "retain_heap", lambda: called.append(True) or True)
    monkeypatch.setenv("COMPTAFLOW_RETAIN_HEAP", value)
    assert Settings().retain_heap is (value == "true")
    # A service outside this release: main() stops with 2 right after the allocator is configured.
    assert cli.main(["serve", "pennylane-sync"]) == 2
    assert len(called) == calls


def test_token_and_migrate_leave_the_allocator_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[bool] = []
    monkeypatch.setattr(cli, "retain_heap", lambda: called.append(True) or True)
    monkeypatch.setenv("COMPTAFLOW_RETAIN_HEAP", "true")
    assert cli.main(["token", "--sub", "someone", "--role", "admin"]) == 2  # no --tenant: refused
    assert called == []
