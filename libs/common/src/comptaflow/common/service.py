"""What a service declares: its queues, the message each consumes, what it publishes, how it is built.

A service is a handler, its adapters and one `ServiceSpec`, registered under the `comptaflow.services`
entry-point group of its package (`comptaflow.common.registry`). Everything shared is derived from the
declarations: the broker topology every process declares, the queue each message type is bound to, the
AsyncAPI document, the services `comptaflow up` starts and the names `comptaflow serve` accepts. The skeleton
that runs a worker (`comptaflow.common.worker`) owns the rest: start, graceful drain and stop, the typed
dispatch, the give-up path, the memory release after a message and the outbox relay.

    SERVICE = ServiceSpec(
        name="loader",
        consumes=(Consumes(LoadRequested),),          # queue comptaflow.loader, bound to batch.load_requested
        factory="comptaflow.loader.app:create",       # (WorkerContext) -> Runtime, imported when the worker starts
    )

A declaration module imports only `comptaflow.common`: reading every declaration (each process does, to
declare the whole topology) must not import a service's heavy dependencies.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from comptaflow.common.bus.base import Delivery, WorkerQueue
from comptaflow.common.contracts import Message, message_type

if TYPE_CHECKING:
    from comptaflow.common.infra import Infra

M = TypeVar("M", bound=Message)
M_contra = TypeVar("M_contra", bound=Message, contravariant=True)


class MessageHandler(Protocol[M_contra]):
    """Handles one message type. The skeleton calls `give_up` once, before the message is dead-lettered:
    on a permanent error (`permanent=True`), or when the last attempt the delivery limit allows failed."""

    async def handle(self, message: M_contra, delivery: Delivery) -> None: ...

    async def give_up(self, message: M_contra, cause: BaseException, *, permanent: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class Consumes(Generic[M]):
    """A message type the service consumes, on its own queue (`queue`, default: the service's name)."""

    message: type[M]
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What a service's factory receives: the process's connections and a folder for temporary files."""

    infra: Infra
    work_dir: Path | None = None


Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Runtime:
    """A started service's parts: one handler per consumed message type, and optional start/stop hooks
    (run before the first message is taken, and after the last one finished)."""

    handlers: Mapping[type[Message], MessageHandler[Any]]
    on_start: Hook | None = None
    on_stop: Hook | None = None


Factory = Callable[[WorkerContext], Runtime]


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service's declaration (see the module docstring).

    `role="http"` is a service that serves HTTP instead of consuming (the gateway): its factory builds the
    ASGI app, and its `publishes` still appear in the topology and the AsyncAPI document.
    """

    name: str
    consumes: tuple[Consumes[Any], ...] = ()
    publishes: tuple[type[Message], ...] = ()
    factory: str = ""
    role: Literal["worker", "http"] = "worker"
    min_prefetch: int = 1
    release_memory: bool = False
    """Give freed memory back after each message (`comptaflow.common.memory`): for workers that parse
    or load large inputs."""
    description: str = ""
    queues: tuple[WorkerQueue, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.name or not all(part.isalnum() for part in self.name.split("-")):
            raise ValueError(f"invalid service name {self.name!r}: lowercase words joined by '-'")
        if ":" not in self.factory:
            raise ValueError(f"service {self.name}: factory must be 'module:attribute', not {self.factory!r}")
        grouped: dict[str, list[type[Message]]] = {}
        for consumed in self.consumes:
            message_type(consumed.message)  # a model without a routing key cannot be consumed
            grouped.setdefault(consumed.queue or self.name, []).append(consumed.message)
        if self.role == "http" and grouped:
            raise ValueError(f"service {self.name}: an HTTP service consumes no queue")
        object.__setattr__(self, "queues", tuple(WorkerQueue(name, tuple(models)) for name, models in grouped.items()))

    @property
    def consumed(self) -> tuple[type[Message], ...]:
        return tuple(consumed.message for consumed in self.consumes)

    def load_factory(self) -> Any:
        """The factory object (imported now, not when the declaration is read)."""
        return resolve(self.factory)


def resolve(reference: str) -> Any:
    """The object a `module:attribute` reference names (the attribute may be dotted), imported now."""
    module, _, attribute = reference.partition(":")
    target: Any = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target
