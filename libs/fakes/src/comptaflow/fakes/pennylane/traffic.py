"""What the fake was asked: a bounded log of API requests and per-token counts.

Tokens are never kept in clear: a request is attributed to its token's fingerprint (`fingerprint`, the
first 12 hex digits of its SHA-256), which is also what `/__admin/stats` is keyed by.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from comptaflow.fakes.pennylane.formats import timestamp

LOG_SIZE = 10_000


def fingerprint(token: str | None) -> str | None:
    """`None` for a request without a token; otherwise a stable, non-reversible name for it."""
    if not token:
        return None
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass(slots=True)
class Counts:
    requests: int = 0
    throttled: int = 0


class Traffic:
    def __init__(self) -> None:
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self._counts: dict[str, Counts] = {}
        self._lock = threading.Lock()

    def record(
        self, *, method: str, path: str, query: dict[str, str], status: int, token: str | None, at: datetime
    ) -> None:
        name = fingerprint(token)
        with self._lock:
            self._log.append(
                {
                    "method": method,
                    "path": path,
                    "query": query,
                    "status": status,
                    "token": name,
                    "time": timestamp(at),
                }
            )
            counts = self._counts.setdefault(name or "", Counts())
            counts.requests += 1
            counts.throttled += status == 429

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._log)

    def clear(self) -> None:
        with self._lock:
            self._log.clear()
            self._counts.clear()

    def stats(self) -> dict[str, dict[str, int]]:
        """Per token fingerprint ("" for requests without a token): requests and 429s."""
        with self._lock:
            return {name: {"requests": c.requests, "throttled": c.throttled} for name, c in self._counts.items()}
