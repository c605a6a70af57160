"""A service that exists only in the tests: what adding a worker takes — messages, a handler, a declaration.

It is registered through `COMPTAFLOW_EXTRA_SERVICES=tests.e2e.sample_service:SERVICE` and touches no list of
the project. `sample.ping` is consumed on `comptaflow.sample-echo`; each ping is answered by a `sample.pong`
enqueued in the outbox (so relayed by the process's relay) and consumed on a second queue, whose handler
writes `pong-<word>` into the worker's folder. A ping marked `poison` fails for good: its `give_up` writes
`gave-up-<word>`, then the message is dead-lettered to `comptaflow.sample-echo.dead`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from comptaflow.common import outbox
from comptaflow.common.bus import Delivery
from comptaflow.common.contracts import Message
from comptaflow.common.errors import PermanentError
from comptaflow.common.infra import Infra
from comptaflow.common.service import Consumes, Runtime, ServiceSpec, WorkerContext


class Ping(Message):
    """Answer with a pong (sample service of the tests)."""

    type: Literal["sample.ping"] = "sample.ping"
    tenant_id: str
    word: str
    poison: bool = False


class Pong(Message):
    """The answer to a ping (sample service of the tests)."""

    type: Literal["sample.pong"] = "sample.pong"
    tenant_id: str
    word: str


SERVICE = ServiceSpec(
    name="sample-echo",
    consumes=(Consumes(Ping), Consumes(Pong, queue="sample-echo-pongs")),
    publishes=(Pong,),
    factory="tests.e2e.sample_service:create",
    description="Answers pings (a test service).",
)


class PingHandler:
    def __init__(self, infra: Infra, folder: Path) -> None:
        self._infra = infra
        self._folder = folder

    async def handle(self, message: Ping, _delivery: Delivery) -> None:
        if message.poison:
            raise PermanentError(f"the ping {message.word!r} is poison")
        async with self._infra.db.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, Pong(tenant_id=message.tenant_id, word=message.word))

    async def give_up(self, message: Ping, cause: BaseException, *, permanent: bool) -> None:
        (self._folder / f"gave-up-{message.word}").write_text(f"{permanent} {cause}")


class PongHandler:
    def __init__(self, folder: Path) -> None:
        self._folder = folder

    async def handle(self, message: Pong, _delivery: Delivery) -> None:
        (self._folder / f"pong-{message.word}").write_text(message.tenant_id)

    async def give_up(self, message: Pong, cause: BaseException, *, permanent: bool) -> None:
        (self._folder / f"gave-up-pong-{message.word}").write_text(str(cause))


def create(context: WorkerContext) -> Runtime:
    assert context.work_dir is not None
    folder = context.work_dir / "sample-echo"
    folder.mkdir(parents=True, exist_ok=True)
    return Runtime(handlers={Ping: PingHandler(context.infra, folder), Pong: PongHandler(folder)})
