"""The Pennylane sync's declaration: it consumes `pennylane.sync_requested` on `comptaflow.pennylane-sync`."""

from comptaflow.common.contracts import PennylaneSyncRequested
from comptaflow.common.service import Consumes, ServiceSpec

SERVICE = ServiceSpec(
    name="pennylane-sync",
    consumes=(Consumes(PennylaneSyncRequested),),
    publishes=(PennylaneSyncRequested,),
    factory="comptaflow.pennylane_sync.app:create",
    # Syncs of one tenant wait for each other (advisory lock): more slots let other tenants proceed, and
    # a sync spends its time waiting on the API's rate limit, not on the CPU.
    min_prefetch=4,
    description="Syncs each tenant's Pennylane company into its PostgreSQL schema, incrementally, on a schedule.",
)
