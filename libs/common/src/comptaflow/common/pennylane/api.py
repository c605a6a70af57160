"""The Pennylane Company API v2 client (facts: docs/pennylane.md; spec: the official OpenAPI v2).

- Every request takes a slot of the token's `Budget` first and reports the `ratelimit-*` headers back.
- Retries only what the API's errors guide says may be retried: 429 (after `retry-after`, its body is
  plain text and is never parsed as JSON), 500 and 503 and connection errors (capped exponential
  backoff with jitter), each bounded. A POST is not idempotent: it is retried after a 429 (refused, not
  done) or a connection that was never made, not after a 5xx or a timeout.
- 400, 401, 403, 404 and 422 raise at once, with the API's own message, read from either error shape the
  API uses (`{error, status}` in the spec, `{error, message}` in the guide, `{message, code}` for 400s).
- Cursor pagination re-sends `filter` and `sort` with every page (the cursor does not carry them), and
  a changelog's `start_date` goes on the first page only (with a cursor it is a 400).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Final

import httpx
from pydantic import SecretStr

from comptaflow.common.errors import ComptaflowError, DependencyUnavailable, PermanentError
from comptaflow.common.logging import get_logger
from comptaflow.common.metrics import PENNYLANE_REQUESTS
from comptaflow.common.pennylane.budget import Budget

log = get_logger("comptaflow.pennylane.api")

ID_BATCH: Final = 100
"""Ids per `filter id in […]` request (the lists' maximum `limit`)."""
MAX_DOWNLOAD_BYTES: Final = 1024**3
_RETRIED_STATUS: Final = frozenset({500, 503})


class PennylaneError(ComptaflowError):
    """The API refused or could not answer; `message` is the API's own text (never a token)."""

    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.path = path

    def __str__(self) -> str:
        where = f" on {self.path}" if self.path else ""
        code = f"{self.status} " if self.status is not None else ""
        return f"Pennylane answered {code}{where}: {self.message}".replace("  ", " ")


class BadRequest(PennylaneError, PermanentError):
    status = 400


class Unauthorized(PennylaneError, PermanentError):
    status = 401


class Forbidden(PennylaneError, PermanentError):
    status = 403


class NotFound(PennylaneError, PermanentError):
    status = 404


class Unprocessable(PennylaneError, PermanentError):
    status = 422


class Unavailable(PennylaneError, DependencyUnavailable):
    """5xx, 429s, timeouts or connection errors beyond the retries."""


class MalformedResponse(PennylaneError, PermanentError):
    """A response that is not what the spec says (not JSON, a missing envelope key, a looping cursor)."""


_BY_STATUS: Final[dict[int, type[PennylaneError]]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    422: Unprocessable,
}


@dataclass(frozen=True, slots=True)
class Me:
    company_id: int | None
    company_name: str | None
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Change:
    """A changelog event: the record `id` was inserted, updated or deleted; `processed_at` orders them."""

    id: int
    operation: str
    processed_at: datetime


@dataclass(slots=True)
class Stats:
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    by_status: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "retries": self.retries, "throttled": self.throttled}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    """Tries of a request answered 500/503 or not answered (the first included)."""
    throttled_attempts: int = 8
    """Tries of a request answered 429."""
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0

    def delay(self, retry: int) -> float:
        base: float = min(self.backoff_max_s, self.backoff_s * 2 ** (retry - 1))
        return base * (0.5 + random.random() / 2)  # noqa: S311 — jitter, not a secret


def _message(response: httpx.Response) -> str:
    """The API's error text from any of its error shapes (or the start of the body)."""
    text = response.text
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value and value not in ("forbidden", "unprocessable_entity"):
                field_name = body.get("field")
                return f"{value} ({field_name})" if isinstance(field_name, str) else value
        if isinstance(body.get("error"), str):
            return str(body["error"])
    return text.strip()[:300]


def _retry_after(response: httpx.Response, policy: RetryPolicy) -> float:
    raw = response.headers.get("retry-after", "")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), policy.retry_after_max_s)


def _int_header(response: httpx.Response, name: str) -> int | None:
    try:
        return int(response.headers[name])
    except (KeyError, ValueError):
        return None


def _float_header(response: httpx.Response, name: str) -> float | None:
    try:
        return float(response.headers[name])
    except (KeyError, ValueError):
        return None


