"""The worker queues the tests consume from, as their services declare them, and a message no queue binds."""

from typing import Literal

from comptaflow.common.contracts import Message
from comptaflow.loader.service import SERVICE as _LOADER
from comptaflow.period_validator.service import SERVICE as _VALIDATOR

(PERIOD_VALIDATOR_QUEUE,) = _VALIDATOR.queues
(LOADER_QUEUE,) = _LOADER.queues
TOPOLOGY = (PERIOD_VALIDATOR_QUEUE, LOADER_QUEUE)


class Unrouted(Message):
    """A message that no worker queue of the topology binds."""

    type: Literal["test.unrouted"] = "test.unrouted"
    tenant_id: str
