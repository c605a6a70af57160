"""A faithful fake of the Pennylane Company API v2 (`/api/external/v2`), after the official OpenAPI spec
(the 2026 behaviour: cursor pagination everywhere, `-id` default sorts, no ledger-entry id suffixes).

Python:

    FakePennylane(rate_limit=25, rate_window=5.0, export_delay=1.0, fail_rate=0.0, latency_ms=0,
                  fault_seed=0, anchor=None, clock_offset=0.0)
        .add_company(seed=0, size="small", token=None, scopes=None, name=None) -> Company
        .add_token(token, company_id, scopes=None) -> Token
        .mutate(company_id=None, inserts=0, updates=0, deletes=0, seed=None, resources=None) -> events
        .dump(resource, company_id=None, origin=..., period_start=None, period_end=None) -> items
        .clock.now() / .clock.advance(seconds), .faults, .traffic, .app (the ASGI app)
    server.FakeServer(fake, host="127.0.0.1", port=0)   `with`/`async with` → base URL
    server.serve(seed=0, size="small", token="test-token", scopes=None, rate_limit=25, rate_window=5.0,
                 export_delay=1.0, fail_rate=0.0, latency_ms=0) -> FakeServer

The API (Bearer token; each token belongs to one company and has scopes, default: every `:readonly`
scope of the spec plus `exports:fec`, `exports:gl`, `exports:agl`): `GET /me`; the lists `customers`,
`suppliers`, `customer_invoices` (`include=invoice_lines`), `supplier_invoices`, `products`,
`transactions`, `ledger_entry_lines`, `ledger_entries`, `ledger_accounts`, `journals`, `bank_accounts`,
`fiscal_years`, `categories`; `trial_balance?period_start=&period_end=[&is_auxiliary=]`; the sub-lists
`customer_invoices/{id}/invoice_lines`, `supplier_invoices/{id}/invoice_lines`,
`ledger_entries/{id}/ledger_entry_lines`; `GET /{resource}/{id}` for `ledger_entries` (lines inline) and
the other tables; `changelogs/{customers|suppliers|customer_invoices|supplier_invoices|products|
transactions|ledger_entry_lines}`; `POST /exports/{fecs|general_ledgers|analytical_general_ledgers}`
and `GET /exports/{kind}/{id}`. Behaviour: `query` (limit, cursor, filter, sort), `store` (changelog),
`reports` (trial balance, FEC), `exports`, `ratelimit`, `faults`.

The control plane, under `/__admin` (JSON; no auth, no rate limit, not logged; `company_id` defaults to
the first company):

    GET    /__admin/clock                        {now, offset_seconds, anchor}
    POST   /__admin/clock/advance                {"seconds": N}  moves the fake clock forward
    GET    /__admin/companies                    {companies: [{id, name, reg_no, seed, size, tokens}]}
    POST   /__admin/companies                    {"seed", "size", "token", "scopes"?, "name"?}  → 201
    POST   /__admin/tokens                       {"token", "company_id", "scopes"?}  → 201
    POST   /__admin/mutate                       {"company_id"?, "inserts", "updates", "deletes", "seed"?,
                                                  "resources"?: [...]}  → {events: [{resource, id, operation}]}
    POST   /__admin/records/{resource}?company_id=       fields merged over generated defaults → 201 item
    PATCH  /__admin/records/{resource}/{id}?company_id=  fields → item
    DELETE /__admin/records/{resource}/{id}?company_id=  → 204
    GET    /__admin/dump/{resource}?company_id=[&period_start=&period_end=]  {items: [...]} as served,
                                                  by ascending id; also customer_invoice_lines and
                                                  supplier_invoice_lines (each with invoice_id), trial_balance
    GET    /__admin/requests                     {requests: [{method, path, query, status, token, time}]}
    DELETE /__admin/requests                     clears the log and the counts
    GET    /__admin/stats                        {tokens: {<fingerprint>: {requests, throttled}}}
    GET    /__admin/faults                       {faults: [...]} still pending
    POST   /__admin/faults                       {"kind": "status"|"latency"|"malformed"|"drop_key",
                                                  "status"?, "count"?, "path"?, "latency_s"?, "key"?}  → 201
    DELETE /__admin/faults                       → 204

Tokens appear in logs and stats only as fingerprints (`traffic.fingerprint`). Record fields: `mutations`.
"""

from comptaflow.fakes.pennylane.fake import FakePennylane
from comptaflow.fakes.pennylane.server import FakeServer, serve
from comptaflow.fakes.pennylane.store import Company, Token
from comptaflow.fakes.pennylane.traffic import fingerprint

__all__ = ["Company", "FakePennylane", "FakeServer", "Token", "fingerprint", "serve"]