def _timestamp(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedResponse(f"{what} is not a timestamp: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MalformedResponse(f"{what} is not an ISO-8601 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        raise MalformedResponse(f"{what} has no time zone: {value!r}")
    return parsed


class PennylaneClient:
    """One token's client: `async with PennylaneClient(base_url, token, budget=…) as api: …`."""

    def __init__(
        self,
        base_url: str,
        token: SecretStr,
        *,
        budget: Budget | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._budget = budget
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._retry = retry or RetryPolicy()
        self.stats = Stats()
        self.server_time: datetime | None = None
        """The API's clock (its `Date` header) at the last response: checkpoints are on its clock, not ours."""

    async def __aenter__(self) -> PennylaneClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token.get_secret_value()}", "Accept": "application/json"}

    async def _send(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> httpx.Response:
        """The response of a request that is neither retried nor an error (2xx), after the retries."""
        url = self._base + path
        idempotent = method == "GET"
        failures = throttles = 0
        while True:
            if self._budget is not None:
                await self._budget.acquire()
            self.stats.requests += 1
            try:
                response = await self._http.request(method, url, params=params, json=body, headers=self._headers())
            except httpx.TransportError as exc:
                PENNYLANE_REQUESTS.labels("0").inc()
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                failures += 1
                if (idempotent or never_sent) and failures < self._retry.attempts:
                    self.stats.retries += 1
                    log.info("pennylane_retry", path=path, reason=type(exc).__name__, attempt=failures)
                    await asyncio.sleep(self._retry.delay(failures))
                    continue
                raise Unavailable(f"no answer ({type(exc).__name__})", path=path) from exc
            status = response.status_code
            self._observe_date(response)
            self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
            PENNYLANE_REQUESTS.labels(str(status)).inc()
            if status == 429:
                throttles += 1
                await self._throttled(response, path, throttles)
                continue
            if self._budget is not None:
                await self._budget.observe(
                    remaining=_int_header(response, "ratelimit-remaining"),
                    reset_at=_float_header(response, "ratelimit-reset"),
                )
            if status in _RETRIED_STATUS:
                failures += 1
                if idempotent and failures < self._retry.attempts:
                    self.stats.retries += 1
                    log.info("pennylane_retry", path=path, status=status, attempt=failures)
                    await asyncio.sleep(self._retry.delay(failures))
                    continue
                raise Unavailable(_message(response), status=status, path=path)
            if status >= 500:  # 502, 504…: not retried, but Pennylane unavailable all the same
                raise Unavailable(_message(response), status=status, path=path)
            if status >= 400:
                error = _BY_STATUS.get(status)
                if error is None:
                    raise PennylaneError(_message(response), status=status, path=path)
                raise error(_message(response), path=path)
            return response

    def _observe_date(self, response: httpx.Response) -> None:
        raw = response.headers.get("date")
        if raw:
            try:
                self.server_time = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                return

    async def _throttled(self, response: httpx.Response, path: str, throttles: int) -> None:
        """A 429: everyone on the budget waits `retry-after`; raises once the request was refused too often."""
        self.stats.throttled += 1
        wait = _retry_after(response, self._retry)
        if self._budget is not None:
            await self._budget.throttled(wait)
        log.warning("pennylane_throttled", path=path, retry_after=wait, attempt=throttles)
        if throttles >= self._retry.throttled_attempts:
            raise Unavailable(f"still rate limited after {throttles} tries", status=429, path=path)
        self.stats.retries += 1
        if self._budget is None:
            await asyncio.sleep(wait)

    async def request_json(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        response = await self._send(method, path, params=params, body=body)
        try:
            return response.json()
        except ValueError as exc:
            raise MalformedResponse("the response is not JSON", status=response.status_code, path=path) from exc

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.request_json("GET", path, params=params)

    async def post(self, path: str, body: Any) -> Any:
        return await self.request_json("POST", path, body=body)

    async def me(self) -> Me:
        """Who the token is (no scope needed): its company and scopes."""
        body = await self.get("/me")
        if not isinstance(body, dict) or not isinstance(body.get("scopes"), list):
            raise MalformedResponse("/me did not answer {company, scopes}", path="/me")
        company = body.get("company") if isinstance(body.get("company"), dict) else {}
        assert isinstance(company, dict)
        company_id = company.get("id")
        name = company.get("name")
        return Me(
            company_id=company_id if isinstance(company_id, int) else None,
            company_name=name if isinstance(name, str) else None,
            scopes=tuple(s for s in body["scopes"] if isinstance(s, str)),
        )

    async def _walk(
        self, path: str, first: Mapping[str, Any], then: Mapping[str, Any]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The items of each page: `first` is the first page's query, `then` (plus the cursor) the others'."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            query = dict(first) if cursor is None else {**then, "cursor": cursor}
            items, cursor = _page(await self.get(path, query), path)
            yield items
            if cursor is None:
                return
            if cursor in seen:
                raise MalformedResponse(f"the cursor {cursor[:40]!r} came back twice", path=path)
            seen.add(cursor)

    async def pages(
        self, path: str, *, params: Mapping[str, Any] | None = None, limit: int = 100
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a cursor-paginated list; `params` (filter, sort…) are sent again with each page."""
        query = {**{k: v for k, v in (params or {}).items() if v is not None}, "limit": limit}
        async for items in self._walk(path, query, query):
            yield items

    async def list_all(
        self, path: str, *, params: Mapping[str, Any] | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        async for items in self.pages(path, params=params, limit=limit):
            out.extend(items)
        return out

    async def fetch_ids(self, path: str, ids: Sequence[int], *, limit: int = ID_BATCH) -> list[dict[str, Any]]:
        """The records of `ids` (those that still exist), `filter id in […]` by batches of `limit`."""
        out: list[dict[str, Any]] = []
        ordered = sorted(set(ids))
        for start in range(0, len(ordered), limit):
            chunk = ordered[start : start + limit]
            where = json.dumps([{"field": "id", "operator": "in", "value": chunk}], separators=(",", ":"))
            out.extend(await self.list_all(path, params={"filter": where, "sort": "id"}, limit=limit))
        return out

    async def changes(self, resource: str, *, since: datetime | None, limit: int = 1000) -> AsyncIterator[list[Change]]:
        """The changelog of `resource` from `since` (the oldest retained events for None), oldest first.

        `start_date` is sent on the first page only: with a cursor the API answers 400.
        """
        path = f"/changelogs/{resource}"
        first: dict[str, Any] = {"limit": limit}
        if since is not None:
            first["start_date"] = since.isoformat().replace("+00:00", "Z")
        async for items in self._walk(path, first, {"limit": limit}):
            yield [_change(item, path) for item in items]

    async def download(self, url: str) -> bytes:
        """An export's file (`file_url`): a signed link, fetched without the token, with it if refused."""
        for headers in ({}, self._headers()):
            for attempt in range(1, self._retry.attempts + 1):
                try:
                    async with self._http.stream("GET", url, headers=headers) as response:
                        if response.status_code in (401, 403) and not headers:
                            break
                        if response.status_code in _RETRIED_STATUS and attempt < self._retry.attempts:
                            await asyncio.sleep(self._retry.delay(attempt))
                            continue
                        if response.status_code >= 400:
                            await response.aread()
                            error = (
                                Unavailable
                                if response.status_code >= 500
                                else _BY_STATUS.get(response.status_code, PennylaneError)
                            )
                            raise error(_message(response), status=response.status_code, path="export file")
                        chunks: list[bytes] = []
                        size = 0
                        async for chunk in response.aiter_bytes():
                            size += len(chunk)
                            if size > MAX_DOWNLOAD_BYTES:
                                raise MalformedResponse("the export file is larger than 1 GiB", path="export file")
                            chunks.append(chunk)
                        return b"".join(chunks)
                except httpx.TransportError as exc:
                    if attempt >= self._retry.attempts:
                        raise Unavailable(f"no answer ({type(exc).__name__})", path="export file") from exc
                    await asyncio.sleep(self._retry.delay(attempt))
        raise Forbidden("the export file was refused with and without the token", path="export file")


def _page(body: Any, path: str) -> tuple[list[dict[str, Any]], str | None]:
    """A list page's items and the cursor of the next page (None at the end)."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise MalformedResponse("a list page without `items`", path=path)
    items = body["items"]
    if not all(isinstance(item, dict) for item in items):
        raise MalformedResponse("a list page whose items are not objects", path=path)
    cursor = body.get("next_cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise MalformedResponse(f"next_cursor is not a string: {cursor!r}", path=path)
    if body.get("has_more") is False or not cursor:
        cursor = None
    return items, cursor


def _change(item: dict[str, Any], path: str) -> Change:
    record_id = item.get("id")
    operation = item.get("operation")
    if not isinstance(record_id, int) or operation not in ("insert", "update", "delete"):
        raise MalformedResponse(f"a changelog event without an id and operation: {item!r:.200}", path=path)
    return Change(id=record_id, operation=operation, processed_at=_timestamp(item.get("processed_at"), "processed_at"))
