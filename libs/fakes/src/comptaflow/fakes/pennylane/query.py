"""List parameters as Pennylane reads them: `limit`, the opaque `cursor`, the JSON `filter`, `sort`.

- `limit`: 1 … the endpoint's maximum, default 20; out of range or not a number → 400 in the spec's
  validator shape `{message, field, code}` (`LessThanMinimum`, `MoreThanMaximum`, `ValidateError`).
- `cursor`: base64 (URL-safe) of `{"id": <last id>}`, plus the last sort value when the sort is not by
  id. It carries no filter and no sort: the page after it is computed with whatever `filter`/`sort` the
  request that presents it sends, so a client that drops them on page 2 gets unfiltered, `-id`-sorted
  rows, as with Pennylane. Undecodable → 400.
- `filter`: a JSON array of `{field, operator, value}`, ANDed; fields and operators per endpoint; `in`
  and `not_in` take an array; `start_with` is a case-insensitive prefix. Anything else → 400.
- `sort`: `field` or `-field` among the endpoint's sortable fields; default `-id`.

Errors are `ApiError(status, body)`; the app turns them into JSON responses.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping, Reversible, Sequence
from dataclasses import dataclass
from typing import Any

from comptaflow.fakes.pennylane.formats import parse_date
from comptaflow.fakes.pennylane.store import Row

DEFAULT_LIMIT = 20
ALL_OPERATORS = frozenset({"eq", "not_eq", "lt", "lteq", "gt", "gteq", "in", "not_in"})
LIST_OPERATORS = frozenset({"in", "not_in"})


class ApiError(Exception):
    """An error response of the API: a status and its JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body

    @classmethod
    def of(cls, status: int, message: str) -> ApiError:
        """The spec's `{error, status}` shape (401, 403, 404, 422 and the first variant of 400)."""
        return cls(status, {"error": message, "status": status})

    @classmethod
    def invalid(cls, field: str, code: str, message: str) -> ApiError:
        """A 400 in the spec's validator shape `{message, field, code}`."""
        return cls(400, {"message": message, "field": field, "code": code})


@dataclass(frozen=True, slots=True)
class Field:
    """A filterable field: its operators, value kind (int, str, date, bool) and how to read it."""

    operators: frozenset[str]
    kind: str
    read: Callable[[Row], Any]


@dataclass(frozen=True, slots=True)
class Condition:
    name: str
    field: Field
    operator: str
    value: Any

    def holds(self, row: Row) -> bool:  # noqa: PLR0911 - one return per operator
        actual = self.field.read(row)
        values = actual if isinstance(actual, list) else [actual]
        op, wanted = self.operator, self.value
        if op == "in":
            return any(value in wanted for value in values)
        if op == "not_in":
            return not any(value in wanted for value in values)
        if op == "eq":
            return wanted in values
        if op == "not_eq":
            return wanted not in values
        if op == "start_with":
            return any(isinstance(v, str) and v.lower().startswith(str(wanted).lower()) for v in values)
        present = [value for value in values if value is not None]
        if op == "lt":
            return any(value < wanted for value in present)
        if op == "lteq":
            return any(value <= wanted for value in present)
        if op == "gt":
            return any(value > wanted for value in present)
        return any(value >= wanted for value in present)  # gteq


@dataclass(frozen=True, slots=True)
class Sort:
    field: str
    descending: bool
    key: Callable[[Row], Any]


@dataclass(frozen=True, slots=True)
class Cursor:
    last_id: Any
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row]
    has_more: bool
    next_cursor: str | None


def parse_limit(raw: str | None, maximum: int) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError.invalid("limit", "ValidateError", f"limit must be an integer, got {raw!r}") from None
    if limit < 1:
        raise ApiError.invalid("limit", "LessThanMinimum", "limit must be greater than or equal to 1")
    if limit > maximum:
        raise ApiError.invalid("limit", "MoreThanMaximum", f"limit must be less than or equal to {maximum}")
    return limit


def encode_cursor(payload: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_cursor(raw: str | None) -> Cursor | None:
    if raw is None or raw == "":
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ApiError.of(400, "Invalid cursor") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), int | str):
        raise ApiError.of(400, "Invalid cursor")
    return Cursor(last_id=payload["id"], values={k: v for k, v in payload.items() if k != "id"})


