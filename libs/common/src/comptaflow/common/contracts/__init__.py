"""Wire contracts: the only thing services share.

Every message is a frozen pydantic model with a `type` (its routing key) and a `version`.
Only optional fields may be added to a version; a breaking change is a new model.
`tests/common/test_contracts.py` snapshots their JSON schema.
"""

from comptaflow.common.contracts.v1 import (
    BatchKind,
    BatchStatus,
    BatchUploaded,
    JobStatus,
    LoadRequested,
    Message,
    PennylaneSyncRequested,
    StatusEvent,
    SyncMode,
    message_type,
    parse_message,
    parse_status,
)

__all__ = [
    "BatchKind",
    "BatchStatus",
    "BatchUploaded",
    "JobStatus",
    "LoadRequested",
    "Message",
    "PennylaneSyncRequested",
    "StatusEvent",
    "SyncMode",
    "message_type",
    "parse_message",
    "parse_status",
]
