"""The v1 wire contracts: schema snapshot, round trips, validation at the consumer edge, WebSocket shape."""

from __future__ import annotations

import difflib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from comptaflow.common.contracts import (
    BatchKind,
    BatchStatus,
    BatchUploaded,
    LoadRequested,
    StatusEvent,
    parse_message,
    parse_status,
)
from comptaflow.common.errors import InvalidMessage, PermanentError
from comptaflow.common.registry import discover

SNAPSHOT = Path(__file__).parent / "snapshots" / "contracts_v1.json"
# Every message a registered service consumes or publishes, and the status event: a new message is
# snapshotted without anyone remembering to list it here.
CONTRACT_MODELS: tuple[type[BaseModel], ...] = (
    *sorted(discover().messages, key=lambda model: model.__name__),
    StatusEvent,
)


def _current_schemas() -> str:
    schemas = {model.__name__: model.model_json_schema() for model in CONTRACT_MODELS}
    return json.dumps(schemas, indent=2, sort_keys=True) + "\n"


def test_json_schema_of_every_v1_contract_matches_the_committed_snapshot() -> None:
    """A change to a wire contract must be a visible, reviewed diff.

    When a change is intended (an added optional field), regenerate the snapshot and commit it:

        COMPTAFLOW_UPDATE_SNAPSHOTS=1 uv run pytest tests/common/test_contracts.py

    A breaking change (removed or renamed field, new required field, narrowed type) is a new model
    in a new contract version, never an edit of v1.
    """
    current = _current_schemas()
    if os.environ.get("COMPTAFLOW_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(current, encoding="utf-8")
    committed = SNAPSHOT.read_text(encoding="utf-8")
    if committed != current:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                current.splitlines(keepends=True),
                fromfile=f"{SNAPSHOT.name} (committed)",
                tofile="current models",
            )
        )
        pytest.fail(
            "the v1 wire contracts changed; if intended, run "
            "`COMPTAFLOW_UPDATE_SNAPSHOTS=1 uv run pytest tests/common/test_contracts.py` and commit:\n" + diff
        )


def test_snapshot_names_the_routing_key_of_each_event() -> None:
    schemas = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert sorted(schemas) == ["BatchUploaded", "LoadRequested", "PennylaneSyncRequested", "StatusEvent"]
    assert schemas["BatchUploaded"]["properties"]["type"]["const"] == "batch.uploaded"
    assert schemas["PennylaneSyncRequested"]["properties"]["type"]["const"] == "pennylane.sync_requested"
    assert schemas["PennylaneSyncRequested"]["required"] == ["tenant_id", "job_id"]
    assert schemas["LoadRequested"]["properties"]["type"]["const"] == "batch.load_requested"
    assert schemas["StatusEvent"]["properties"]["type"]["const"] == "status"
    assert schemas["BatchUploaded"]["required"] == ["tenant_id", "batch_id", "kind"]


EVENTS = [
    BatchUploaded(tenant_id="acme", batch_id=uuid.uuid4(), kind=BatchKind.FEC, auto_load=True),
    LoadRequested(tenant_id="acme", batch_id=uuid.uuid4(), backup_id=uuid.uuid4()),
    LoadRequested(tenant_id="acme", batch_id=uuid.uuid4()),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_event_round_trips_through_its_json_wire_form(event: BatchUploaded | LoadRequested) -> None:
    parsed = parse_message(event.model_dump_json().encode(), (BatchUploaded, LoadRequested))
    assert type(parsed) is type(event)
    assert parsed == event
    assert parsed.model_dump(mode="json") == event.model_dump(mode="json")


def test_batch_uploaded_wire_form_has_exactly_the_documented_fields() -> None:
    batch_id = uuid.UUID("00000000-0000-4000-8000-000000000001")
    message_id = uuid.UUID("00000000-0000-4000-8000-000000000002")
    event = BatchUploaded(
        tenant_id="acme",
        batch_id=batch_id,
        kind=BatchKind.EXCEL,
        message_id=message_id,
        occurred_at=datetime(2024, 3, 1, 12, 30, tzinfo=UTC),
    )
    assert json.loads(event.model_dump_json()) == {
        "version": 1,
        "message_id": str(message_id),
        "occurred_at": "2024-03-01T12:30:00Z",
        "type": "batch.uploaded",
        "tenant_id": "acme",
        "batch_id": str(batch_id),
        "kind": "excel",
        "auto_load": False,
    }


def test_status_event_round_trips() -> None:
    event = StatusEvent(
        tenant_id="acme",
        job_id=uuid.uuid4(),
        service="loader",
        stage="loading",
        status="PROCESSING",
        progress=0.25,
        message="rows 1-1000",
        seq=7,
    )
    assert parse_status(event.model_dump_json().encode()) == event


def _uploaded_dict() -> dict[str, object]:
    return json.loads(BatchUploaded(tenant_id="acme", batch_id=uuid.uuid4(), kind=BatchKind.FEC).model_dump_json())


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("not json", b"\x00\xffnot json at all"),
        ("truncated json", b'{"type": "batch.uploaded", "tenant_id": '),
        ("json array", b"[]"),
        ("empty object", b"{}"),
        ("unknown type", json.dumps({**_uploaded_dict(), "type": "batch.exploded"}).encode()),
        ("extra field", json.dumps({**_uploaded_dict(), "priority": "high"}).encode()),
        ("version 2", json.dumps({**_uploaded_dict(), "version": 2}).encode()),
        ("missing batch_id", json.dumps({k: v for k, v in _uploaded_dict().items() if k != "batch_id"}).encode()),
        ("tenant id with capitals", json.dumps({**_uploaded_dict(), "tenant_id": "ACME"}).encode()),
        ("unknown kind", json.dumps({**_uploaded_dict(), "kind": "csv"}).encode()),
    ],
)
def test_parse_message_rejects_anything_off_contract_as_a_permanent_error(name: str, body: bytes) -> None:
    with pytest.raises(InvalidMessage, match=r"does not match the v1 contract of batch.uploaded") as caught:
        parse_message(body, (BatchUploaded,))
    # A malformed message is permanent: the bus dead-letters it instead of retrying forever.
    assert isinstance(caught.value, PermanentError)


