"""Pennylane's rate limit: `limit` requests per `window` seconds per token (25 per 5 s), a sliding window
over real time (monotonic), never the fake clock.

Every request under `/api/external/v2` counts, whatever its status, once it is let through; a request
over the limit is refused with a 429 and does not count. Headers (`headers()`): `ratelimit-limit`,
`ratelimit-remaining`, `ratelimit-reset` (Unix timestamp at which the oldest counted request leaves the
window) on every response, plus `retry-after` (whole seconds) on a 429, whose body is the plain text
`Rate limit exceeded. Please retry in X seconds.`
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # Unix timestamp
    retry_after: int  # seconds; 0 when allowed

    def headers(self) -> dict[str, str]:
        headers = {
            "ratelimit-limit": str(self.limit),
            "ratelimit-remaining": str(self.remaining),
            "ratelimit-reset": str(self.reset),
        }
        if not self.allowed:
            headers["retry-after"] = str(self.retry_after)
        return headers

    def message(self) -> str:
        return f"Rate limit exceeded. Please retry in {self.retry_after} seconds."


class RateLimiter:
    def __init__(self, *, limit: int = 25, window: float = 5.0) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("the rate limit needs limit >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> Decision:
        """Count one request of `key` if the window has room, and say what its headers are."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            allowed = len(hits) < self.limit
            if allowed:
                hits.append(now)
            frees_in = hits[0] + self.window - now if hits else self.window
            reset = math.ceil(time.time() + frees_in)
            return Decision(
                allowed=allowed,
                limit=self.limit,
                remaining=self.limit - len(hits),
                reset=reset,
                retry_after=0 if allowed else max(1, math.ceil(frees_in)),
            )
