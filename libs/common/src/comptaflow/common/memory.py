"""What a worker does with the memory a batch freed (glibc's allocator): give it back, or keep it.

By default the period validator and the loader give it back after each batch (`release_after_batch`,
`malloc_trim(0)`). glibc keeps much of what a large batch frees: blocks below its mapping threshold,
interleaved with live ones. Measured under `comptaflow up` with ten million-line periods in a row:
- without the release, the resident size between batches grew from 1,043 to 1,923 MiB and the peak
  reached 2,312 MiB, although a `malloc_trim` afterwards left only 640 MiB in use;
- with it, the resident size stayed at 759-889 MiB and the peak at 1,341-1,485 MiB. The uploads took
  6.75-7.24 s, against 6.58-7.74 s without it.

`retain_heap()` is the opposite choice, for a worker sized for its largest input. Large blocks come from
the heap, which is never trimmed, so the next batch reuses freed memory without faulting it in again.
A large read otherwise costs about 0.5 s of system time per million lines on a quiet machine, several
times that where first-touched memory is expensive (virtual machines whose host reclaims freed guest memory).
- The cost is memory: the process keeps its peak resident size between batches, and that peak is higher,
  because large blocks can no longer be grown in place by remapping and freed ones are not always reused
  for the next, larger one.
- On a million-line grand livre (docs/benchmarks.md), a second read in the same process took 3.99 s
  instead of 4.50 s (0.09 s of system time instead of 0.44 s), for a peak of 1.19 GB instead of 0.91 GB.
  Under `comptaflow up` the first upload peaked at 1.8 GB instead of 1.35 GB.
- So it is off by default. `COMPTAFLOW_RETAIN_HEAP=true` turns it on for `up` and `serve`, and then
  nothing is released after a batch.
- It must be called before the process starts its threads, and it does nothing on a C library other
  than glibc.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from comptaflow.common.settings import Settings

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_MAX = -4
M_ARENA_MAX = -8

_SETTINGS = (
    (M_ARENA_MAX, 1),  # one heap for every thread: what one thread frees, another reuses
    (M_MMAP_MAX, 0),  # large blocks from the heap too, not mapped on their own
    (M_TRIM_THRESHOLD, 2**31 - 1),  # never give the top of the heap back
)


def retain_heap() -> bool:
    """Configure glibc's allocator to keep freed memory; False (and nothing changed) elsewhere."""
    libc = glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return all(mallopt(parameter, value) == 1 for parameter, value in _SETTINGS)


def glibc() -> Any | None:
    """The process's C library when it is glibc (whose allocator this module configures), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 — present only in glibc
    except (OSError, AttributeError):
        return None
    return libc


def release_freed_memory() -> bool:
    """Return the C heap's free pages to the kernel (`malloc_trim(0)`); False where there is no glibc."""
    libc = glibc()
    if libc is None:
        return False
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    libc.malloc_trim(0)
    return True


async def release_after_batch(settings: Settings) -> None:
    """After a worker's batch: give freed memory back, unless the process keeps it (`retain_heap`)."""
    if not settings.retain_heap:
        await asyncio.to_thread(release_freed_memory)