def parse_filter(raw: str | None, fields: Mapping[str, Field]) -> list[Condition]:
    if raw is None or raw.strip() == "":
        return []
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise ApiError.of(400, "Invalid filter: it must be a JSON array of {field, operator, value}") from None
    if not isinstance(parsed, list):
        raise ApiError.of(400, "Invalid filter: it must be a JSON array of {field, operator, value}")
    conditions = []
    for clause in parsed:
        if not isinstance(clause, dict) or not {"field", "operator", "value"} <= set(clause):
            raise ApiError.of(400, "Invalid filter: every condition needs a field, an operator and a value")
        name, operator = clause["field"], clause["operator"]
        field = fields.get(name) if isinstance(name, str) else None
        if field is None:
            raise ApiError.of(400, f"Invalid filter: field {name!r} cannot be filtered on")
        if operator not in field.operators:
            raise ApiError.of(400, f"Invalid filter: operator {operator!r} is not available on field {name!r}")
        conditions.append(Condition(name, field, operator, _coerce(name, field, operator, clause["value"])))
    return conditions


def _coerce(name: str, field: Field, operator: str, value: Any) -> Any:
    if operator in LIST_OPERATORS:
        if not isinstance(value, list):
            raise ApiError.of(400, f"Invalid filter: {operator!r} on {name!r} needs an array value")
        return [_scalar(name, field.kind, item) for item in value]
    if isinstance(value, list | dict):
        raise ApiError.of(400, f"Invalid filter: {operator!r} on {name!r} needs a single value")
    return _scalar(name, field.kind, value)


def _scalar(name: str, kind: str, value: Any) -> Any:
    bad = ApiError.of(400, f"Invalid filter: {value!r} is not a valid value for {name!r}")
    if kind == "int":
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise bad
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad
    if kind == "date":
        if not isinstance(value, str):
            raise bad
        try:
            return parse_date(value)
        except ValueError:
            raise bad from None
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    raise bad


def parse_sort(raw: str | None, sortable: Mapping[str, Callable[[Row], Any]]) -> Sort:
    text = "-id" if raw is None or raw == "" else raw
    descending = text.startswith("-")
    name = text.removeprefix("-").removeprefix("+")
    if name not in sortable:
        raise ApiError.of(400, f"Invalid sort: {name!r} is not sortable (available: {', '.join(sortable)})")
    return Sort(name, descending, sortable[name])


def paginate(
    rows: Reversible[Row],
    *,
    where: Sequence[Condition],
    sort: Sort,
    cursor: Cursor | None,
    limit: int,
    lookup: Callable[[Any], Row | None],
) -> Page:
    """One page of `rows` (given in ascending id order) after `cursor`, in `sort` order."""
    selected: Iterable[Row]
    if sort.field == "id":
        ordered = reversed(rows) if sort.descending else rows
        selected = (row for row in ordered if all(c.holds(row) for c in where))
        if cursor is not None:
            after = cursor.last_id
            if sort.descending:
                selected = (row for row in selected if row["id"] < after)
            else:
                selected = (row for row in selected if row["id"] > after)
    else:
        matched = sorted(
            (row for row in rows if all(c.holds(row) for c in where)),
            key=lambda row: (sort.key(row), row["id"]),
            reverse=sort.descending,
        )
        selected = matched
        if cursor is not None:
            position = (_cursor_value(cursor, sort, lookup), cursor.last_id)
            if sort.descending:
                selected = [row for row in matched if (sort.key(row), row["id"]) < position]
            else:
                selected = [row for row in matched if (sort.key(row), row["id"]) > position]
    page: list[Row] = []
    has_more = False
    for row in selected:
        if len(page) == limit:
            has_more = True
            break
        page.append(row)
    next_cursor = None
    if has_more:
        last = page[-1]
        payload: dict[str, Any] = {"id": last["id"]}
        if sort.field != "id":
            payload[sort.field] = sort.key(last)
        next_cursor = encode_cursor(payload)
    return Page(page, has_more, next_cursor)


def _cursor_value(cursor: Cursor, sort: Sort, lookup: Callable[[Any], Row | None]) -> Any:
    """The sort value the cursor stopped at: carried by it, else read from the row it names."""
    if sort.field in cursor.values:
        value = cursor.values[sort.field]
        if isinstance(value, int | str):
            return value
        raise ApiError.of(400, "Invalid cursor")
    row = lookup(cursor.last_id)
    if row is None:
        raise ApiError.of(400, "Invalid cursor")
    return sort.key(row)
