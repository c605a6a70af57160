"""The parsing sandbox: the parent survives whatever its child does, and learns which budget was passed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from comptaflow.common.sandbox import ChildCrashed, ChildFailed, OverBudget, Sandbox, child_environment
from comptaflow.testkit import malformed

WORK = "tests.common.sandbox_work"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = Sandbox(memory_mb=512, timeout_s=5.0)
    yield box
    await box.stop()


async def test_a_result_and_its_progress_come_back(sandbox: Sandbox) -> None:
    seen: list[tuple[str, float]] = []
    result = await sandbox.run(f"{WORK}:echo", {"value": {"a": [1, 2]}}, on_progress=lambda *p: seen.append(p))
    assert result == {"a": [1, 2]}
    assert seen == [("half", 0.5)]


async def test_the_child_holds_no_secret_of_the_parent(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> None:
    monkeypatch.setenv("COMPTAFLOW_JWT_SECRET", "do-not-leak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    names = await sandbox.run(f"{WORK}:environment", {})
    assert not [name for name in names if name.startswith(("COMPTAFLOW_", "AWS_"))]
    assert "PATH" in names
    assert "COMPTAFLOW_X" not in child_environment({"COMPTAFLOW_X": "1", "HOME": "/h"})


async def test_memory_over_the_cap_is_named(sandbox: Sandbox) -> None:
    with pytest.raises(OverBudget) as caught:
        await sandbox.run(f"{WORK}:allocate", {"mib": 2048})
    assert caught.value.budget == "memory"
    assert "512 MiB" in str(caught.value)
    assert await sandbox.run(f"{WORK}:allocate", {"mib": 64}) == 64 * 1024 * 1024  # the next job runs


async def test_a_hang_is_killed_at_the_time_budget() -> None:
    box = Sandbox(memory_mb=512, timeout_s=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(OverBudget) as caught:
            await box.run(f"{WORK}:hang", {})
    finally:
        await box.stop()
    assert caught.value.budget == "time"
    assert "1 s" in str(caught.value)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(("work", "signal_name"), [("segfault", "SIGSEGV"), ("abort", "SIGABRT")])
async def test_a_crash_is_reported_not_suffered(sandbox: Sandbox, work: str, signal_name: str) -> None:
    with pytest.raises(ChildCrashed, match=signal_name):
        await sandbox.run(f"{WORK}:{work}", {})


async def test_an_exception_of_the_work_is_reported_with_its_type(sandbox: Sandbox) -> None:
    with pytest.raises(ChildFailed) as caught:
        await sandbox.run(f"{WORK}:fail", {})
    assert caught.value.kind == "ValueError"


async def test_the_reader_given_the_corner_attack_stays_within_the_cap(tmp_path: Path, sandbox: Sandbox) -> None:
    """Unchecked, the reader asks for hundreds of gigabytes; in the child it is stopped at the cap, and the
    parent's memory does not move."""
    path = malformed.write_corner_cells(tmp_path / "corners.xlsx")
    assert path.stat().st_size < 8 * 1024
    before = psutil.Process().memory_info().rss
    with pytest.raises(OverBudget) as caught:
        await asyncio.wait_for(sandbox.run(f"{WORK}:read_without_inspection", {"path": str(path)}), timeout=60)
    assert caught.value.budget == "memory"
    assert psutil.Process().memory_info().rss - before < 64 * 1024 * 1024


async def test_warm_children_are_started_ahead_and_replaced() -> None:
    box = Sandbox(preload=("json",), memory_mb=512, timeout_s=5.0, spares=1)
    await box.start()
    try:
        assert await box.run(f"{WORK}:echo", {"value": 1}) == 1
        for _ in range(100):  # a replacement spare is started in the background
            if box._idle:
                break
            await asyncio.sleep(0.05)
        assert len(box._idle) == 1
        assert await box.run(f"{WORK}:echo", {"value": 2}) == 2
    finally:
        await box.stop()
    assert not box._idle


async def test_cancelling_a_run_kills_its_child(sandbox: Sandbox) -> None:
    task = asyncio.create_task(sandbox.run(f"{WORK}:hang", {}))
    for _ in range(200):
        if sandbox._busy:
            break
        await asyncio.sleep(0.02)
    (child,) = sandbox._busy
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert child.process.returncode is not None
    assert not psutil.pid_exists(child.process.pid) or psutil.Process(child.process.pid).status() == "zombie"
