"""Keeping freed memory in the process from one batch to the next (glibc's allocator).

Reading a large workbook makes about 1.3 GB of short-lived allocations (calamine's cell grid, the cell
strings, the Arrow columns). By default glibc maps each large block on its own and hands it back to the
kernel when it is freed, and trims the heap, so every batch faults all those pages in again: the kernel
zeroes each one, which costs about 0.5 s of system time per million-line read on a quiet machine, and
several times that where first-touched memory is expensive (virtual machines whose host reclaims freed
guest memory). `retain_heap()` makes large blocks come from the heap and never trims it: freed memory stays
in the process and the next batch reuses it without a fault.

The trade-off is memory: the process keeps its peak resident size between batches, and that peak is
higher (large blocks can no longer be grown in place by remapping, and freed ones are not always reused
for the next, larger one). Measured on a million-line grand livre (docs/benchmarks.md): a second read in
the same process took 3.99 s instead of 4.50 s (0.09 s of system time instead of 0.44 s), for a peak of
1.19 GB instead of 0.91 GB; under `comptaflow up` the first upload peaked at 1.8 GB instead of 1.35 GB.
So it is off by default; `COMPTAFLOW_RETAIN_HEAP=true` turns it on for `up` and `serve`. It must be called
before the process starts its threads, and it does nothing on a C library other than glibc.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8

_SETTINGS = (
    (M_ARENA_MAX, 1),  # one heap for every thread: what one thread frees, another reuses
    (M_MMAP_MAX, 0),  # large blocks from the heap too, not mapped on their own
    (M_TRIM_THRESHOLD, 2**31 - 1),  # never give the top of the heap back
)


def retain_heap() -> bool:
    """Configure glibc's allocator to keep freed memory; False (and nothing changed) elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 — present only in glibc
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return all(mallopt(parameter, value) == 1 for parameter, value in _SETTINGS)
