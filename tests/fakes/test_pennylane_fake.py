"""The fake Pennylane over real HTTP: every response against the official spec, and the behaviours a
sync client depends on (pagination, filters, changelogs, exports, rate limit, faults, determinism)."""

from __future__ import annotations

import base64
import io
import json
import os
import selectors
import subprocess
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from comptaflow.fakes.pennylane import FakePennylane, FakeServer, fingerprint
from comptaflow.fakes.pennylane.fake import DUMPABLE
from comptaflow.fakes.pennylane.reports import FEC_COLUMNS
from comptaflow.fakes.pennylane.resources import DEFAULT_SCOPES
from tests.fakes.conftest import TOKEN, Running, Spec, start

P = "/api/external/v2"
LISTS = {
    "customers": ("/customers/{id}", 100),
    "suppliers": ("/suppliers/{id}", 100),
    "customer_invoices": ("/customer_invoices/{id}", 100),
    "supplier_invoices": ("/supplier_invoices/{id}", 100),
    "products": ("/products/{id}", 100),
    "transactions": ("/transactions/{id}", 100),
    "ledger_entry_lines": ("/ledger_entry_lines/{id}", 100),
    "ledger_entries": ("/ledger_entries/{id}", 100),
    "ledger_accounts": ("/ledger_accounts/{id}", 1000),
    "journals": ("/journals/{id}", 100),
    "bank_accounts": ("/bank_accounts/{id}", 100),
    "fiscal_years": (None, 100),
    "categories": ("/categories/{id}", 100),
}
CHANGELOGS = (
    "customers",
    "suppliers",
    "customer_invoices",
    "supplier_invoices",
    "products",
    "transactions",
    "ledger_entry_lines",
)


def flt(*conditions: tuple[str, str, Any]) -> str:
    return json.dumps([{"field": f, "operator": o, "value": v} for f, o, v in conditions])


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text[:500])
    return response.json()


