"""`FakePennylane`: the whole fake in one object (companies, tokens, clock, rate limiter, faults, exports,
request log) and its ASGI app (`.app`), for in-process use, `server.serve` and `comptaflow fake`."""

from __future__ import annotations

import random
import threading
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from fastapi import FastAPI

from comptaflow.fakes.pennylane import mutations, reports
from comptaflow.fakes.pennylane.builder import siren
from comptaflow.fakes.pennylane.chart import BUSINESS_WORDS, FIRST_NAMES, LAST_NAMES, LEGAL_FORMS
from comptaflow.fakes.pennylane.data import SIZES, default_anchor, generate
from comptaflow.fakes.pennylane.exports import Exports
from comptaflow.fakes.pennylane.faults import Faults
from comptaflow.fakes.pennylane.ratelimit import RateLimiter
from comptaflow.fakes.pennylane.resources import API_PREFIX, DEFAULT_SCOPES
from comptaflow.fakes.pennylane.store import CHANGELOG_RESOURCES, Clock, Company, Token
from comptaflow.fakes.pennylane.traffic import Traffic
from comptaflow.fakes.pennylane.views import Item, View

DUMPABLE = (
    *CHANGELOG_RESOURCES,
    "ledger_entries",
    "ledger_accounts",
    "journals",
    "bank_accounts",
    "fiscal_years",
    "categories",
    "customer_invoice_lines",
    "supplier_invoice_lines",
    "trial_balance",
)


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


class FakePennylane:
    """A fake Pennylane Company API v2.

    rate_limit / rate_window   requests per window (seconds) per token, real time (25 per 5 s)
    export_delay               seconds (real time) before an export is ready at its next poll (1.0)
    fail_rate / latency_ms     a random share of 503s / a delay on every API request (0)
    anchor                     the instant generated data is placed before (default: start of today, UTC)
    clock_offset               seconds added to real UTC time to make the fake's clock (0)
    """

    def __init__(
        self,
        *,
        rate_limit: int = 25,
        rate_window: float = 5.0,
        export_delay: float = 1.0,
        fail_rate: float = 0.0,
        latency_ms: int = 0,
        fault_seed: int = 0,
        anchor: datetime | None = None,
        clock_offset: float = 0.0,
    ) -> None:
        self.clock = Clock(clock_offset)
        self.anchor = anchor or default_anchor(self.clock.now())
        self.limiter = RateLimiter(limit=rate_limit, window=rate_window)
        self.faults = Faults(fail_rate=fail_rate, latency_ms=latency_ms, seed=fault_seed)
        self.traffic = Traffic()
        self.exports = Exports(self.clock, delay=export_delay)
        self.companies: dict[int, Company] = {}
        self.tokens: dict[str, Token] = {}
        self.lock = threading.RLock()
        self._next_company_id = 100_000
        self._app: FastAPI | None = None

    @property
    def app(self) -> FastAPI:
        if self._app is None:
            from comptaflow.fakes.pennylane.app import build_app

            self._app = build_app(self)
        return self._app

    # --- companies and tokens -----------------------------------------------------------------------

    def add_company(
        self,
        *,
        seed: int = 0,
        size: str = "small",
        token: str | None = None,
        scopes: Sequence[str] | None = None,
        name: str | None = None,
    ) -> Company:
        """A generated company (same seed and size → same data); with `token`, a token for it."""
        if size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}")
        if token is not None and token in self.tokens:
            raise ValueError("this token already exists")
        rng = random.Random(f"{seed}:company")  # noqa: S311 - seeded test data, not security
        reg_no = siren(rng)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        default_name = f"{rng.choice(BUSINESS_WORDS)} {rng.choice(LAST_NAMES)} {rng.choice(LEGAL_FORMS)}"
        user = {
            "id": rng.randint(10_000, 99_999),
            "first_name": first,
            "last_name": last,
            "email": _ascii(f"{first}.{last}@example.com".lower()),
            "locale": "fr",
        }
        with self.lock:
            self._next_company_id += 1
            company = Company(
                company_id=self._next_company_id,
                name=name or default_name,
                reg_no=reg_no,
                seed=seed,
                size=size,
                user=user,
                ordinal=len(self.companies) + 1,
            )
            generate(company, anchor=self.anchor)
            self.companies[company.id] = company
            if token is not None:
                self.add_token(token, company.id, scopes)
        return company

    def add_token(self, token: str, company_id: int, scopes: Sequence[str] | None = None) -> Token:
        with self.lock:
            if company_id not in self.companies:
                raise KeyError(f"no company {company_id}")
            if not token:
                raise ValueError("a token cannot be empty")
            self.tokens[token] = Token(token, company_id, tuple(DEFAULT_SCOPES if scopes is None else scopes))
            return self.tokens[token]

    def company(self, company_id: int | None = None) -> Company:
        """A company by id; the first one added when `company_id` is None."""
        with self.lock:
            if company_id is None:
                if not self.companies:
                    raise KeyError("no company yet")
                return next(iter(self.companies.values()))
            return self.companies[company_id]

    # --- changes ------------------------------------------------------------------------------------

    def mutate(
        self,
        company_id: int | None = None,
        *,
        inserts: int = 0,
        updates: int = 0,
        deletes: int = 0,
        seed: int | None = None,
        resources: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Random coherent changes at the fake's now; the changelog events they wrote."""
        with self.lock:
            company = self.company(company_id)
            return mutations.mutate(
                company,
                self.clock.now,
                inserts=inserts,
                updates=updates,
                deletes=deletes,
                seed=seed,
                resources=tuple(resources) if resources else CHANGELOG_RESOURCES,
            )

    # --- reading as the API would -------------------------------------------------------------------

    def dump(
        self,
        resource: str,
        company_id: int | None = None,
        *,
        origin: str = "http://testserver",
        period_start: date | None = None,
        period_end: date | None = None,
        auxiliary: bool = False,
    ) -> list[Item]:
        """Every item of `resource` as the API serves it (URLs under `origin`), by ascending id.

        `customer_invoice_lines` / `supplier_invoice_lines` items also carry `invoice_id`;
        `trial_balance` needs `period_start` and `period_end`, and is ordered by account number.
        """
        if resource not in DUMPABLE:
            raise KeyError(f"cannot dump {resource!r} (one of {', '.join(DUMPABLE)})")
        with self.lock:
            company = self.company(company_id)
            view = View(company, origin.rstrip("/") + API_PREFIX)
            if resource == "trial_balance":
                if period_start is None or period_end is None:
                    raise ValueError("trial_balance needs period_start and period_end")
                rows = reports.trial_balance(company, period_start, period_end, auxiliary=auxiliary)
                return [{key: value for key, value in row.items() if key != "id"} for row in rows]
            render = view.renderer(resource)
            items = []
            for row in company.rows(resource).values():
                item = render(row)
                if resource.endswith("_invoice_lines"):
                    item = {"invoice_id": row["invoice_id"], **item}
                items.append(item)
            return items
