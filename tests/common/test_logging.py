"""Log configuration: secrets are never rendered; JSON lines carry the bound context."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from comptaflow.common.logging import configure_logging, get_logger, redact_secrets

NOISY = ("aiormq", "aio_pika", "botocore", "aiobotocore", "uvicorn.access")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging() changes process-wide state: put it back as it was after each test."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy_levels = {name: logging.getLogger(name).level for name in NOISY}
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, noisy_level in noisy_levels.items():
        logging.getLogger(name).setLevel(noisy_level)


def test_redact_secrets_replaces_secret_values_and_keeps_the_rest() -> None:
    event = {
        "event": "pennylane_sync_started",
        "api_token": "pl-123456",
        "password": "hunter2",
        "authorization": "Bearer eyJ...",
        "Authorization": "Bearer eyJ...",
        "jwt_secret": "s3cr3t",
        "s3_secret_key": "AKIA...",
        "api_key": "k-1",
        "db_credentials": "postgres:pw",
        "tenant_id": "acme",
        "rows": 1200,
        "batch_id": "b-1",
    }
    assert redact_secrets(None, "info", dict(event)) == {
        "event": "pennylane_sync_started",
        "api_token": "***",
        "password": "***",
        "authorization": "***",
        "Authorization": "***",
        "jwt_secret": "***",
        "s3_secret_key": "***",
        "api_key": "***",
        "db_credentials": "***",
        "tenant_id": "acme",
        "rows": 1200,
        "batch_id": "b-1",
    }


def test_the_event_name_itself_is_never_redacted() -> None:
    assert redact_secrets(None, "info", {"event": "token_minted", "sub": "alice"}) == {
        "event": "token_minted",
        "sub": "alice",
    }


def test_json_logs_are_one_json_object_per_line_with_the_bound_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="json", level="INFO")
    log = get_logger("comptaflow.test")
    with structlog.contextvars.bound_contextvars(tenant_id="acme", batch_id="b-42"):
        log.info("batch_loaded", rows=1200, api_token="pl-very-secret")
    log.warning("after_unbind")

    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines()]
    assert len(lines) == 2
    first, second = lines
    timestamp = first.pop("timestamp")
    assert first == {
        "event": "batch_loaded",
        "rows": 1200,
        "api_token": "***",
        "tenant_id": "acme",
        "batch_id": "b-42",
        "level": "info",
    }
    assert isinstance(timestamp, str)
    assert timestamp.endswith("Z")
    assert "tenant_id" not in second
    assert (second["event"], second["level"]) == ("after_unbind", "warning")
    assert "pl-very-secret" not in err


def test_console_logs_redact_secrets_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="console", level="INFO")
    get_logger("comptaflow.test").info("connected", password="hunter2", host="db.internal")
    err = capsys.readouterr().err
    assert "connected" in err
    assert "password=***" in err
    assert "host=db.internal" in err
    assert "hunter2" not in err


def test_events_below_the_level_are_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="json", level="WARNING")
    log = get_logger("comptaflow.test")
    log.info("chatty")
    log.debug("chattier")
    log.error("broken", reason="disk full")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["event"], line["level"]) for line in lines] == [("broken", "error")]


def test_third_party_loggers_are_quietened_to_warnings() -> None:
    configure_logging(fmt="json", level="DEBUG")
    assert {name: logging.getLogger(name).getEffectiveLevel() for name in NOISY} == dict.fromkeys(
        NOISY, logging.WARNING
    )
