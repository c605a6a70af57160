"""Injected failures, for testing a client's retries and its defences.

A `Fault` applies to the next `count` API requests whose path starts with `path` (with or without the
`/api/external/v2` prefix; every path when empty), first queued first served:

- `status`: answer `status` instead (4xx: the spec's `{error, status}` body; 5xx: an empty body, as the
  spec declares none for 500);
- `latency`: wait `latency_s` seconds, then answer normally;
- `malformed`: answer the real status with the body cut in half (not valid JSON);
- `drop_key`: answer with `key` removed from every item of `items` (or from the object itself).

Besides the queue, `fail_rate` answers a random share of requests 503 (drawn from a seeded generator)
and `latency_ms` delays every request.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from comptaflow.fakes.pennylane.resources import API_PREFIX

KINDS = ("status", "latency", "malformed", "drop_key")


@dataclass(slots=True)
class Fault:
    kind: str
    count: int = 1
    path: str = ""
    status: int = 503
    latency_s: float = 1.0
    key: str = "id"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (one of {', '.join(KINDS)})")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code")

    def matches(self, path: str) -> bool:
        if not self.path:
            return True
        wanted = self.path if self.path.startswith(API_PREFIX) else API_PREFIX + "/" + self.path.lstrip("/")
        return path.startswith(wanted)

    def describe(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "count": self.count,
            "path": self.path,
            "status": self.status,
            "latency_s": self.latency_s,
            "key": self.key,
        }


class Faults:
    def __init__(self, *, fail_rate: float = 0.0, latency_ms: int = 0, seed: int = 0) -> None:
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        self.fail_rate = fail_rate
        self.latency_ms = latency_ms
        self._random = random.Random(f"{seed}:faults")  # noqa: S311 - reproducible failures, not security
        self._queue: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._queue.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def pending(self) -> list[dict[str, object]]:
        with self._lock:
            return [fault.describe() for fault in self._queue]

    def take(self, path: str) -> Fault | None:
        """The fault this request gets, if any (a queued one first, then a random 503)."""
        with self._lock:
            for fault in self._queue:
                if fault.matches(path):
                    fault.count -= 1
                    if fault.count == 0:
                        self._queue.remove(fault)
                    return Fault(fault.kind, 1, fault.path, fault.status, fault.latency_s, fault.key)
            if self.fail_rate and self._random.random() < self.fail_rate:
                return Fault("status", status=503)
        return None
