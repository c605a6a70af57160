"""Composition root of the Pennylane sync: its handler and its scheduler on the process's connections."""

from __future__ import annotations

from datetime import time, timedelta

from comptaflow.common.contracts import PennylaneSyncRequested
from comptaflow.common.errors import ConfigurationError
from comptaflow.common.secrets import Keyring
from comptaflow.common.service import Runtime, WorkerContext
from comptaflow.common.settings import Settings
from comptaflow.pennylane_sync.handler import SyncHandler
from comptaflow.pennylane_sync.scheduler import Schedule, Scheduler


def schedule_of(settings: Settings) -> Schedule:
    hours, minutes = (int(part) for part in settings.pennylane_full_at.split(":"))
    return Schedule(
        interval=timedelta(minutes=settings.pennylane_interval_min),
        full_at=time(hours, minutes),
        timezone=settings.pennylane_timezone,
        spread=timedelta(minutes=settings.pennylane_spread_min),
    )


def create(context: WorkerContext) -> Runtime:
    infra = context.infra
    settings = infra.settings
    if settings.secret_key is None:
        raise ConfigurationError("the Pennylane sync reads tenant tokens: set COMPTAFLOW_SECRET_KEY")
    keyring = Keyring.from_setting(settings.secret_key.get_secret_value())
    handler = SyncHandler(pool=infra.db, bus=infra.bus, settings=settings, keyring=keyring)
    if not settings.pennylane_schedule:
        return Runtime(handlers={PennylaneSyncRequested: handler})
    scheduler = Scheduler(infra.db, schedule_of(settings))
    return Runtime(handlers={PennylaneSyncRequested: handler}, on_start=scheduler.start, on_stop=scheduler.stop)
