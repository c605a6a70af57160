"""The API routes under `/api/external/v2`: `/me`, the lists and their sub-lists, `GET /{resource}/{id}`,
`/trial_balance`, `/changelogs/*` and `/exports/*`.

Checks come in Pennylane's order: the bearer token (401), the scope (403), the parameters (400), then
the record (404) and business rules (422). Every handler works under the fake's lock.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import date
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from comptaflow.fakes.pennylane import reports
from comptaflow.fakes.pennylane.exports import KINDS
from comptaflow.fakes.pennylane.formats import parse_date, parse_timestamp, timestamp
from comptaflow.fakes.pennylane.query import (
    ApiError,
    Page,
    Sort,
    decode_cursor,
    encode_cursor,
    paginate,
    parse_filter,
    parse_limit,
    parse_sort,
)
from comptaflow.fakes.pennylane.resources import (
    API_PREFIX,
    CHANGELOG_MAX_LIMIT,
    CHANGELOG_SCOPES,
    DETAILS,
    EXPORT_SCOPES,
    LISTINGS,
    SUB_LISTS,
    TRIAL_BALANCE_SCOPE,
    UNFILTERED,
)
from comptaflow.fakes.pennylane.store import RETENTION, Company, Event, Row
from comptaflow.fakes.pennylane.views import Item, View

if TYPE_CHECKING:
    from comptaflow.fakes.pennylane.fake import FakePennylane

# Handlers that only compute are plain functions: FastAPI runs them in its thread pool, so the event loop
# stays free to take requests in (and the rate limit counts each when it arrives, not when a large page
# computed before it is done). A handler that reads the body awaits it.
Handler = Callable[[Request], Response] | Callable[[Request], Awaitable[Response]]
INCLUDED_LINES = 20


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def origin(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() else None


def _envelope(items: list[Item], page: Page, *, page_keys: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if page_keys:
        body |= {"total_pages": None, "current_page": None, "total_items": None, "per_page": None}
    return body | {"items": items, "has_more": page.has_more, "next_cursor": page.next_cursor}


def _not_found(model: str | None, raw_id: str) -> ApiError:
    if model is None:
        return ApiError.of(404, "Not Found")
    return ApiError.of(404, f"Couldn't find {model} with 'id'={raw_id}")


class Api:
    def __init__(self, fake: FakePennylane) -> None:
        self.fake = fake

    def authorize(self, request: Request, scope: str | None) -> Company:
        token = self.fake.tokens.get(bearer(request) or "")
        if token is None:
            raise ApiError.of(401, "The access token is invalid")
        if scope is not None and not token.allows(scope):
            raise ApiError.of(403, f'Access to this resource requires scope "{scope}".')
        return self.fake.companies[token.company_id]

    def view(self, company: Company, request: Request) -> View:
        return View(company, origin(request) + API_PREFIX)

    # --- /me ----------------------------------------------------------------------------------------

    def me(self, request: Request) -> Response:
        with self.fake.lock:
            company = self.authorize(request, None)
            token = self.fake.tokens[bearer(request) or ""]
            return JSONResponse(
                {
                    "user": dict(company.user),
                    "company": {"id": company.id, "name": company.name, "reg_no": company.reg_no},
                    "scopes": list(token.scopes),
                }
            )

    # --- lists --------------------------------------------------------------------------------------

    def listing(self, name: str) -> Handler:
        listing = LISTINGS[name]

        def handler(request: Request) -> Response:
            with self.fake.lock:
                company = self.authorize(request, listing.scope)
                params = request.query_params
                limit = parse_limit(params.get("limit"), listing.max_limit)
                cursor = decode_cursor(params.get("cursor"))
                where = [] if name in UNFILTERED else parse_filter(params.get("filter"), listing.filters)
                sort = parse_sort(params.get("sort"), listing.sorts)
                include = params.get("include") if name == "customer_invoices" else None
                if include is not None and include != "invoice_lines":
                    raise ApiError.of(400, f"Invalid include {include!r} (available: invoice_lines)")
                rows = company.rows(listing.table)
                page = paginate(rows.values(), where=where, sort=sort, cursor=cursor, limit=limit, lookup=rows.get)
                view = self.view(company, request)
                render = view.renderer(listing.table)
                body = _envelope([render(row) for row in page.rows], page, page_keys=listing.page_keys)
                if include is not None:
                    body["included"] = {"invoice_lines": self._included_lines(company, view, page.rows)}
                return JSONResponse(body)

        return handler

    def _included_lines(self, company: Company, view: View, invoices: list[Row]) -> dict[str, Any]:
        wanted: dict[int, list[Row]] = {invoice["id"]: [] for invoice in invoices}
        for line in company.rows("customer_invoice_lines").values():
            if line["invoice_id"] in wanted:
                wanted[line["invoice_id"]].append(line)
        included = {}
        for invoice_id, lines in wanted.items():
            newest = sorted(lines, key=lambda line: line["id"], reverse=True)
            first = newest[:INCLUDED_LINES]
            more = len(newest) > INCLUDED_LINES
            cursor = encode_cursor({"id": first[-1]["id"]}) if more else None
            included[str(invoice_id)] = {
                "items": [view.customer_invoice_line(line) for line in first],
                "has_more": more,
                "next_url": f"{view.base}/customer_invoices/{invoice_id}/invoice_lines?cursor={cursor}"
                if more
                else None,
            }
        return included

    def sub_list(self, parent_name: str) -> Handler:
        parent_table, line_table, sorts, filters, page_keys = SUB_LISTS[parent_name]
        parent = LISTINGS[parent_table]

        def handler(request: Request) -> Response:
            with self.fake.lock:
                company = self.authorize(request, parent.scope)
                params = request.query_params
                limit = parse_limit(params.get("limit"), 100)
                cursor = decode_cursor(params.get("cursor"))
                where = parse_filter(params.get("filter"), filters) if filters else []
                sort = parse_sort(params.get("sort"), sorts)
                raw = request.path_params["parent_id"]
                parent_id = _id(raw)
                row = company.get(parent_table, parent_id) if parent_id is not None else None
                if row is None:
                    raise _not_found(parent.not_found, raw)
                table = company.rows(line_table)
                if parent_table == "ledger_entries":
                    lines = [table[line_id] for line_id in sorted(row["line_ids"]) if line_id in table]
                else:
                    lines = [line for line in table.values() if line["invoice_id"] == parent_id]
                page = paginate(lines, where=where, sort=sort, cursor=cursor, limit=limit, lookup=table.get)
                view = self.view(company, request)
                render = view.entry_line if parent_table == "ledger_entries" else view.renderer(line_table)
                return JSONResponse(_envelope([render(line) for line in page.rows], page, page_keys=page_keys))

        return handler

    def detail(self, name: str) -> Handler:
        listing = LISTINGS[DETAILS.get(name, name)]

        def handler(request: Request) -> Response:
            with self.fake.lock:
                company = self.authorize(request, listing.scope)
                raw = request.path_params["record_id"]
                record_id = _id(raw)
                row = company.get(listing.table, record_id) if record_id is not None else None
                if row is None:
                    raise _not_found(listing.not_found, raw)
                view = self.view(company, request)
                render = view.ledger_entry_detail if name == "ledger_entries" else view.renderer(listing.table)
                return JSONResponse(render(row))

        return handler

    # --- trial balance ------------------------------------------------------------------------------

    def trial_balance(self, request: Request) -> Response:
        with self.fake.lock:
            company = self.authorize(request, TRIAL_BALANCE_SCOPE)
            params = request.query_params
            start = _required_date(params.get("period_start"), "period_start")
            end = _required_date(params.get("period_end"), "period_end")
            auxiliary = params.get("is_auxiliary", "false").lower()
            if auxiliary not in ("true", "false"):
                raise ApiError.invalid("is_auxiliary", "ValidateError", "is_auxiliary must be a boolean")
            limit = parse_limit(params.get("limit"), 1000)
            cursor = decode_cursor(params.get("cursor"))
            rows = reports.trial_balance(company, start, end, auxiliary=auxiliary == "true")
            by_number = {row["id"]: row for row in rows}
            sort = Sort("id", False, lambda row: row["id"])
            page = paginate(rows, where=[], sort=sort, cursor=cursor, limit=limit, lookup=by_number.get)
            items = [{key: value for key, value in row.items() if key != "id"} for row in page.rows]
            return JSONResponse(_envelope(items, page, page_keys=True))

    # --- changelogs ---------------------------------------------------------------------------------

    def changelog(self, resource: str) -> Handler:
        scope = CHANGELOG_SCOPES[resource]

        def handler(request: Request) -> Response:
            with self.fake.lock:
                company = self.authorize(request, scope)
                params = request.query_params
                limit = parse_limit(params.get("limit"), CHANGELOG_MAX_LIMIT)
                raw_start, raw_cursor = params.get("start_date"), params.get("cursor")
                if raw_start is not None and raw_cursor is not None:
                    raise ApiError.of(400, "start_date and cursor cannot be used together")
                cursor = decode_cursor(raw_cursor)
                if cursor is not None and not isinstance(cursor.last_id, int):
                    raise ApiError.of(400, "Invalid cursor")
                oldest = self.fake.clock.now() - RETENTION
                since = oldest
                if raw_start is not None:
                    try:
                        since = parse_timestamp(raw_start)
                    except ValueError:
                        raise ApiError.invalid(
                            "start_date",
                            "InvalidDateTimeFormat",
                            f"start_date must be an RFC 3339 date-time: {raw_start!r}",
                        ) from None
                    if since < oldest:
                        raise ApiError.of(422, "start_date must be within the last 4 weeks (changes are kept 28 days)")
                events = company.events(resource, since=since, after_seq=cursor.last_id if cursor else 0)
                page: list[Event] = []
                more = False
                for event in events:
                    if len(page) == limit:
                        more = True
                        break
                    page.append(event)
                items = [
                    {
                        "id": event.id,
                        "operation": event.operation,
                        "processed_at": timestamp(event.processed_at),
                        "updated_at": timestamp(event.updated_at),
                        "created_at": timestamp(event.created_at),
                    }
                    for event in page
                ]
                next_cursor = encode_cursor({"id": page[-1].seq}) if more else None
                return JSONResponse({"items": items, "has_more": more, "next_cursor": next_cursor})

        return handler

    # --- exports ------------------------------------------------------------------------------------

    def create_export(self, kind: str) -> Handler:
        async def handler(request: Request) -> Response:
            raw = await request.body()
            with self.fake.lock:
                company = self.authorize(request, EXPORT_SCOPES[kind])
                start, end, mode = _export_body(raw, kind)
                export = self.fake.exports.create(company, kind, start, end, mode)
                return JSONResponse(export.created(), status_code=201)

        return handler

    def get_export(self, kind: str) -> Handler:
        def handler(request: Request) -> Response:
            with self.fake.lock:
                company = self.authorize(request, EXPORT_SCOPES[kind])
                raw = request.path_params["export_id"]
                export_id = _id(raw)
                export = self.fake.exports.get(company, kind, export_id) if export_id is not None else None
                if export is None:
                    raise ApiError.of(404, "Not Found")
                file_url = None
                if export.status == "ready":
                    signature = self.fake.exports.sign(export)
                    file_url = f"{origin(request)}/public/exports/{signature}/{export.filename}"
                return JSONResponse(
                    {
                        "id": export.id,
                        "file_url": file_url,
                        "status": export.status,
                        "created_at": timestamp(export.created_at),
                        "updated_at": timestamp(export.updated_at),
                    }
                )

        return handler


def _required_date(raw: str | None, name: str) -> date:
    if raw is None:
        raise ApiError.invalid(name, "NotExistRequiredKey", f"{name} is required")
    try:
        return parse_date(raw)
    except ValueError:
        raise ApiError.invalid(name, "InvalidDateFormat", f"{name} must be a date (YYYY-MM-DD): {raw!r}") from None


def _export_body(raw: bytes, kind: str) -> tuple[date, date, str]:
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        raise ApiError.of(400, "The request body must be JSON") from None
    if not isinstance(body, dict):
        raise ApiError.of(400, "The request body must be a JSON object with period_start and period_end")
    allowed = {"period_start", "period_end"} | ({"mode"} if kind == "analytical_general_ledgers" else set())
    for key in body:
        if key not in allowed:
            raise ApiError.invalid(key, "NotExistPropertyDefinition", f"{key} is not a known property")
    dates = []
    for name in ("period_start", "period_end"):
        value = body.get(name)
        if value is None:
            raise ApiError.invalid(name, "NotExistRequiredKey", f"{name} is required")
        dates.append(_required_date(value if isinstance(value, str) else repr(value), name))
    mode = body.get("mode", "in_line")
    if mode not in ("in_line", "in_column"):
        raise ApiError.invalid("mode", "NotEnumInclude", "mode must be in_line or in_column")
    start, end = dates
    if start > end:
        raise ApiError.of(400, "period_start must be on or before period_end")
    return start, end, mode


def api_router(fake: FakePennylane) -> APIRouter:
    api = Api(fake)
    router = APIRouter(prefix=API_PREFIX)
    router.add_api_route("/me", api.me, methods=["GET"])
    router.add_api_route("/trial_balance", api.trial_balance, methods=["GET"])
    for resource in CHANGELOG_SCOPES:
        router.add_api_route(f"/changelogs/{resource}", api.changelog(resource), methods=["GET"])
    for kind in KINDS:
        router.add_api_route(f"/exports/{kind}", api.create_export(kind), methods=["POST"])
        router.add_api_route(f"/exports/{kind}/{{export_id}}", api.get_export(kind), methods=["GET"])
    for name in LISTINGS:
        router.add_api_route(f"/{name}", api.listing(name), methods=["GET"])
    for parent in SUB_LISTS:
        sub = "ledger_entry_lines" if parent == "ledger_entries" else "invoice_lines"
        router.add_api_route(f"/{parent}/{{parent_id}}/{sub}", api.sub_list(parent), methods=["GET"])
    for name in (*DETAILS, "ledger_entries"):
        router.add_api_route(f"/{name}/{{record_id}}", api.detail(name), methods=["GET"])
    return router
