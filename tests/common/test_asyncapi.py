"""The published AsyncAPI document matches the contracts in code."""

from pathlib import Path

from comptaflow.common.contracts.asyncapi import build_asyncapi, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_docs_asyncapi_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/asyncapi.json is stale: run `uv run python -m comptaflow.common.contracts.asyncapi > docs/asyncapi.json`"
    )


def test_every_worker_queue_and_message_is_described() -> None:
    doc = build_asyncapi()
    assert doc["channels"]["period-validator"]["address"] == "comptaflow.period-validator"
    assert set(doc["components"]["messages"]) == {"BatchUploaded", "BatchValidated", "LoadRequested", "StatusEvent"}
    assert doc["components"]["messages"]["BatchUploaded"]["name"] == "batch.uploaded"
