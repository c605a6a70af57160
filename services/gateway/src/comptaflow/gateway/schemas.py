"""Request and response bodies of the HTTP API (CONTRACT §3, §4), and their wire formatting.

Dates are `YYYY-MM-DD`; timestamps ISO-8601 UTC ending in `Z`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from comptaflow.common.batches import Batch
from comptaflow.common.contracts import BatchKind, BatchStatus
from comptaflow.common.contracts.v1 import TenantId
from comptaflow.common.tenants import Tenant

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
