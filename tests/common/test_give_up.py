"""`or_give_up`: a worker records a failure exactly when its message is about to be dead-lettered."""

from __future__ import annotations

import pytest

from comptaflow.common.bus.base import Delivery, or_give_up
from comptaflow.common.errors import NotFound, PermanentError, TransientError

LIMIT = 3


def delivery(count: int) -> Delivery:
    return Delivery(routing_key="batch.uploaded", delivery_count=count, redelivered=count > 0)


async def run(exc: BaseException | None, count: int) -> list[tuple[str, bool]]:
    recorded: list[tuple[str, bool]] = []

    async def work() -> None:
        if exc is not None:
            raise exc

    async def give_up(cause: BaseException, permanent: bool) -> None:
        recorded.append((str(cause), permanent))

    await or_give_up(work(), delivery=delivery(count), limit=LIMIT, give_up=give_up)
    return recorded


async def test_success_records_nothing() -> None:
    assert await run(None, 0) == []


async def test_permanent_error_is_recorded_at_once_and_re_raised() -> None:
    recorded: list[tuple[str, bool]] = []

    async def work() -> None:
        raise NotFound("batch gone")

    async def give_up(cause: BaseException, permanent: bool) -> None:
        recorded.append((str(cause), permanent))

    with pytest.raises(NotFound):
        await or_give_up(work(), delivery=delivery(0), limit=LIMIT, give_up=give_up)
    assert recorded == [("batch gone", True)]


async def test_transient_error_before_the_last_attempt_is_only_re_raised() -> None:
    recorded: list[tuple[str, bool]] = []

    async def work() -> None:
        raise TransientError("db down")

    async def give_up(cause: BaseException, permanent: bool) -> None:
        recorded.append((str(cause), permanent))

    with pytest.raises(TransientError):
        await or_give_up(work(), delivery=delivery(LIMIT - 2), limit=LIMIT, give_up=give_up)
    assert recorded == []


@pytest.mark.parametrize("exc", [TransientError("db down"), RuntimeError("bug")])
async def test_any_error_on_the_last_attempt_is_recorded_and_becomes_permanent(exc: Exception) -> None:
    recorded: list[tuple[str, bool]] = []

    async def work() -> None:
        raise exc

    async def give_up(cause: BaseException, permanent: bool) -> None:
        recorded.append((str(cause), permanent))

    with pytest.raises(PermanentError) as raised:
        await or_give_up(work(), delivery=delivery(LIMIT - 1), limit=LIMIT, give_up=give_up)
    assert raised.value.__cause__ is exc
    assert recorded == [(str(exc), False)]