def walk(running: Running, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, following next_cursor and re-sending the other parameters."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        body = ok(running.client.get(path, params={**params, **({"cursor": cursor} if cursor else {})}))
        items += body["items"]
        cursor = body["next_cursor"]
        assert body["has_more"] == (cursor is not None)
        if cursor is None:
            return items


def dump(running: Running, resource: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(running.admin.get(f"/dump/{resource}", params=params))["items"]
    return items


def fiscal_years(running: Running) -> list[dict[str, Any]]:
    return sorted(dump(running, "fiscal_years"), key=lambda fy: fy["start"])


# --- the spec ---------------------------------------------------------------------------------------


def test_every_endpoint_answers_as_the_spec_declares(pennylane: Running, spec: Spec) -> None:
    client = pennylane.client
    spec.validate("GET", f"{P}/me", 200, ok(client.get("/me")))
    for name, (detail, maximum) in LISTS.items():
        cursor = None
        while True:
            params = {"limit": maximum, **({"cursor": cursor} if cursor else {})}
            body = ok(client.get(f"/{name}", params=params))
            spec.validate("GET", f"{P}/{name}", 200, body)
            cursor = body["next_cursor"]
            if cursor is None:
                break
        if detail is not None:
            record = body["items"][0]
            spec.validate("GET", P + detail, 200, ok(client.get(f"/{name}/{record['id']}")))
    spec.validate("GET", f"{P}/customer_invoices", 200, ok(client.get("/customer_invoices?include=invoice_lines")))
    for invoice in dump(pennylane, "customer_invoices"):
        body = ok(client.get(f"/customer_invoices/{invoice['id']}/invoice_lines"))
        spec.validate("GET", f"{P}/customer_invoices/{{customer_invoice_id}}/invoice_lines", 200, body)
    for invoice in dump(pennylane, "supplier_invoices"):
        body = ok(client.get(f"/supplier_invoices/{invoice['id']}/invoice_lines"))
        spec.validate("GET", f"{P}/supplier_invoices/{{supplier_invoice_id}}/invoice_lines", 200, body)
    for entry in dump(pennylane, "ledger_entries")[:20]:
        body = ok(client.get(f"/ledger_entries/{entry['id']}/ledger_entry_lines"))
        spec.validate("GET", f"{P}/ledger_entries/{{ledger_entry_id}}/ledger_entry_lines", 200, body)
    for auxiliary in ("true", "false"):
        params = {"period_start": "2000-01-01", "period_end": "2100-12-31", "is_auxiliary": auxiliary}
        spec.validate("GET", f"{P}/trial_balance", 200, ok(client.get("/trial_balance", params=params)))
    for resource in CHANGELOGS:
        body = ok(client.get(f"/changelogs/{resource}", params={"limit": 1000}))
        spec.validate("GET", f"{P}/changelogs/{resource}", 200, body)
    for kind in ("fecs", "general_ledgers", "analytical_general_ledgers"):
        created = ok(
            client.post(f"/exports/{kind}", json={"period_start": "2020-01-01", "period_end": "2030-12-31"}), 201
        )
        spec.validate("POST", f"{P}/exports/{kind}", 201, created)
        spec.validate("GET", f"{P}/exports/{kind}/{{id}}", 200, ok(client.get(f"/exports/{kind}/{created['id']}")))


def test_walking_every_list_gives_every_row_newest_first(pennylane: Running) -> None:
    for name in LISTS:
        items = walk(pennylane, f"/{name}", limit=7)
        expected = list(reversed(dump(pennylane, name)))
        assert items == expected, name
        assert [item["id"] for item in items] == sorted((item["id"] for item in items), reverse=True)


def test_values_look_as_pennylane_writes_them(pennylane: Running) -> None:
    line = dump(pennylane, "ledger_entry_lines")[0]
    invoice = dump(pennylane, "customer_invoices")[0]
    assert isinstance(line["id"], int)
    assert Decimal(line["debit"]).as_tuple().exponent == -2
    assert isinstance(line["debit"], str)
    assert isinstance(invoice["amount"], str)
    assert date.fromisoformat(invoice["date"])
    assert invoice["created_at"].endswith("Z")
    assert len(invoice["created_at"]) == len("2023-08-30T10:08:08.146343Z")
    assert invoice["customer"] == {
        "id": invoice["customer"]["id"],
        "url": f"{pennylane.base}/customers/{invoice['customer']['id']}",
    }
    assert invoice["public_file_url"] is None
    assert "public_file_url" in invoice


# --- errors -----------------------------------------------------------------------------------------


def test_unauthenticated_and_unauthorised_requests(pennylane: Running, spec: Spec) -> None:
    bare = httpx.get(f"{pennylane.base}/customers")
    assert (bare.status_code, bare.json()) == (401, {"error": "The access token is invalid", "status": 401})
    spec.validate("GET", f"{P}/customers", 401, bare.json())
    unknown = httpx.get(f"{pennylane.base}/me", headers={"Authorization": "Bearer nope"})
    assert (unknown.status_code, unknown.json()) == (401, {"error": "The access token is invalid", "status": 401})

    company_id = pennylane.fake.company().id
    ok(
        pennylane.admin.post(
            "/tokens", json={"token": "narrow", "company_id": company_id, "scopes": ["customers:readonly"]}
        ),
        201,
    )
    ok(
        pennylane.admin.post("/tokens", json={"token": "wide", "company_id": company_id, "scopes": ["customers:all"]}),
        201,
    )
    narrow = {"Authorization": "Bearer narrow"}
    refused = httpx.get(f"{pennylane.base}/suppliers", headers=narrow)
    assert refused.status_code == 403
    assert refused.json() == {"error": 'Access to this resource requires scope "suppliers:readonly".', "status": 403}
    spec.validate("GET", f"{P}/suppliers", 403, refused.json())
    export = httpx.post(f"{pennylane.base}/exports/fecs", headers=narrow, json={})
    assert export.json() == {"error": 'Access to this resource requires scope "exports:fec".', "status": 403}
    assert httpx.get(f"{pennylane.base}/customers", headers=narrow).status_code == 200
    assert httpx.get(f"{pennylane.base}/customers", headers={"Authorization": "Bearer wide"}).status_code == 200
    assert ok(httpx.get(f"{pennylane.base}/me", headers=narrow))["scopes"] == ["customers:readonly"]


def test_not_found(pennylane: Running, spec: Spec) -> None:
    client = pennylane.client
    for path, template in (("/customers/1", "/customers/{id}"), ("/customer_invoices/1", "/customer_invoices/{id}")):
        response = client.get(path)
        assert (response.status_code, response.json()) == (404, {"error": "Not Found", "status": 404})
        spec.validate("GET", P + template, 404, response.json())
    journal = client.get("/journals/1")
    assert journal.json() == {"error": "Couldn't find Journal with 'id'=1", "status": 404}
    spec.validate("GET", f"{P}/journals/{{id}}", 404, journal.json())
    entry = client.get("/ledger_entries/12/ledger_entry_lines")
    assert entry.json() == {"error": "Couldn't find LedgerEntry with 'id'=12", "status": 404}
    assert client.get("/customers/abc").json() == {"error": "Not Found", "status": 404}
    assert client.get("/no_such_thing").json() == {"error": "Not Found", "status": 404}
    assert client.get("/customer_invoices/1/invoice_lines").status_code == 404


def _invalid(field: str, code: str, message: str) -> dict[str, Any]:
    return {"message": message, "field": field, "code": code}


def _error(message: str) -> dict[str, Any]:
    return {"error": message, "status": 400}


BAD_PARAMETERS = [
    ("/customers", {"limit": "0"}, _invalid("limit", "LessThanMinimum", "limit must be greater than or equal to 1")),
    ("/customers", {"limit": "101"}, _invalid("limit", "MoreThanMaximum", "limit must be less than or equal to 100")),
    (
        "/ledger_accounts",
        {"limit": "1001"},
        _invalid("limit", "MoreThanMaximum", "limit must be less than or equal to 1000"),
    ),
    (
        "/changelogs/customers",
        {"limit": "1001"},
        _invalid("limit", "MoreThanMaximum", "limit must be less than or equal to 1000"),
    ),
    ("/customers", {"limit": "many"}, _invalid("limit", "ValidateError", "limit must be an integer, got 'many'")),
    ("/customers", {"cursor": "%%%"}, _error("Invalid cursor")),
    ("/customers", {"cursor": base64.urlsafe_b64encode(b'{"x":1}').decode()}, _error("Invalid cursor")),
    ("/customers", {"filter": "[{"}, _error("Invalid filter: it must be a JSON array of {field, operator, value}")),
    (
        "/customers",
        {"filter": flt(("phone", "eq", "1"))},
        _error("Invalid filter: field 'phone' cannot be filtered on"),
    ),
    (
        "/customers",
        {"filter": flt(("name", "lt", "A"))},
        _error("Invalid filter: operator 'lt' is not available on field 'name'"),
    ),
    ("/customers", {"filter": flt(("id", "in", 3))}, _error("Invalid filter: 'in' on 'id' needs an array value")),
    ("/customers", {"filter": flt(("id", "eq", "x"))}, _error("Invalid filter: 'x' is not a valid value for 'id'")),
    ("/customers", {"sort": "name"}, _error("Invalid sort: 'name' is not sortable (available: id)")),
    (
        "/trial_balance",
        {"period_end": "2025-12-31"},
        _invalid("period_start", "NotExistRequiredKey", "period_start is required"),
    ),
    (
        "/trial_balance",
        {"period_start": "2025-13-01", "period_end": "2025-12-31"},
        _invalid("period_start", "InvalidDateFormat", "period_start must be a date (YYYY-MM-DD): '2025-13-01'"),
    ),
    (
        "/changelogs/customers",
        {"start_date": "yesterday"},
        _invalid("start_date", "InvalidDateTimeFormat", "start_date must be an RFC 3339 date-time: 'yesterday'"),
    ),
]


@pytest.mark.parametrize(("path", "params", "body"), BAD_PARAMETERS)
def test_bad_parameters_are_400s_in_the_spec_shapes(
    pennylane: Running, spec: Spec, path: str, params: dict[str, str], body: dict[str, Any]
) -> None:
    response = pennylane.client.get(path, params=params)
    assert (response.status_code, response.json()) == (400, body)
    spec.validate("GET", P + path, 400, response.json())


def test_limits_at_their_bounds(pennylane: Running) -> None:
    assert len(ok(pennylane.client.get("/customers", params={"limit": 1}))["items"]) == 1
    assert ok(pennylane.client.get("/customers"))["items"] == list(reversed(dump(pennylane, "customers")))[:20]
    accounts = ok(pennylane.client.get("/ledger_accounts", params={"limit": 1000}))
    assert len(accounts["items"]) == len(dump(pennylane, "ledger_accounts"))
    assert [accounts[key] for key in ("total_pages", "current_page", "per_page", "total_items")] == [None] * 4
    assert ok(pennylane.client.get("/changelogs/ledger_entry_lines", params={"limit": 1000}))["has_more"] is False


# --- pagination, filters, sorts ---------------------------------------------------------------------


def test_the_cursor_carries_neither_filter_nor_sort(pennylane: Running) -> None:
    ids = [customer["id"] for customer in dump(pennylane, "customers")]  # ascending
    chosen = [ids[0], ids[5], ids[10]]
    where = flt(("id", "in", chosen))
    first = ok(pennylane.client.get("/customers", params={"filter": where, "limit": 1}))
    assert [item["id"] for item in first["items"]] == [ids[10]]
    again = {"filter": where, "limit": 1, "cursor": first["next_cursor"]}
    assert [item["id"] for item in ok(pennylane.client.get("/customers", params=again))["items"]] == [ids[5]]
    dropped = ok(pennylane.client.get("/customers", params={"limit": 1, "cursor": first["next_cursor"]}))
    assert [item["id"] for item in dropped["items"]] == [ids[9]]  # unfiltered: the next customer of all

    ascending = ok(pennylane.client.get("/customers", params={"sort": "id", "limit": 3}))
    assert [item["id"] for item in ascending["items"]] == ids[:3]
    unsorted = ok(pennylane.client.get("/customers", params={"limit": 3, "cursor": ascending["next_cursor"]}))
    assert [item["id"] for item in unsorted["items"]] == [ids[1], ids[0]]  # back to -id, below the cursor
    assert unsorted["has_more"] is False
    assert unsorted["next_cursor"] is None


def test_filters_and_sorts(pennylane: Running) -> None:
    lines = dump(pennylane, "ledger_entry_lines")
    years = fiscal_years(pennylane)
    start, end = years[0]["start"], years[0]["finish"]
    sales = next(j["id"] for j in dump(pennylane, "journals") if j["code"] == "VE")
    where = flt(("date", "gteq", start), ("date", "lteq", end), ("journal_id", "in", [sales]))
    got = walk(pennylane, "/ledger_entry_lines", filter=where, limit=10)
    expected = [line for line in lines if start <= line["date"] <= end and line["journal"]["id"] == sales]
    assert [item["id"] for item in got] == [line["id"] for line in reversed(expected)]
    assert expected

    invoices = dump(pennylane, "customer_invoices")
    by_date = walk(pennylane, "/customer_invoices", sort="date", limit=4)
    assert [i["id"] for i in by_date] == [i["id"] for i in sorted(invoices, key=lambda i: (i["date"], i["id"]))]
    newest = walk(pennylane, "/customer_invoices", sort="-date", limit=4)
    assert [i["id"] for i in newest] == [
        i["id"] for i in sorted(invoices, key=lambda i: (i["date"], i["id"]), reverse=True)
    ]

    accounts = walk(pennylane, "/ledger_accounts", filter=flt(("number", "start_with", "411")), limit=1000)
    assert sorted(a["number"] for a in accounts) == sorted(
        a["number"] for a in dump(pennylane, "ledger_accounts") if a["number"].startswith("411")
    )
    customers = dump(pennylane, "customers")
    prefix = customers[0]["name"][:3].lower()
    named = walk(pennylane, "/customers", filter=flt(("name", "start_with", prefix)))
    assert {c["id"] for c in named} == {c["id"] for c in customers if c["name"].lower().startswith(prefix)}
    wanted = [str(t["id"]) for t in dump(pennylane, "transactions")[:3]]
    assert {t["id"] for t in walk(pennylane, "/transactions", filter=flt(("id", "in", wanted)))} == {
        int(w) for w in wanted
    }
    companies = walk(pennylane, "/customers", filter=flt(("customer_type", "eq", "company")))
    assert {c["id"] for c in companies} == {c["id"] for c in customers if c["customer_type"] == "company"}
    drafts = walk(pennylane, "/customer_invoices", filter=flt(("draft", "eq", "false")))
    assert {i["id"] for i in drafts} == {i["id"] for i in invoices if not i["draft"]}

    starts = [fy["start"] for fy in ok(pennylane.client.get("/fiscal_years", params={"sort": "start"}))["items"]]
    assert starts == sorted(starts)
    assert [fy["status"] for fy in years] == ["closed"] * (len(years) - 1) + ["open"]


# --- sub-resources ----------------------------------------------------------------------------------


def test_entries_and_invoices_with_their_lines(pennylane: Running) -> None:
    client = pennylane.client
    for entry in dump(pennylane, "ledger_entries"):
        detail = ok(client.get(f"/ledger_entries/{entry['id']}"))
        inline = detail["ledger_entry_lines"]
        assert sum(Decimal(line["debit"]) for line in inline) == sum(Decimal(line["credit"]) for line in inline)
        listed = walk(pennylane, f"/ledger_entries/{entry['id']}/ledger_entry_lines", sort="id")
        assert [line["id"] for line in listed] == [line["id"] for line in inline]
    for invoice in dump(pennylane, "customer_invoices"):
        lines = walk(pennylane, f"/customer_invoices/{invoice['id']}/invoice_lines")
        assert sum(Decimal(line["amount"]) for line in lines) == Decimal(invoice["amount"])
        assert sum(Decimal(line["tax"]) for line in lines) == Decimal(invoice["tax"])
    for invoice in dump(pennylane, "supplier_invoices"):
        lines = walk(pennylane, f"/supplier_invoices/{invoice['id']}/invoice_lines")
        assert sum(Decimal(line["amount"]) for line in lines) == Decimal(invoice["amount"])

    page = ok(client.get("/customer_invoices", params={"include": "invoice_lines", "limit": 5}))
    included = page["included"]["invoice_lines"]
    assert set(included) == {str(invoice["id"]) for invoice in page["items"]}
    for invoice in page["items"]:
        expected = ok(client.get(f"/customer_invoices/{invoice['id']}/invoice_lines", params={"limit": 20}))["items"]
        assert included[str(invoice["id"])] == {"items": expected, "has_more": False, "next_url": None}
    assert "included" not in ok(client.get("/customer_invoices", params={"limit": 1}))


def test_trial_balance_sums_the_lines_of_the_period(pennylane: Running) -> None:
    year = fiscal_years(pennylane)[0]
    period = {"period_start": year["start"], "period_end": year["finish"]}
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for line in dump(pennylane, "ledger_entry_lines"):
        if year["start"] <= line["date"] <= year["finish"]:
            sums[line["ledger_account"]["number"]][0] += Decimal(line["debit"])
            sums[line["ledger_account"]["number"]][1] += Decimal(line["credit"])
    detailed = walk(pennylane, "/trial_balance", **period, is_auxiliary="true", limit=5)
    assert {row["number"]: [Decimal(row["debits"]), Decimal(row["credits"])] for row in detailed} == sums
    assert [row["number"] for row in detailed] == sorted(sums)
    assert all(row["formatted_number"] == row["number"].ljust(8, "0") for row in detailed)
    general = walk(pennylane, "/trial_balance", **period, limit=1000)
    assert not [row for row in general if row["number"].startswith("411") and row["number"] != "411000"]
    customers = sum((d for number, (d, _) in sums.items() if number.startswith("411")), Decimal(0))
    assert Decimal(next(row for row in general if row["number"] == "411000")["debits"]) == customers
    assert sum(Decimal(r["debits"]) for r in general) == sum(Decimal(r["credits"]) for r in general)
    assert dump(pennylane, "trial_balance", **period, is_auxiliary="true") == detailed


# --- changelogs -------------------------------------------------------------------------------------


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now(running: Running) -> datetime:
    return _parse(ok(running.admin.get("/clock"))["now"])


def test_changelogs_order_retention_and_parameters(fresh: Running, spec: Spec) -> None:
    client = fresh.client
    now = _now(fresh)
    for resource in CHANGELOGS:
        events = ok(client.get(f"/changelogs/{resource}", params={"limit": 1000}))["items"]
        stamps = [event["processed_at"] for event in events]
        assert stamps == sorted(stamps), resource
        assert len(set(stamps)) == len(stamps)
        assert _parse(stamps[0]) >= now - timedelta(days=28)
        assert {"insert", "delete"} <= {event["operation"] for event in events}, resource
        paged = walk(fresh, f"/changelogs/{resource}", limit=2)
        assert paged == events
    first = ok(client.get("/changelogs/customers", params={"limit": 1}))
    both = client.get(
        "/changelogs/customers", params={"cursor": first["next_cursor"], "start_date": "2030-01-01T00:00:00Z"}
    )
    assert (both.status_code, both.json()) == (
        400,
        {"error": "start_date and cursor cannot be used together", "status": 400},
    )
    spec.validate("GET", f"{P}/changelogs/customers", 400, both.json())
    too_old = _stamp(now - timedelta(days=28, minutes=1))
    expired = client.get("/changelogs/customers", params={"start_date": too_old})
    assert expired.status_code == 422
    assert expired.json() == {
        "error": "start_date must be within the last 4 weeks (changes are kept 28 days)",
        "status": 422,
    }
    spec.validate("GET", f"{P}/changelogs/customers", 422, expired.json())
    recent = _stamp(now - timedelta(days=27))
    assert ok(client.get("/changelogs/customers", params={"start_date": recent, "limit": 1000}))["items"]


def test_mutations_appear_in_the_changelogs(fresh: Running) -> None:
    client = fresh.client
    before = {r: ok(client.get(f"/changelogs/{r}", params={"limit": 1000}))["items"] for r in CHANGELOGS}
    latest = max(e["processed_at"] for events in before.values() for e in events)
    events = ok(fresh.admin.post("/mutate", json={"inserts": 15, "updates": 15, "deletes": 8, "seed": 3}))["events"]
    assert {e["operation"] for e in events} == {"insert", "update", "delete"}
    since = _stamp(_parse(latest) + timedelta(microseconds=1))  # only the new events come back
    for resource in CHANGELOGS:
        new = walk(fresh, f"/changelogs/{resource}", start_date=since, limit=1000)
        written = [(e["id"], e["operation"]) for e in events if e["resource"] == resource]
        assert [(e["id"], e["operation"]) for e in new] == written, resource
        for event in new:
            assert event["processed_at"] > latest
            record = client.get(f"/{resource}/{event['id']}")
            last = [e for e in new if e["id"] == event["id"]][-1]
            if last["operation"] == "delete":
                assert record.status_code == 404
            else:
                assert record.json()["updated_at"] == last["updated_at"]

    ok(fresh.admin.post("/clock/advance", json={"seconds": 29 * 86400}))
    assert ok(client.get("/changelogs/customers", params={"limit": 1000}))["items"] == []
    inserted = ok(fresh.admin.post("/mutate", json={"inserts": 1, "resources": ["customers"]}))["events"]
    assert [(e["id"], e["operation"]) for e in ok(client.get("/changelogs/customers"))["items"]] == [
        (inserted[0]["id"], "insert")
    ]


def test_mutations_keep_the_books_balanced(fresh: Running) -> None:
    ok(fresh.admin.post("/mutate", json={"inserts": 30, "updates": 30, "deletes": 15}))
    by_entry: dict[int, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for line in dump(fresh, "ledger_entry_lines"):
        by_entry[line["ledger_entry"]["id"]][0] += Decimal(line["debit"])
        by_entry[line["ledger_entry"]["id"]][1] += Decimal(line["credit"])
    assert all(debit == credit for debit, credit in by_entry.values())
    assert set(by_entry) == {entry["id"] for entry in dump(fresh, "ledger_entries")}
    for kind in ("customer", "supplier"):
        totals: dict[int, Decimal] = defaultdict(Decimal)
        for line in dump(fresh, f"{kind}_invoice_lines"):
            totals[line["invoice_id"]] += Decimal(line["amount"])
        for invoice in dump(fresh, f"{kind}_invoices"):
            assert totals[invoice["id"]] == Decimal(invoice["amount"])
            assert invoice["ledger_entry"]["id"] in by_entry


def test_targeted_records(fresh: Running) -> None:
    admin, client = fresh.admin, fresh.client
    created = ok(admin.post("/records/customers", json={"name": "Zeta Conseil SAS"}), 201)
    assert created["name"] == "Zeta Conseil SAS"
    assert ok(client.get(f"/customers/{created['id']}")) == created
    changed = ok(admin.patch(f"/records/customers/{created['id']}", json={"notes": "Appeler le lundi"}))
    assert ok(client.get(f"/customers/{created['id']}"))["notes"] == "Appeler le lundi" == changed["notes"]
    tail = [
        (e["id"], e["operation"]) for e in ok(client.get("/changelogs/customers", params={"limit": 1000}))["items"]
    ][-2:]
    assert tail == [(created["id"], "insert"), (created["id"], "update")]

    invoice = ok(admin.post("/records/customer_invoices", json={"customer_id": created["id"], "label": "Mission"}), 201)
    assert invoice["customer"]["id"] == created["id"]
    assert invoice["label"] == "Mission"
    lines = walk(fresh, f"/customer_invoices/{invoice['id']}/invoice_lines")
    assert sum(Decimal(line["amount"]) for line in lines) == Decimal(invoice["amount"])
    entry = ok(client.get(f"/ledger_entries/{invoice['ledger_entry']['id']}"))
    line_events = ok(client.get("/changelogs/ledger_entry_lines", params={"limit": 1000}))["items"]
    assert {line["id"] for line in entry["ledger_entry_lines"]} <= {
        e["id"] for e in line_events if e["operation"] == "insert"
    }

    one_line = entry["ledger_entry_lines"][0]
    refused = admin.patch(f"/records/ledger_entry_lines/{one_line['id']}", json={"debit": "1.00", "credit": "0.00"})
    assert (refused.status_code, refused.json()) == (422, {"error": "Entry lines are not balanced", "status": 422})
    assert ok(client.get(f"/ledger_entry_lines/{one_line['id']}"))["debit"] == one_line["debit"]
    lines_body = {"lines": [{"number": "606400", "debit": "12.50"}, {"number": "471000", "credit": "12.50"}]}
    posted = ok(admin.post("/records/ledger_entries", json={"label": "Fournitures", **lines_body}), 201)
    assert posted["label"] == "Fournitures"
    unbalanced = {"lines": [{"number": "606400", "debit": "12.50"}, {"number": "471000", "credit": "12.00"}]}
    assert admin.post("/records/ledger_entries", json=unbalanced).status_code == 422

    transaction = dump(fresh, "transactions")[-1]
    company = fresh.fake.company()
    entry_id = company.rows("transactions")[transaction["id"]]["ledger_entry_id"]
    transaction_lines = company.rows("ledger_entries")[entry_id]["line_ids"]
    assert admin.delete(f"/records/transactions/{transaction['id']}").status_code == 204
    assert client.get(f"/transactions/{transaction['id']}").status_code == 404
    deleted = {
        e["id"]
        for e in ok(client.get("/changelogs/ledger_entry_lines", params={"limit": 1000}))["items"]
        if e["operation"] == "delete"
    }
    assert set(transaction_lines) <= deleted

    count = len(ok(client.get("/changelogs/customers", params={"limit": 1000}))["items"])
    ok(admin.post("/records/ledger_accounts", json={"number": "622700", "label": "Frais d'actes"}), 201)
    assert len(ok(client.get("/changelogs/customers", params={"limit": 1000}))["items"]) == count
    assert walk(fresh, "/ledger_accounts", filter=flt(("number", "eq", "622700")))[0]["label"] == "Frais d'actes"


# --- exports ----------------------------------------------------------------------------------------


def _ready(running: Running, kind: str, export_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        body: dict[str, Any] = ok(running.client.get(f"/exports/{kind}/{export_id}"))
        if body["status"] == "ready" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_fec_export_is_a_balanced_fec(pennylane: Running, spec: Spec) -> None:
    year = fiscal_years(pennylane)[-2]
    period = {"period_start": year["start"], "period_end": year["finish"]}
    created = ok(pennylane.client.post("/exports/fecs", json=period), 201)
    assert created["status"] == "pending"
    pending = ok(pennylane.client.get(f"/exports/fecs/{created['id']}"))
    assert (pending["status"], pending["file_url"]) == ("pending", None)
    ready = _ready(pennylane, "fecs", created["id"])
    assert ready["status"] == "ready"
    assert ready["updated_at"] >= ready["created_at"]
    downloaded = httpx.get(ready["file_url"])  # no bearer token
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"] == "text/plain; charset=utf-8"
    rows = [line.split("\t") for line in downloaded.text.splitlines()]
    assert tuple(rows[0]) == FEC_COLUMNS
    assert all(len(row) == 18 for row in rows)
    data = [dict(zip(FEC_COLUMNS, row, strict=True)) for row in rows[1:]]
    debit = sum(Decimal(row["Debit"].replace(",", ".")) for row in data)
    credit = sum(Decimal(row["Credit"].replace(",", ".")) for row in data)
    assert debit == credit > 0
    expected = [
        line for line in dump(pennylane, "ledger_entry_lines") if year["start"] <= line["date"] <= year["finish"]
    ]
    assert len(data) == len(expected)
    compact = year["start"].replace("-", ""), year["finish"].replace("-", "")
    assert all(compact[0] <= row["EcritureDate"] <= compact[1] for row in data)
    by_entry: dict[str, Decimal] = defaultdict(Decimal)
    for row in data:
        by_entry[row["EcritureNum"]] += Decimal(row["Debit"].replace(",", ".")) - Decimal(
            row["Credit"].replace(",", ".")
        )
    assert set(by_entry.values()) == {Decimal("0.00")}
    customers = [row for row in data if row["CompAuxNum"].startswith("411")]
    assert customers
    assert {row["CompteNum"] for row in customers} == {"411000"}
    assert httpx.get(ready["file_url"].replace("/public/exports/", "/public/exports/x")).status_code == 404
    missing = pennylane.client.post("/exports/fecs", json={"period_start": "2025-01-01"})
    assert missing.json() == {"message": "period_end is required", "field": "period_end", "code": "NotExistRequiredKey"}
    spec.validate("POST", f"{P}/exports/fecs", 400, missing.json())
    assert pennylane.client.get("/exports/general_ledgers/" + str(created["id"])).status_code == 404


def test_export_urls_expire_and_are_reissued(fresh: Running) -> None:
    created = ok(
        fresh.client.post("/exports/fecs", json={"period_start": "2000-01-01", "period_end": "2100-12-31"}), 201
    )
    url = _ready(fresh, "fecs", created["id"])["file_url"]
    ok(fresh.admin.post("/clock/advance", json={"seconds": 31 * 60}))
    assert httpx.get(url).status_code == 403
    assert httpx.get(_ready(fresh, "fecs", created["id"])["file_url"]).status_code == 200


def test_general_ledger_exports_are_workbooks(pennylane: Running) -> None:
    period = {"period_start": "2000-01-01", "period_end": "2100-12-31"}
    lines = dump(pennylane, "ledger_entry_lines")
    for kind, extra in (("general_ledgers", {}), ("analytical_general_ledgers", {"mode": "in_column"})):
        created = ok(pennylane.client.post(f"/exports/{kind}", json={**period, **extra}), 201)
        content = httpx.get(_ready(pennylane, kind, created["id"])["file_url"]).content
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
            sheet = book.active
            assert sheet is not None
            rows = list(sheet.iter_rows(values_only=True))
            book.close()
        assert rows[0][:3] == ("Date", "Journal", "Compte")
        assert len(rows) == len(lines) + 1
        assert sum(Decimal(str(row[6])) for row in rows[1:]) == sum(Decimal(line["debit"]) for line in lines)


# --- rate limit -------------------------------------------------------------------------------------


def test_rate_limit_per_token_over_a_sliding_window() -> None:
    fake = FakePennylane(rate_limit=3, rate_window=1.0)
    company = fake.add_company(seed=2, token=TOKEN)
    fake.add_token("other", company.id)
    for running in start(fake):
        client = running.client
        remaining = []
        for params in ({"limit": 0}, {}, {}):  # a 400 counts like any request
            response = client.get("/customers", params=params)
            assert int(response.headers["ratelimit-reset"]) >= int(time.time())
            assert response.headers["ratelimit-limit"] == "3"
            remaining.append(response.headers["ratelimit-remaining"])
        assert remaining == ["2", "1", "0"]
        refused = client.get("/customers")
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("text/plain")
        assert refused.text == "Rate limit exceeded. Please retry in 1 seconds."
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["ratelimit-remaining"] == "0"
        assert int(refused.headers["ratelimit-reset"]) <= int(time.time()) + 2
        assert httpx.get(f"{running.base}/me", headers={"Authorization": "Bearer other"}).status_code == 200
        assert ok(running.admin.get("/stats"))["tokens"][fingerprint(TOKEN) or ""] == {"requests": 4, "throttled": 1}
        time.sleep(1.05)
        assert client.get("/customers").status_code == 200


# --- determinism ------------------------------------------------------------------------------------


def test_same_seed_same_company() -> None:
    anchor = datetime(2026, 3, 15, tzinfo=UTC)
    first, second = FakePennylane(anchor=anchor), FakePennylane(anchor=anchor)
    first.add_company(seed=42, size="small")
    second.add_company(seed=42, size="small")
    other = first.add_company(seed=43, size="small")
    for resource in DUMPABLE:
        if resource == "trial_balance":
            start, end = date(2025, 1, 1), date(2026, 12, 31)
            assert first.dump(resource, period_start=start, period_end=end) == second.dump(
                resource, period_start=start, period_end=end
            )
        else:
            assert first.dump(resource) == second.dump(resource), resource
    assert first.dump("customers") != first.dump("customers", other.id)
    assert not {c["id"] for c in first.dump("customers")} & {c["id"] for c in first.dump("customers", other.id)}
    assert first.company().changelog == second.company().changelog


def test_companies_are_isolated(fresh: Running) -> None:
    added = ok(
        fresh.admin.post("/companies", json={"seed": 5, "size": "small", "token": "second", "name": "Second SAS"}), 201
    )
    assert added["scopes"] == list(DEFAULT_SCOPES)
    headers = {"Authorization": "Bearer second"}
    me = ok(httpx.get(f"{fresh.base}/me", headers=headers))
    assert me["company"] == {"id": added["id"], "name": "Second SAS", "reg_no": added["reg_no"]}
    foreign = dump(fresh, "customers")[0]["id"]
    assert httpx.get(f"{fresh.base}/customers/{foreign}", headers=headers).status_code == 404
    theirs = walk(fresh, "/customers")
    assert {c["id"] for c in theirs} == {c["id"] for c in dump(fresh, "customers")}


# --- faults, log ------------------------------------------------------------------------------------


def test_injected_faults(fresh: Running) -> None:
    admin, client = fresh.admin, fresh.client
    ok(admin.post("/faults", json={"kind": "status", "status": 503, "count": 2, "path": "customers"}), 201)
    ok(admin.post("/faults", json={"kind": "status", "status": 404, "path": f"{P}/suppliers"}), 201)
    assert len(ok(admin.get("/faults"))["faults"]) == 2
    for _ in range(2):
        failed = client.get("/customers")
        assert (failed.status_code, failed.content) == (503, b"")
        assert "ratelimit-remaining" in failed.headers
    assert client.get("/customers").status_code == 200
    assert client.get("/suppliers").json() == {"error": "Not Found", "status": 404}
    assert client.get("/suppliers").status_code == 200

    ok(admin.post("/faults", json={"kind": "malformed", "path": "products"}), 201)
    broken = client.get("/products")
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        broken.json()
    ok(admin.post("/faults", json={"kind": "drop_key", "key": "id", "path": "products"}), 201)
    assert all("id" not in item for item in ok(client.get("/products"))["items"])
    ok(admin.post("/faults", json={"kind": "latency", "latency_s": 0.3}), 201)
    began = time.monotonic()
    ok(client.get("/me"))
    assert time.monotonic() - began >= 0.3
    ok(admin.post("/faults", json={"kind": "status", "status": 500, "count": 5}), 201)
    assert admin.delete("/faults").status_code == 204
    assert client.get("/me").status_code == 200
    assert admin.post("/faults", json={"kind": "explode"}).status_code == 400


def test_a_fail_rate_answers_503s() -> None:
    fake = FakePennylane(rate_limit=1000, fail_rate=1.0)
    fake.add_company(seed=1, token=TOKEN)
    for running in start(fake):
        assert {running.client.get("/me").status_code for _ in range(5)} == {503}


def test_request_log_and_stats(fresh: Running) -> None:
    assert fresh.admin.delete("/requests").status_code == 204
    where = flt(("id", "gt", 1))
    ok(fresh.client.get("/customers", params={"limit": 5, "filter": where}))
    httpx.get(f"{fresh.base}/me")
    logged = ok(fresh.admin.get("/requests"))["requests"]
    assert [(r["method"], r["path"], r["query"], r["status"], r["token"]) for r in logged] == [
        ("GET", f"{P}/customers", {"limit": "5", "filter": where}, 200, fingerprint(TOKEN)),
        ("GET", f"{P}/me", {}, 401, None),
    ]
    assert ok(fresh.admin.get("/stats"))["tokens"] == {
        fingerprint(TOKEN): {"requests": 1, "throttled": 0},
        "": {"requests": 1, "throttled": 0},
    }
    assert TOKEN not in json.dumps(logged)


# --- in-process use and CLI -------------------------------------------------------------------------


async def test_the_server_is_an_async_context_manager_too() -> None:
    fake = FakePennylane(rate_limit=1000)
    fake.add_company(seed=1, token=TOKEN)
    async with FakeServer(fake) as base_url, httpx.AsyncClient() as client:
        response = await client.get(f"{base_url}/me", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.json()["company"]["id"] == fake.company().id
        assert base_url.endswith("/api/external/v2")


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        raise AssertionError("the fake printed nothing")
    return process.stdout.readline().strip()


@pytest.fixture
def cli_process() -> Iterator[subprocess.Popen[str]]:
    command = [sys.executable, "-m", "comptaflow.cli.main", "fake", "pennylane", "--port", "0", "--seed", "3"]
    with subprocess.Popen(  # noqa: S603 - our own interpreter and command line
        [*command, "--token", "cli-token", "--rate-limit", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        try:
            yield process
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_the_command_line_runs_the_fake(cli_process: subprocess.Popen[str]) -> None:
    words = _first_line(cli_process, timeout=30).split()
    assert words[:2] == ["fake", "pennylane"]
    assert words[3] == "token=cli-token"
    url = words[2]
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/api/external/v2")
    deadline = time.monotonic() + 10
    while True:
        try:
            me = httpx.get(f"{url}/me", headers={"Authorization": "Bearer cli-token"})
            break
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert me.status_code == 200
    assert me.headers["ratelimit-limit"] == "100"
