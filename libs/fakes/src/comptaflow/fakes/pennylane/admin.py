"""The control plane under `/__admin` (no auth, no rate limit, not logged); see the package docstring."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from comptaflow.fakes.pennylane import mutations
from comptaflow.fakes.pennylane.faults import Fault
from comptaflow.fakes.pennylane.formats import parse_date, timestamp
from comptaflow.fakes.pennylane.mutations import AdminError
from comptaflow.fakes.pennylane.resources import API_PREFIX
from comptaflow.fakes.pennylane.routes import origin
from comptaflow.fakes.pennylane.store import Company
from comptaflow.fakes.pennylane.traffic import fingerprint
from comptaflow.fakes.pennylane.views import View

if TYPE_CHECKING:
    from comptaflow.fakes.pennylane.fake import FakePennylane


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise AdminError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise AdminError("the body must be a JSON object")
    return body


def _company_id(request: Request, body: dict[str, Any] | None = None) -> int | None:
    raw = (body or {}).get("company_id", request.query_params.get("company_id"))
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise AdminError(f"company_id must be an integer, got {raw!r}") from None


def _describe(company: Company, fake: FakePennylane) -> dict[str, Any]:
    return {
        "id": company.id,
        "name": company.name,
        "reg_no": company.reg_no,
        "seed": company.seed,
        "size": company.size,
        "tokens": [fingerprint(t.value) for t in fake.tokens.values() if t.company_id == company.id],
    }


def _number(body: dict[str, Any], key: str, default: int = 0) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise AdminError(f"{key} must be a non-negative integer")
    return value


def admin_router(fake: FakePennylane) -> APIRouter:  # noqa: PLR0915 - one small closure per route
    router = APIRouter(prefix="/__admin")

    def company_of(request: Request, body: dict[str, Any] | None = None) -> Company:
        try:
            return fake.company(_company_id(request, body))
        except KeyError:
            raise AdminError("no such company", 404) from None

    def clock_state() -> dict[str, Any]:
        return {
            "now": timestamp(fake.clock.now()),
            "offset_seconds": fake.clock.offset_seconds,
            "anchor": timestamp(fake.anchor),
        }

    @router.get("/clock")
    async def get_clock() -> Response:
        return JSONResponse(clock_state())

    @router.post("/clock/advance")
    async def advance(request: Request) -> Response:
        seconds = (await _body(request)).get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise AdminError("seconds must be a non-negative number")
        fake.clock.advance(float(seconds))
        return JSONResponse(clock_state())

    @router.get("/companies")
    async def list_companies() -> Response:
        with fake.lock:
            return JSONResponse({"companies": [_describe(c, fake) for c in fake.companies.values()]})

    @router.post("/companies")
    async def add_company(request: Request) -> Response:
        body = await _body(request)
        token = body.get("token")
        scopes = body.get("scopes")
        if not isinstance(token, str) or not token:
            raise AdminError("token is required")
        if scopes is not None and not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
            raise AdminError("scopes must be an array of strings")
        try:
            company = fake.add_company(
                seed=_number(body, "seed"),
                size=str(body.get("size", "small")),
                token=token,
                scopes=scopes,
                name=body.get("name"),
            )
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        described = _describe(company, fake) | {"scopes": list(fake.tokens[token].scopes)}
        return JSONResponse(described, status_code=201)

    @router.post("/tokens")
    async def add_token(request: Request) -> Response:
        body = await _body(request)
        token, scopes = body.get("token"), body.get("scopes")
        if not isinstance(token, str) or not token:
            raise AdminError("token is required")
        if scopes is not None and not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
            raise AdminError("scopes must be an array of strings")
        company = company_of(request, body)
        added = fake.add_token(token, company.id, scopes)
        return JSONResponse(
            {"token": fingerprint(token), "company_id": company.id, "scopes": list(added.scopes)}, status_code=201
        )

    @router.post("/mutate")
    async def mutate(request: Request) -> Response:
        body = await _body(request)
        resources = body.get("resources")
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise AdminError("seed must be an integer")
        events = fake.mutate(
            company_of(request, body).id,
            inserts=_number(body, "inserts"),
            updates=_number(body, "updates"),
            deletes=_number(body, "deletes"),
            seed=seed,
            resources=resources if isinstance(resources, list) else None,
        )
        return JSONResponse({"events": events})

    @router.post("/records/{resource}")
    async def create_record(resource: str, request: Request) -> Response:
        body = await _body(request)
        with fake.lock:
            company = company_of(request)
            row = mutations.create(company, resource, body, fake.clock.now())
            view = View(company, origin(request) + API_PREFIX)
            return JSONResponse(view.renderer(resource)(row), status_code=201)

    @router.patch("/records/{resource}/{record_id}")
    async def update_record(resource: str, record_id: int, request: Request) -> Response:
        body = await _body(request)
        with fake.lock:
            company = company_of(request)
            row = mutations.update(company, resource, record_id, body, fake.clock.now())
            view = View(company, origin(request) + API_PREFIX)
            return JSONResponse(view.renderer(resource)(row))

    @router.delete("/records/{resource}/{record_id}")
    async def delete_record(resource: str, record_id: int, request: Request) -> Response:
        with fake.lock:
            mutations.delete(company_of(request), resource, record_id, fake.clock.now())
        return Response(status_code=204)

    @router.get("/dump/{resource}")
    async def dump(resource: str, request: Request) -> Response:
        params = request.query_params
        try:
            start = parse_date(params["period_start"]) if "period_start" in params else None
            end = parse_date(params["period_end"]) if "period_end" in params else None
            items = fake.dump(
                resource,
                company_of(request).id,
                origin=origin(request),
                period_start=start,
                period_end=end,
                auxiliary=params.get("is_auxiliary", "false").lower() == "true",
            )
        except KeyError as exc:
            raise AdminError(str(exc.args[0]), 404) from None
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        return JSONResponse({"items": items})

    @router.get("/requests")
    async def requests() -> Response:
        return JSONResponse({"requests": fake.traffic.requests()})

    @router.delete("/requests")
    async def clear_requests() -> Response:
        fake.traffic.clear()
        return Response(status_code=204)

    @router.get("/stats")
    async def stats() -> Response:
        return JSONResponse({"tokens": fake.traffic.stats()})

    @router.get("/faults")
    async def faults() -> Response:
        return JSONResponse({"faults": fake.faults.pending()})

    @router.post("/faults")
    async def add_fault(request: Request) -> Response:
        body = await _body(request)
        try:
            fault = Fault(
                kind=str(body.get("kind", "")),
                count=_number(body, "count", 1),
                path=str(body.get("path", "")),
                status=int(body.get("status", 503)),
                latency_s=float(body.get("latency_s", 1.0)),
                key=str(body.get("key", "id")),
            )
        except (TypeError, ValueError) as exc:
            raise AdminError(str(exc)) from None
        fake.faults.add(fault)
        return JSONResponse({"faults": fake.faults.pending()}, status_code=201)

    @router.delete("/faults")
    async def clear_faults() -> Response:
        fake.faults.clear()
        return Response(status_code=204)

    return router
