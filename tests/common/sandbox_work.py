"""Work that the sandbox tests run in a child: each behaves like one way a parser can go wrong."""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from typing import Any

Progress = Callable[[str, float], None]


def echo(*, value: Any, on_progress: Progress) -> Any:
    on_progress("half", 0.5)
    print("noise on stdout is not a protocol message")
    return value


def environment(*, on_progress: Progress) -> list[str]:
    return sorted(os.environ)


def allocate(*, mib: int, on_progress: Progress) -> int:
    block = bytearray(mib * 1024 * 1024)
    return len(block)


def hang(*, on_progress: Progress) -> None:
    while True:
        time.sleep(1)


def segfault(*, on_progress: Progress) -> None:
    ctypes.string_at(0)


def abort(*, on_progress: Progress) -> None:
    os.abort()


def fail(*, on_progress: Progress) -> None:
    raise ValueError("secret internal detail")


def read_without_inspection(*, path: str, on_progress: Progress) -> int:
    """What the reader does with a sheet whose cells sit at far corners, when nothing checked it first."""
    import fastexcel

    return int(fastexcel.read_excel(path).load_sheet(0, header_row=None).to_polars().height)
