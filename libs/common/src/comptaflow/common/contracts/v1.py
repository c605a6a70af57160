"""Version 1 of the message contracts."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from comptaflow.common.errors import InvalidMessage

TenantId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]


def _now() -> datetime:
    return datetime.now(UTC)


class BatchKind(StrEnum):
    EXCEL = "excel"
    FEC = "fec"


class BatchStatus(StrEnum):
    PENDING = "PENDING"
    VALIDATING = "VALIDATING"
    VALIDATED = "VALIDATED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in (BatchStatus.COMPLETED, BatchStatus.FAILED)


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    message_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=_now)


class BatchUploaded(_Message):
    """The files of a batch are stored under `{tenant}/incoming/{batch_id}/`; validate them."""

    type: Literal["batch.uploaded"] = "batch.uploaded"
    tenant_id: TenantId
    batch_id: uuid.UUID
    kind: BatchKind
    auto_load: bool = False


class BatchValidated(_Message):
    """A batch passed validation; its normalised tables are stored for the loader."""

    type: Literal["batch.validated"] = "batch.validated"
    tenant_id: TenantId
    batch_id: uuid.UUID
    kind: BatchKind
    period_start: date
    period_end: date
    auto_load: bool = False


class LoadRequested(_Message):
    """Load a validated batch into the warehouse (or restore a backup: `backup_id`)."""

    type: Literal["batch.load_requested"] = "batch.load_requested"
    tenant_id: TenantId
    batch_id: uuid.UUID
    backup_id: uuid.UUID | None = None


Event = Annotated[BatchUploaded | BatchValidated | LoadRequested, Field(discriminator="type")]
EVENT_TYPES: tuple[type[_Message], ...] = (BatchUploaded, BatchValidated, LoadRequested)
_EVENT_ADAPTER: TypeAdapter[BatchUploaded | BatchValidated | LoadRequested] = TypeAdapter(Event)


class StatusEvent(BaseModel):
    """Progress of a batch or job, published on `comptaflow.status`, streamed over WebSocket (CONTRACT §5).

    `seq` increases with every event of one batch or job, so a consumer can drop a stale one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["status"] = "status"
    version: Literal[1] = 1
    tenant_id: TenantId
    batch_id: uuid.UUID | None = None
    job_id: uuid.UUID | None = None
    service: str
    stage: str
    status: str
    progress: float = Field(ge=0.0, le=1.0)
    message: str = ""
    at: datetime = Field(default_factory=_now)
    seq: int = 0

    @property
    def routing_key(self) -> str:
        subject = self.batch_id or self.job_id
        return f"status.{self.tenant_id}.{subject}"

    def wire(self) -> dict[str, object]:
        """The WebSocket representation (CONTRACT §5): `at` is always UTC with a `Z` (a naive time is taken as UTC)."""
        at = self.at.replace(tzinfo=UTC) if self.at.tzinfo is None else self.at.astimezone(UTC)
        out: dict[str, object] = {
            "type": "status",
            "tenant_id": self.tenant_id,
            "service": self.service,
            "stage": self.stage,
            "status": self.status,
            "progress": round(self.progress, 4),
            "message": self.message,
            "at": at.isoformat().replace("+00:00", "Z"),
            "seq": self.seq,
        }
        if self.batch_id is not None:
            out["batch_id"] = str(self.batch_id)
        if self.job_id is not None:
            out["job_id"] = str(self.job_id)
        return out


def parse_event(body: bytes) -> BatchUploaded | BatchValidated | LoadRequested:
    """Validate a message at the consumer edge; a malformed one is a permanent error."""
    try:
        return _EVENT_ADAPTER.validate_json(body)
    except ValidationError as exc:
        raise InvalidMessage(f"message does not match any v1 contract: {exc.error_count()} error(s)") from exc


def parse_status(body: bytes) -> StatusEvent:
    try:
        return StatusEvent.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidMessage("status event does not match the v1 contract") from exc
