"""The registered services, found by entry point: no shared list to edit when a service is added.

A package registers its declaration (`comptaflow.common.service.ServiceSpec`) in its `pyproject.toml`:

    [project.entry-points."comptaflow.services"]
    loader = "comptaflow.loader.service:SERVICE"

and `COMPTAFLOW_EXTRA_SERVICES` (`module:attribute`, comma-separated) adds declarations that no installed
package carries (a firm's own worker, the tests' sample service). `Registry` checks them together (unique
service and queue names, a routing key bound to a queue once per queue) and derives what is shared: the
topology every process declares (`topology`), the services `up` starts and `serve` accepts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from comptaflow.common.bus.base import WorkerQueue
from comptaflow.common.contracts import Message, message_type
from comptaflow.common.errors import ConfigurationError
from comptaflow.common.service import ServiceSpec, resolve

GROUP = "comptaflow.services"


@dataclass(frozen=True, slots=True)
class Registry:
    services: tuple[ServiceSpec, ...]

    def __post_init__(self) -> None:
        names = [spec.name for spec in self.services]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigurationError(f"services declared twice: {', '.join(duplicates)}")
        queues = [queue.name for queue in self.topology]
        taken = sorted({name for name in queues if queues.count(name) > 1})
        if taken:
            raise ConfigurationError(f"queues declared by more than one service: {', '.join(taken)}")

    def __iter__(self) -> Iterator[ServiceSpec]:
        return iter(self.services)

    def __contains__(self, name: object) -> bool:
        return any(spec.name == name for spec in self.services)

    def get(self, name: str) -> ServiceSpec:
        for spec in self.services:
            if spec.name == name:
                return spec
        known = ", ".join(self.names)
        raise ConfigurationError(f"no service named {name!r} is installed (installed: {known})")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.services)

    @property
    def workers(self) -> tuple[ServiceSpec, ...]:
        return tuple(spec for spec in self.services if spec.role == "worker")

    @property
    def topology(self) -> tuple[WorkerQueue, ...]:
        """Every worker queue, in service order: what each process declares at start (idempotently), so that
        a message published before its consumer ever ran is queued, not dropped."""
        return tuple(queue for spec in self.services for queue in spec.queues)

    @property
    def messages(self) -> tuple[type[Message], ...]:
        """Every message type consumed or published by a registered service, each once, by routing key."""
        found: dict[str, type[Message]] = {}
        for spec in self.services:
            for model in (*spec.consumed, *spec.publishes):
                key = message_type(model)
                if found.setdefault(key, model) is not model:
                    raise ConfigurationError(f"two message models use the routing key {key!r}")
        return tuple(found[key] for key in sorted(found))


def discover(extra: str | Sequence[str] = ()) -> Registry:
    """The services registered by the installed packages, plus `extra` (`module:attribute` references)."""
    found: list[ServiceSpec] = []
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        found.append(_checked(entry.load(), entry.value))
    references = [ref.strip() for ref in (extra.split(",") if isinstance(extra, str) else extra) if ref.strip()]
    found.extend(_checked(_load(ref), ref) for ref in references)
    return Registry(tuple(found))


def _load(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    if not module or not attribute:
        raise ConfigurationError(f"COMPTAFLOW_EXTRA_SERVICES: {reference!r} is not 'module:attribute'")
    try:
        return resolve(reference)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"COMPTAFLOW_EXTRA_SERVICES: cannot load {reference!r}: {exc}") from exc


def _checked(value: Any, reference: str) -> ServiceSpec:
    if not isinstance(value, ServiceSpec):
        raise ConfigurationError(f"{reference} is not a ServiceSpec but {type(value).__name__}")
    return value
