"""The loader's declaration: it consumes `batch.load_requested` on `comptaflow.loader`."""

from comptaflow.common.contracts import LoadRequested
from comptaflow.common.service import Consumes, ServiceSpec

SERVICE = ServiceSpec(
    name="loader",
    consumes=(Consumes(LoadRequested),),
    factory="comptaflow.loader.app:create",
    # Loads of one tenant wait for each other (advisory lock): more than one slot lets other tenants proceed.
    min_prefetch=2,
    release_memory=True,
    description="Loads validated batches into the warehouse, atomically per period; restores backups.",
)
