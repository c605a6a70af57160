"""What workers do with freed memory (glibc): give it back after each batch, or keep it when configured."""

from __future__ import annotations

import subprocess
import sys

import pytest

from comptaflow.cli import main as cli
from comptaflow.common import memory
from comptaflow.common.settings import Settings

# What both child interpreters start with: the C allocator, and the resident size in MiB.
_PRELUDE = """
import ctypes, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS:")) // 1024
"""


def _run_child(code: str, *args: str) -> list[str]:
    """Run `code` after the prelude in a fresh interpreter; what it printed, split."""
    done = subprocess.run(  # noqa: S603 — our own interpreter, fixed code
        [sys.executable, "-c", _PRELUDE + code, *args], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split()


# 256 MiB malloc'd, touched, freed; how many MiB stay resident afterwards.
_CHILD = """
from comptaflow.common.memory import retain_heap
applied = retain_heap() if sys.argv[1] == "retain" else False
before = rss()
size = 256 * 1024 * 1024
block = libc.malloc(size)
ctypes.memset(block, 1, size)
touched = rss()
libc.free(block)
print(applied, touched - before, rss() - before)
"""


def _resident_after_free(mode: str) -> tuple[str, int, int]:
    applied, touched, after = _run_child(_CHILD, mode)
    return applied, int(touched), int(after)


@pytest.mark.skipif(memory.glibc() is None, reason="glibc's allocator only")
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
    # A name no package registers: main() stops with 2 right after the allocator is configured.
    assert cli.main(["serve", "no-such-service"]) == 2
    assert len(called) == calls


def test_token_and_migrate_leave_the_allocator_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[bool] = []
    monkeypatch.setattr(cli, "retain_heap", lambda: called.append(True) or True)
    monkeypatch.setenv("COMPTAFLOW_RETAIN_HEAP", "true")
    assert cli.main(["token", "--sub", "someone", "--role", "admin"]) == 2  # no --tenant: refused
    assert called == []


# 256 MiB in 64 KiB blocks (below glibc's mapping threshold, so from the heap), all freed but the last,
# which keeps the heap's top in use: glibc keeps the freed pages until they are released.
_FRAGMENTED = """
from comptaflow.common.memory import release_freed_memory
before = rss()
blocks = []
for _ in range(4096):
    block = libc.malloc(64 * 1024)
    ctypes.memset(block, 1, 64 * 1024)
    blocks.append(block)
for block in blocks[:-1]:
    libc.free(block)
kept = rss() - before
released = release_freed_memory()
print(kept, released, rss() - before)
"""


@pytest.mark.skipif(memory.glibc() is None, reason="glibc's allocator only")
def test_freed_heap_memory_is_given_back_on_release() -> None:
    kept, released, after = _run_child(_FRAGMENTED)
    assert int(kept) >= 200  # freed, yet still resident
    assert released == "True"
    assert int(after) < 50


@pytest.mark.parametrize(("retain", "calls"), [(False, 1), (True, 0)])
async def test_after_a_batch_memory_is_given_back_unless_retained(
    monkeypatch: pytest.MonkeyPatch, retain: bool, calls: int
) -> None:
    called: list[bool] = []
    monkeypatch.setattr(memory, "release_freed_memory", lambda: called.append(True) or True)
    await memory.release_after_batch(Settings(retain_heap=retain))
    assert len(called) == calls
