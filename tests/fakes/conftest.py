"""The official Pennylane spec as JSON Schema, and a fake Pennylane served over real HTTP.

`Spec.validate(method, path, status, body)` checks a response body against the operation's response
schema: `$ref`s resolved, OpenAPI 3.0 `nullable: true` turned into a `"null"` type (or enum member, or
`anyOf` branch), `additionalProperties: false` kept, `date` / `date-time` formats checked.

The spec is the official snapshot in `tests/fixtures/pennylane/` (or the file named by
`COMPTAFLOW_PENNYLANE_SPEC`, to check the fake against another version).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from comptaflow.fakes.pennylane import FakePennylane, FakeServer

REPO = Path(__file__).resolve().parents[2]
SPEC_PATH = Path(
    os.environ.get(
        "COMPTAFLOW_PENNYLANE_SPEC",
        REPO / "tests" / "fixtures" / "pennylane" / "openapi-accounting-v2.json",
    )
)
TOKEN = "test-token"
SCHEMA_KEYWORDS = ("items", "not", "additionalProperties")
LIST_KEYWORDS = ("allOf", "anyOf", "oneOf")
DROPPED = ("nullable", "example", "examples", "deprecated", "description", "title", "discriminator", "xml")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    if isinstance(value, str):
        if len(value) != 10:
            raise ValueError(f"not a YYYY-MM-DD date: {value!r}")
        date.fromisoformat(value)
    return True


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


class Spec:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def to_json_schema(self, node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        node = self._resolve(node)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in DROPPED:
                continue
            if key == "properties":
                out[key] = {name: self.to_json_schema(schema) for name, schema in value.items()}
            elif key in SCHEMA_KEYWORDS and isinstance(value, dict):
                out[key] = self.to_json_schema(value)
            elif key in LIST_KEYWORDS:
                out[key] = [self.to_json_schema(schema) for schema in value]
            else:
                out[key] = value
        if node.get("nullable"):
            if isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
                if "enum" in out and None not in out["enum"]:
                    out["enum"] = [*out["enum"], None]
            else:
                out = {"anyOf": [out, {"type": "null"}]}
        return out

    def response_schema(self, method: str, path: str, status: int) -> dict[str, Any]:
        operation = self.document["paths"][path][method.lower()]
        response = self._resolve(operation["responses"][str(status)])
        schema = response["content"]["application/json"]["schema"]
        converted: dict[str, Any] = self.to_json_schema(schema)
        return converted

    def validate(self, method: str, path: str, status: int, body: Any) -> None:
        schema = self.response_schema(method, path, status)
        validator = jsonschema.Draft202012Validator(schema, format_checker=FORMATS)
        errors = sorted(validator.iter_errors(body), key=lambda error: list(error.absolute_path))
        assert not errors, f"{method} {path} {status}: " + "; ".join(
            f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5]
        )

    def paths(self) -> list[str]:
        return list(self.document["paths"])


@cache
def _load_spec() -> Spec | None:
    if not SPEC_PATH.exists():
        return None
    return Spec(json.loads(SPEC_PATH.read_text(encoding="utf-8")))


@pytest.fixture(scope="session")
def spec() -> Spec:
    loaded = _load_spec()
    if loaded is None:
        message = f"the official Pennylane OpenAPI spec is not at {SPEC_PATH} (COMPTAFLOW_PENNYLANE_SPEC)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return loaded


class Running:
    """A started fake: its base URL, origin (for /__admin), the fake itself and an authorised client."""

    def __init__(self, fake: FakePennylane, server: FakeServer, base_url: str) -> None:
        self.fake = fake
        self.server = server
        self.base = base_url
        self.origin = server.origin
        self.client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        self.admin = httpx.Client(base_url=f"{server.origin}/__admin", timeout=10)

    def close(self) -> None:
        self.client.close()
        self.admin.close()


def start(fake: FakePennylane) -> Iterator[Running]:
    server = FakeServer(fake)
    with server as base_url:
        running = Running(fake, server, base_url)
        try:
            yield running
        finally:
            running.close()


@pytest.fixture(scope="module")
def pennylane() -> Iterator[Running]:
    """A fake with a high rate limit and one small company (seed 7) for the read-only tests."""
    fake = FakePennylane(rate_limit=100_000, export_delay=0.5)
    fake.add_company(seed=7, size="small", token=TOKEN)
    yield from start(fake)


@pytest.fixture
def fresh() -> Iterator[Running]:
    """A fake of its own, for tests that change data, the clock or the faults."""
    fake = FakePennylane(rate_limit=100_000, export_delay=0.0)
    fake.add_company(seed=11, size="small", token=TOKEN)
    yield from start(fake)
