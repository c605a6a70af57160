"""How many uploads one gateway process receives at once (docs/api.md, Upload refusals): per tenant, and in all.

Each upload in flight holds a connection, a request task, up to one S3 multipart upload and its buffered
part. Without a bound, a client opening hundreds of uploads (or one tenant's runaway script) takes
them all. So an upload claims a slot before a byte of its body is read, and over either limit it is
refused at once (`TooManyUploads`, a 429 with Retry-After): a flood costs a header parse per request,
and the uploads already admitted go on undisturbed.

    COMPTAFLOW_MAX_UPLOADS_PER_TENANT   uploads of one tenant in flight (default 4)
    COMPTAFLOW_MAX_UPLOADS              uploads in flight in all (default 64)

`claim` is a context manager: the slot is released however the upload ends (202, a 422 refusal, the idle
timeout, the client gone, the task cancelled). Counting needs no lock: the check and the increment run
without an await between them, on the one event loop of the process. The limits are per process: N
gateway replicas admit N times as many.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from comptaflow.gateway.errors import Refusal

# Uploads last from seconds to minutes, so no finish time can be promised: a short, fixed wait spreads
# retries without keeping a client waiting long once a slot is free.
RETRY_AFTER_S = 5


class TooManyUploads(Refusal):
    """The upload is refused before its body is read (429, Retry-After: RETRY_AFTER_S); nothing is stored."""


class UploadSlots:
    def __init__(self, *, per_tenant: int, total: int) -> None:
        self._per_tenant = per_tenant
        self._total = total
        self._by_tenant: Counter[str] = Counter()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def in_flight_for(self, tenant_id: str) -> int:
        return self._by_tenant[tenant_id]

    @contextlib.contextmanager
    def claim(self, tenant_id: str) -> Iterator[None]:
        """Hold one slot of `tenant_id` for the duration of the block, or raise `TooManyUploads`."""
        if self._by_tenant[tenant_id] >= self._per_tenant:
            raise TooManyUploads(
                "TOO_MANY_UPLOADS",
                f"this tenant already has {self._per_tenant} uploads in progress, the most allowed at once;"
                f" retry in {RETRY_AFTER_S} s",
                {"scope": "tenant", "limit": self._per_tenant, "retry_after_s": RETRY_AFTER_S},
            )
        if self._in_flight >= self._total:
            raise TooManyUploads(
                "TOO_MANY_UPLOADS",
                f"the gateway is receiving {self._total} uploads, the most it takes at once;"
                f" retry in {RETRY_AFTER_S} s",
                {"scope": "gateway", "limit": self._total, "retry_after_s": RETRY_AFTER_S},
            )
        self._by_tenant[tenant_id] += 1
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._by_tenant[tenant_id] -= 1
            if not self._by_tenant[tenant_id]:
                del self._by_tenant[tenant_id]  # a tenant without uploads in flight takes no memory