def test_parse_status_rejects_an_event_without_tenant() -> None:
    with pytest.raises(InvalidMessage, match="status event does not match the v1 contract"):
        parse_status(b'{"type": "status", "service": "x", "stage": "s", "status": "PENDING", "progress": 0}')


def test_contracts_are_frozen() -> None:
    event = BatchUploaded(tenant_id="acme", batch_id=uuid.uuid4(), kind=BatchKind.FEC)
    with pytest.raises(ValidationError, match="frozen"):
        event.tenant_id = "other"  # type: ignore[misc]


def test_status_event_progress_is_bounded_to_zero_one() -> None:
    with pytest.raises(ValidationError):
        StatusEvent(tenant_id="acme", batch_id=uuid.uuid4(), service="s", stage="x", status="PENDING", progress=1.5)


def test_status_wire_has_exactly_the_contract_keys_for_a_batch() -> None:
    batch_id = uuid.UUID("00000000-0000-4000-8000-00000000000b")
    event = StatusEvent(
        tenant_id="acme",
        batch_id=batch_id,
        service="period-validator",
        stage="reading",
        status="VALIDATING",
        progress=0.333333333,
        message="reading files",
        at=datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC),
        seq=3,
    )
    wire = event.wire()
    # The WebSocket keys of docs/api.md, plus `seq` (a documented extension: lets a client drop a stale event).
    assert wire == {
        "type": "status",
        "tenant_id": "acme",
        "batch_id": "00000000-0000-4000-8000-00000000000b",
        "service": "period-validator",
        "stage": "reading",
        "status": "VALIDATING",
        "progress": 0.3333,
        "message": "reading files",
        "at": "2024-05-06T07:08:09.123000Z",
        "seq": 3,
    }
    assert event.routing_key == "status.acme.00000000-0000-4000-8000-00000000000b"
    json.dumps(wire)  # the WebSocket sends it as JSON text


def test_status_wire_of_a_job_names_the_job_not_a_batch() -> None:
    job_id = uuid.uuid4()
    event = StatusEvent(tenant_id="acme", job_id=job_id, service="loader", stage="done", status="COMPLETED", progress=1)
    wire = event.wire()
    assert set(wire) == {
        "type",
        "tenant_id",
        "job_id",
        "service",
        "stage",
        "status",
        "progress",
        "message",
        "at",
        "seq",
    }
    assert wire["job_id"] == str(job_id)
    assert wire["message"] == ""
    assert event.routing_key == f"status.acme.{job_id}"


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2024, 1, 1, 12, 0, tzinfo=UTC), "2024-01-01T12:00:00Z"),
        (datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))), "2024-01-01T10:00:00Z"),
        (datetime(2024, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=-5))), "2024-01-01T05:30:00Z"),
        (datetime(2024, 1, 1, 12, 0), "2024-01-01T12:00:00Z"),  # naive (e.g. parsed without offset) = UTC
    ],
    ids=["utc", "plus-2h", "minus-5h", "naive"],
)
def test_status_wire_timestamp_is_utc_with_z(at: datetime, expected: str) -> None:
    event = StatusEvent(
        tenant_id="acme", batch_id=uuid.uuid4(), service="s", stage="x", status="PENDING", progress=0, at=at
    )
    assert event.wire()["at"] == expected


def test_status_wire_timestamp_after_a_trip_through_the_bus_ends_in_z() -> None:
    event = StatusEvent(tenant_id="acme", batch_id=uuid.uuid4(), service="s", stage="x", status="PENDING", progress=0)
    wired = parse_status(event.model_dump_json().encode()).wire()
    assert isinstance(wired["at"], str)
    assert wired["at"].endswith("Z")
    assert datetime.fromisoformat(wired["at"]) == event.at


def test_batch_status_final_states() -> None:
    assert [s.value for s in BatchStatus if s.is_final] == ["COMPLETED", "FAILED"]
