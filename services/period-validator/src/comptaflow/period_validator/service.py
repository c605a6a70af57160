"""The period validator's declaration: it consumes `batch.uploaded` on `comptaflow.period-validator` and
publishes `batch.load_requested` (through the outbox) for the batches uploaded with `auto_load`."""

from comptaflow.common.contracts import BatchUploaded, LoadRequested
from comptaflow.common.service import Consumes, ServiceSpec

SERVICE = ServiceSpec(
    name="period-validator",
    consumes=(Consumes(BatchUploaded),),
    publishes=(LoadRequested,),
    factory="comptaflow.period_validator.app:create",
    release_memory=True,
    description="Reads a period's five Excel exports or its FEC in a capped child process and validates it.",
)
