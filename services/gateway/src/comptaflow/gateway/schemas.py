"""Request and response bodies of the HTTP API (docs/api.md), and their wire formatting.

Dates are `YYYY-MM-DD`; timestamps ISO-8601 UTC ending in `Z`; amounts decimal strings with two decimals.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from comptaflow.common.batches import Batch
from comptaflow.common.contracts import BatchKind, BatchStatus, JobStatus, SyncMode
from comptaflow.common.contracts.v1 import TenantId
from comptaflow.common.jobs import Job
from comptaflow.common.loads import BackupView, PeriodView
from comptaflow.common.pennylane import tables
from comptaflow.common.pennylane.connections import Connection, TableState
from comptaflow.common.tenants import Tenant
from comptaflow.common.warehouse.reads import CENT, LedgerLine, TrialBalanceRow

_TIMESTAMP = "ISO-8601 UTC timestamp, e.g. 2025-01-31T09:30:00.123456Z"


def utc_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


class TenantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: TenantId = Field(description="^[a-z0-9][a-z0-9-]{1,62}$", examples=["acme"])
    name: str = Field(min_length=1, max_length=200, examples=["ACME SARL"])


class TenantOut(BaseModel):
    id: str
    name: str
    created_at: str = Field(description=_TIMESTAMP)

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls(id=tenant.id, name=tenant.name, created_at=utc_timestamp(tenant.created_at))


class TenantList(BaseModel):
    items: list[TenantOut]


class BatchAccepted(BaseModel):
    batch_id: str
    tenant_id: str
    kind: BatchKind
    status: Literal["PENDING"] = "PENDING"


class BatchFileOut(BaseModel):
    field: str
    filename: str = Field(description="the name the file was uploaded with")
    size: int = Field(description="bytes")
    sha256: str = Field(description="hex digest of the stored content")


class BatchOut(BaseModel):
    batch_id: str
    tenant_id: str
    kind: BatchKind
    status: BatchStatus
    stage: str
    progress: float = Field(ge=0.0, le=1.0)
    period_start: str | None = Field(description="YYYY-MM-DD once known")
    period_end: str | None = Field(description="YYYY-MM-DD once known")
    errors: list[dict[str, Any]] = Field(description='[{"code", "message", "file"?, "row"?}]')
    warnings: list[dict[str, Any]] = Field(description="same shape as errors; they do not block")
    files: list[BatchFileOut]
    stats: dict[str, Any]
    created_at: str = Field(description=_TIMESTAMP)
    updated_at: str = Field(description=_TIMESTAMP)

    @classmethod
    def of(cls, batch: Batch) -> BatchOut:
        return cls(
            batch_id=str(batch.id),
            tenant_id=batch.tenant_id,
            kind=batch.kind,
            status=batch.status,
            stage=batch.stage,
            progress=batch.progress,
            period_start=iso_date(batch.period_start),
            period_end=iso_date(batch.period_end),
            errors=batch.errors,
            warnings=batch.warnings,
            files=[BatchFileOut(field=f.field, filename=f.filename, size=f.size, sha256=f.sha256) for f in batch.files],
            stats=batch.stats,
            created_at=utc_timestamp(batch.created_at),
            updated_at=utc_timestamp(batch.updated_at),
        )


class BatchPage(BaseModel):
    items: list[BatchOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last one")


class JobOut(BaseModel):
    job_id: str
    tenant_id: str
    kind: str = Field(description="what the job does", examples=["pennylane.sync", "payroll.import"])
    status: JobStatus = Field(description="PENDING → RUNNING → SUCCEEDED, or FAILED (final states: SUCCEEDED, FAILED)")
    stage: str
    progress: float = Field(ge=0.0, le=1.0)
    message: str = Field(description="what the job is doing, or how it ended")
    stats: dict[str, Any] = Field(description="counts the job reports (rows, tables, …)")
    errors: list[dict[str, Any]] = Field(description='[{"code", "message", …}]')
    created_at: str = Field(description=_TIMESTAMP)
    updated_at: str = Field(description=_TIMESTAMP)

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            job_id=str(job.id),
            tenant_id=job.tenant_id,
            kind=job.kind,
            status=job.status,
            stage=job.stage,
            progress=job.progress,
            message=job.message,
            stats=job.stats,
            errors=job.errors,
            created_at=utc_timestamp(job.created_at),
            updated_at=utc_timestamp(job.updated_at),
        )


class JobPage(BaseModel):
    items: list[JobOut] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last one")


class LoadAccepted(BaseModel):
    batch_id: str = Field(description="the batch whose data is being made current")
    status: Literal["PROCESSING"] = "PROCESSING"


class BackupOut(BaseModel):
    backup_id: str
    batch_id: str = Field(description="the batch whose load this backup keeps")
    created_at: str = Field(description=_TIMESTAMP)

    @classmethod
    def of(cls, backup: BackupView) -> BackupOut:
        return cls(
            backup_id=str(backup.backup_id), batch_id=str(backup.batch_id), created_at=utc_timestamp(backup.created_at)
        )


class PeriodOut(BaseModel):
    period_start: str = Field(description="YYYY-MM-DD")
    period_end: str = Field(description="YYYY-MM-DD")
    batch_id: str = Field(description="the batch of the current load of the period")
    loaded_at: str = Field(description=_TIMESTAMP)
    kind: BatchKind
    backups: list[BackupOut] = Field(description="earlier loads of the period, newest first; restorable")

    @classmethod
    def of(cls, period: PeriodView) -> PeriodOut:
        return cls(
            period_start=period.period_start.isoformat(),
            period_end=period.period_end.isoformat(),
            batch_id=str(period.batch_id),
            loaded_at=utc_timestamp(period.loaded_at),
            kind=BatchKind(period.kind),
            backups=[BackupOut.of(b) for b in period.backups],
        )


class PeriodList(BaseModel):
    items: list[PeriodOut] = Field(description="ordered by period_start")


_AMOUNT = 'decimal string with two decimals, e.g. "1234.50"'


def money(value: Decimal) -> str:
    """An amount on the wire: a decimal string with exactly two decimals (never a float)."""
    return f"{value.quantize(CENT):f}"


class TrialBalanceRowOut(BaseModel):
    account: str
    label: str | None = Field(description="from the chart of accounts of the load, else the ledger's account label")
    debit: str = Field(description=_AMOUNT, examples=["1234.50"])
    credit: str = Field(description=_AMOUNT, examples=["0.00"])
    balance: str = Field(description="debit - credit; " + _AMOUNT, examples=["1234.50"])

    @classmethod
    def of(cls, row: TrialBalanceRow) -> TrialBalanceRowOut:
        return cls(
            account=row.account,
            label=row.label,
            debit=money(row.debit),
            credit=money(row.credit),
            balance=money(row.balance),
        )


class TrialBalanceOut(BaseModel):
    rows: list[TrialBalanceRowOut] = Field(description="one per account, ordered by account")
    total_debit: str = Field(description=_AMOUNT)
    total_credit: str = Field(description=_AMOUNT)


class LedgerLineOut(BaseModel):
    date: str = Field(description="YYYY-MM-DD")
    journal: str
    piece: str | None
    account: str
    label: str
    debit: str = Field(description=_AMOUNT)
    credit: str = Field(description=_AMOUNT)
    lettrage: str | None

    @classmethod
    def of(cls, line: LedgerLine) -> LedgerLineOut:
        return cls(
            date=line.date.isoformat(),
            journal=line.journal,
            piece=line.piece,
            account=line.account,
            label=line.label,
            debit=money(line.debit),
            credit=money(line.credit),
            lettrage=line.lettrage,
        )


class LedgerPage(BaseModel):
    items: list[LedgerLineOut] = Field(description="ordered by date, then account, then load and line")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last one")


_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")
_URL_TEXT = re.compile(r"[\x21-\x7e]+")


def http_base_url(value: str) -> str:
    """A base URL the gateway may call: http(s), a host, no credentials, query nor fragment; no trailing `/`.

    The messages never repeat the value (it could hold credentials).
    """
    if not _URL_TEXT.fullmatch(value):
        raise ValueError("base_url must be a URL of visible ASCII characters without spaces")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("base_url must start with http:// or https://")
    if "@" in parts.netloc:
        raise ValueError("base_url must not hold credentials (user:password@): the API token goes in api_token")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError("base_url must not have a query or a fragment")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("base_url has an invalid port") from None
    if not parts.hostname or port == 0:
        raise ValueError("base_url must name a host")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


class PennylaneConnectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_token: SecretStr = Field(
        description="the company's Pennylane API token: checked with `GET /me`, stored encrypted, never returned"
    )
    base_url: str | None = Field(
        default=None,
        max_length=2048,
        description="the Company API v2 base URL, http(s) without credentials, query or fragment;"
        " default https://app.pennylane.com/api/external/v2",
    )
    enabled: bool = Field(default=True, description="false: the connection is kept, but no sync runs")

    @field_validator("api_token")
    @classmethod
    def _visible_ascii(cls, value: SecretStr) -> SecretStr:
        # The message never repeats the value (nor does the error envelope: it carries no input).
        if not _TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("the token must be 1 to 4096 visible ASCII characters")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else http_base_url(value)


class PennylaneCompanyOut(BaseModel):
    id: int | None
    name: str | None


class PennylaneConnectionOut(BaseModel):
    configured: Literal[True] = True
    base_url: str
    enabled: bool
    scopes: list[str] = Field(description="the token's scopes, as `GET /me` answered them")
    missing_scopes: dict[str, list[str]] = Field(
        description="for each table the token cannot read, the scopes it lacks (empty: it reads them all)"
    )
    company: PennylaneCompanyOut = Field(description="the Pennylane company of the token")
    updated_at: str = Field(description=_TIMESTAMP)

    @classmethod
    def of(cls, connection: Connection) -> PennylaneConnectionOut:
        missing = tables.missing_scopes(tables.TABLES, connection.scopes)
        return cls(
            base_url=connection.base_url,
            enabled=connection.enabled,
            scopes=list(connection.scopes),
            missing_scopes={name: list(scopes) for name, scopes in missing.items()},
            company=PennylaneCompanyOut(id=connection.company_id, name=connection.company_name),
            updated_at=utc_timestamp(connection.updated_at),
        )


class PennylaneNotConfigured(BaseModel):
    configured: Literal[False] = False


class PennylaneSyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: SyncMode = Field(
        description="incremental: the changes since the last sync; full: every table listed whole again"
    )
    tables: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="the tables to sync (names of `GET …/pennylane/state`); omitted: every table",
    )


class JobAccepted(BaseModel):
    job_id: str = Field(description="follow it with GET /api/v1/jobs/{job_id} or the WebSocket")


class PennylaneTableStatus(StrEnum):
    """NEVER_SYNCED until a sync considers the table; then the outcome of the last sync that did."""

    NEVER_SYNCED = "NEVER_SYNCED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class PennylaneTableOut(BaseModel):
    table: str
    mode: SyncMode | None = Field(description="of the last sync that considered the table; null if none")
    last_synced_at: str | None = Field(description="end of the last successful sync; " + _TIMESTAMP)
    cursor_at: str | None = Field(description="checkpoint of a changelog table (Pennylane's clock); " + _TIMESTAMP)
    rows: int = Field(description="rows in the table after its last successful sync")
    status: PennylaneTableStatus
    error: str | None = Field(description="why the last sync failed, or which scopes the token lacks")
    missing_scopes: list[str] = Field(description="scopes the token lacks to read the table")

    @classmethod
    def of(cls, table: str, state: TableState | None, missing: Sequence[str]) -> PennylaneTableOut:
        """A table's entry: its state row (None before any sync considered it) and the scopes the token lacks."""
        error = state.error if state is not None and state.status == "FAILED" else None
        if error is None and missing:
            error = f"the Pennylane token lacks the scope(s) {', '.join(missing)}"
        if state is None:
            return cls(
                table=table,
                mode=None,
                last_synced_at=None,
                cursor_at=None,
                rows=0,
                status=PennylaneTableStatus.NEVER_SYNCED,
                error=error,
                missing_scopes=list(missing),
            )
        return cls(
            table=table,
            mode=state.mode,
            last_synced_at=None if state.last_synced_at is None else utc_timestamp(state.last_synced_at),
            cursor_at=None if state.cursor_at is None else utc_timestamp(state.cursor_at),
            rows=state.rows,
            status=PennylaneTableStatus(state.status),
            error=error,
            missing_scopes=list(missing),
        )


class PennylaneStateOut(BaseModel):
    tables: list[PennylaneTableOut] = Field(description="one per table the sync keeps, in catalogue order")


class BiCredentialsOut(BaseModel):
    host: str
    port: int
    database: str
    user: str
    password: str = Field(description="shown once: calling again gives a new one and the old one stops working")
