"""Asynchronous exports: `POST /exports/{fecs|general_ledgers|analytical_general_ledgers}` answers 201
`pending`; the first `GET /exports/{kind}/{id}` made `delay` seconds (real time) or more after the POST
builds the file from the ledger as it is then and answers `ready` with a `file_url`.

A `file_url` is signed and unguessable (`/public/exports/<signature>/<file name>`), needs no bearer token,
and expires 30 minutes (fake clock) after it was issued; every GET of a ready export issues a fresh one.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from comptaflow.fakes.pennylane import reports, xlsx
from comptaflow.fakes.pennylane.formats import timestamp
from comptaflow.fakes.pennylane.store import Clock, Company

URL_LIFETIME = timedelta(minutes=30)
KINDS = ("fecs", "general_ledgers", "analytical_general_ledgers")


@dataclass(slots=True)
class Export:
    id: int
    company_id: int
    kind: str
    period_start: date
    period_end: date
    mode: str
    status: str
    created_at: datetime
    updated_at: datetime
    requested: float  # time.monotonic() of the POST
    content: bytes | None = None
    filename: str = ""
    media_type: str = ""

    def created(self) -> dict[str, object]:
        return {
            "id": self.id,
            "status": self.status,
            "created_at": timestamp(self.created_at),
            "updated_at": timestamp(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class SignedFile:
    export: Export
    expires_at: datetime


class Exports:
    def __init__(self, clock: Clock, *, delay: float) -> None:
        self.clock = clock
        self.delay = delay
        self._exports: dict[int, Export] = {}
        self._files: dict[str, SignedFile] = {}
        self._next_id = 124_000

    def create(self, company: Company, kind: str, start: date, end: date, mode: str = "in_line") -> Export:
        self._next_id += 1
        now = self.clock.now()
        export = Export(self._next_id, company.id, kind, start, end, mode, "pending", now, now, time.monotonic())
        self._exports[export.id] = export
        return export

    def get(self, company: Company, kind: str, export_id: int) -> Export | None:
        """The export if it is this company's and of this kind; built first if its time has come."""
        export = self._exports.get(export_id)
        if export is None or export.company_id != company.id or export.kind != kind:
            return None
        if export.status == "pending" and time.monotonic() - export.requested >= self.delay:
            self._build(company, export)
        return export

    def _build(self, company: Company, export: Export) -> None:
        start, end = export.period_start, export.period_end
        if export.kind == "fecs":
            export.content = reports.fec(company, start, end).encode("utf-8")
            export.filename = f"{company.reg_no}FEC{end:%Y%m%d}.txt"
            export.media_type = "text/plain; charset=utf-8"
        elif export.kind == "general_ledgers":
            export.content = xlsx.workbook(reports.general_ledger(company, start, end), sheet="Grand livre")
            export.filename = f"grand_livre_{start:%Y%m%d}_{end:%Y%m%d}.xlsx"
            export.media_type = xlsx.MEDIA_TYPE
        else:
            rows = reports.analytical_general_ledger(company, start, end, mode=export.mode)
            export.content = xlsx.workbook(rows, sheet="Grand livre analytique")
            export.filename = f"grand_livre_analytique_{start:%Y%m%d}_{end:%Y%m%d}.xlsx"
            export.media_type = xlsx.MEDIA_TYPE
        export.status = "ready"
        export.updated_at = max(self.clock.now(), export.created_at)

    def sign(self, export: Export) -> str:
        """A fresh signature for a ready export's file (the path segment of its `file_url`)."""
        signature = secrets.token_urlsafe(32)
        self._files[signature] = SignedFile(export, self.clock.now() + URL_LIFETIME)
        return signature

    def download(self, signature: str) -> tuple[Export | None, bool]:
        """(export, expired) for a signature; (None, False) when it was never issued."""
        signed = self._files.get(signature)
        if signed is None:
            return None, False
        return signed.export, self.clock.now() >= signed.expires_at
