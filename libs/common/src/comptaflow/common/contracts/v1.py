"""Version 1 of the message contracts."""

from __future__ import annotations

import functools
import operator
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

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


class JobStatus(StrEnum):
    """Status of a job (docs/api.md, Jobs): PENDING → RUNNING → SUCCEEDED, or FAILED."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)


class Message(BaseModel):
    """A message on `comptaflow.events`: its `type` (a literal with a default) is its routing key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    message_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=_now)


class BatchUploaded(Message):
    """The files of a batch are stored under `{tenant}/incoming/{batch_id}/`; validate them."""

    type: Literal["batch.uploaded"] = "batch.uploaded"
    tenant_id: TenantId
    batch_id: uuid.UUID
    kind: BatchKind
    auto_load: bool = False


class LoadRequested(Message):
    """Load a validated batch into the warehouse (or restore a backup: `backup_id`)."""

    type: Literal["batch.load_requested"] = "batch.load_requested"
    tenant_id: TenantId
    batch_id: uuid.UUID
    backup_id: uuid.UUID | None = None


class SyncMode(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"


class PennylaneSyncRequested(Message):
    """Sync a tenant's Pennylane company into its PostgreSQL schema: the job `job_id` (kind `pennylane.sync`).

    `tables` None means every table the tenant's token may read; a full sync re-lists every table.
    """

    type: Literal["pennylane.sync_requested"] = "pennylane.sync_requested"
    tenant_id: TenantId
    job_id: uuid.UUID
    mode: SyncMode = SyncMode.INCREMENTAL
    tables: tuple[str, ...] | None = None


class StatusEvent(BaseModel):
    """Progress of a batch or job, published on `comptaflow.status`, streamed over WebSocket (docs/api.md, WebSocket).

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
        """The WebSocket form (docs/api.md, WebSocket): `at` is always UTC with a `Z` (a naive time is taken as UTC)."""
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


def message_type(model: type[Message]) -> str:
    """The routing key of a message model: the default of its `type` literal."""
    default = model.model_fields["type"].default
    if not isinstance(default, str) or not default:
        raise TypeError(f"{model.__name__} has no default `type`: it cannot be routed")
    return default


@functools.cache
def _adapter(models: tuple[type[Message], ...]) -> TypeAdapter[Any]:
    if len(models) == 1:
        return TypeAdapter(models[0])
    union = functools.reduce(operator.or_, models)
    return TypeAdapter(Annotated[union, Field(discriminator="type")])  # type: ignore[arg-type]  # a union built at run time


def parse_message(body: bytes, models: tuple[type[Message], ...]) -> Message:
    """Validate a message at the consumer edge against the models it may be; anything else is a permanent error."""
    try:
        parsed: Message = _adapter(models).validate_json(body)
    except ValidationError as exc:
        names = ", ".join(message_type(m) for m in models)
        raise InvalidMessage(
            f"message does not match the v1 contract of {names}: {exc.error_count()} error(s)"
        ) from exc
    return parsed


def parse_status(body: bytes) -> StatusEvent:
    try:
        return StatusEvent.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidMessage("status event does not match the v1 contract") from exc
