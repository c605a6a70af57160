"""The fake's state: its clock, its companies (each with its tables, changelog and lettering), tokens.

Rows are plain dicts of typed values (`Decimal` money, `date`, aware `datetime`), keyed by id in one
dict per resource; ids only grow, so a table's insertion order is ascending id. `views` turns a row into
what the API serves.

The changelog follows the spec: events `insert`/`update`/`delete` with `processed_at` strictly increasing
(per company), kept for `RETENTION` (28 days) of the fake clock, and only for `CHANGELOG_RESOURCES`; the
other tables change without events, as in Pennylane.
"""

from __future__ import annotations

import bisect
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

Row = dict[str, Any]

CHANGELOG_RESOURCES: tuple[str, ...] = (
    "customers",
    "suppliers",
    "customer_invoices",
    "supplier_invoices",
    "products",
    "transactions",
    "ledger_entry_lines",
)
TABLES: tuple[str, ...] = (
    *CHANGELOG_RESOURCES,
    "customer_invoice_lines",
    "supplier_invoice_lines",
    "ledger_entries",
    "ledger_accounts",
    "journals",
    "bank_accounts",
    "fiscal_years",
    "categories",
)
RETENTION = timedelta(days=28)
# Ids: 10^10 per company (by the order companies were added), 10^8 per table within it; so ids never
# repeat across the companies of one fake, and the first company of every fake has the same ones.
_ID_BASES: dict[str, int] = {name: (index + 1) * 100_000_000 for index, name in enumerate(TABLES)}
_COMPANY_ID_SPAN = 10_000_000_000
_TICK = timedelta(microseconds=1)


class Clock:
    """Real UTC time plus an offset that `advance` moves (the fake's "now")."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._offset = timedelta(seconds=offset_seconds)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    @property
    def offset_seconds(self) -> float:
        with self._lock:
            return self._offset.total_seconds()

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    id: int
    operation: str  # insert | update | delete
    processed_at: datetime
    updated_at: datetime
    created_at: datetime


@dataclass(slots=True)
class Lettering:
    """Ledger entry lines lettered together (matched: an invoice and its payment)."""

    id: int
    code: str
    on: date
    line_ids: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    company_id: int
    scopes: tuple[str, ...]

    def allows(self, scope: str) -> bool:
        """`x:readonly` is granted by `x:readonly` or `x:all`; any other scope only by itself."""
        if scope in self.scopes:
            return True
        family, _, level = scope.partition(":")
        return level == "readonly" and f"{family}:all" in self.scopes


def lettering_code(index: int) -> str:
    """0 → "AAA", 1 → "AAB", …: the EcritureLet of the index-th lettering."""
    letters = []
    for _ in range(3):
        index, rest = divmod(index, 26)
        letters.append(chr(ord("A") + rest))
    return "".join(reversed(letters))


class Company:
    """One Pennylane company: what a token of it can read."""

    def __init__(
        self, *, company_id: int, name: str, reg_no: str, seed: int, size: str, user: Row, ordinal: int = 1
    ) -> None:
        self.id = company_id
        self.name = name
        self.reg_no = reg_no
        self.seed = seed
        self.size = size
        self.user = user
        self.tables: dict[str, dict[int, Row]] = {name: {} for name in TABLES}
        self.changelog: dict[str, list[Event]] = {name: [] for name in CHANGELOG_RESOURCES}
        self.letterings: dict[int, Lettering] = {}
        self.accounts_by_number: dict[str, int] = {}
        self.journal_ids: dict[str, int] = {}
        self.counters: dict[str, int] = {}
        self.recording = False  # bulk generation writes no events; `rebuild_history` derives them
        self.rng = random.Random(f"{seed}:mutations")  # noqa: S311 - seeded test data, not security
        self._id_rng = random.Random(f"{seed}:ids")  # noqa: S311 - same
        self._next_ids = {name: ordinal * _COMPANY_ID_SPAN + base for name, base in _ID_BASES.items()}
        self._seq = 0
        self._last_processed: datetime | None = None

    # --- ids and rows -------------------------------------------------------------------------------

    def next_count(self, key: str) -> int:
        """1, 2, 3, … per key (third-party account numbers, invoice numbers per year)."""
        self.counters[key] = self.counters.get(key, 0) + 1
        return self.counters[key]

    def new_id(self, resource: str) -> int:
        self._next_ids[resource] += self._id_rng.randint(1, 3)
        return self._next_ids[resource]

    def rows(self, resource: str) -> dict[int, Row]:
        return self.tables[resource]

    def get(self, resource: str, row_id: int) -> Row | None:
        return self.tables[resource].get(row_id)

    def insert(self, resource: str, row: Row) -> Row:
        self.tables[resource][row["id"]] = row
        if resource == "ledger_accounts":
            self.accounts_by_number[row["number"]] = row["id"]
        elif resource == "journals":
            self.journal_ids[row["code"]] = row["id"]
        self._record(resource, "insert", row, row["created_at"])
        return row

    def touch(self, resource: str, row: Row, at: datetime) -> None:
        """`row` was changed at `at`: its updated_at moves and, for a changelog resource, an update event."""
        row["updated_at"] = max(at, row["created_at"])
        self._record(resource, "update", row, at)

    def delete(self, resource: str, row_id: int, at: datetime) -> Row | None:
        row = self.tables[resource].pop(row_id, None)
        if row is None:
            return None
        if resource == "ledger_accounts":
            self.accounts_by_number.pop(row["number"], None)
        elif resource == "journals":
            self.journal_ids.pop(row["code"], None)
        elif resource == "ledger_entry_lines" and row.get("lettering_id") is not None:
            self.unletter(row, at)
        gone = dict(row, updated_at=max(at, row["created_at"]))
        self._record(resource, "delete", gone, at)
        return row

    # --- lettering ----------------------------------------------------------------------------------

    def letter(self, lines: list[Row], on: date) -> Lettering:
        lettering = Lettering(id=len(self.letterings) + 1, code=lettering_code(len(self.letterings)), on=on)
        self.letterings[lettering.id] = lettering
        for line in lines:
            lettering.line_ids.add(line["id"])
            line["lettering_id"] = lettering.id
        return lettering

    def unletter(self, line: Row, at: datetime) -> None:
        """`line` leaves its lettering; a line left lettered alone is unlettered too (a change of it)."""
        lettering = self.letterings.get(line.get("lettering_id") or 0)
        line["lettering_id"] = None
        if lettering is None:
            return
        lettering.line_ids.discard(line["id"])
        if len(lettering.line_ids) == 1:
            alone = self.tables["ledger_entry_lines"].get(lettering.line_ids.pop())
            if alone is not None:
                alone["lettering_id"] = None
                self.touch("ledger_entry_lines", alone, at)

    def lettered_with(self, line: Row) -> list[int]:
        lettering = self.letterings.get(line.get("lettering_id") or 0)
        if lettering is None:
            return []
        return sorted(other for other in lettering.line_ids if other != line["id"])

    # --- changelog ----------------------------------------------------------------------------------

    def _record(self, resource: str, operation: str, row: Row, at: datetime) -> None:
        if not self.recording or resource not in self.changelog:
            return
        processed = at if self._last_processed is None else max(at, self._last_processed + _TICK)
        self._append(resource, operation, row, processed)

    def _append(self, resource: str, operation: str, row: Row, processed: datetime) -> None:
        self._seq += 1
        self._last_processed = processed
        self.changelog[resource].append(
            Event(
                seq=self._seq,
                id=row["id"],
                operation=operation,
                processed_at=processed,
                updated_at=row["updated_at"] if operation != "insert" else row["created_at"],
                created_at=row["created_at"],
            )
        )

    def rebuild_history(self, rng: random.Random) -> None:
        """Events for the generated rows (an insert at created_at, an update at a later updated_at, each
        processed 0.2 to 3 s later), in processed_at order; then start recording live changes."""
        pending: list[tuple[datetime, str, str, Row]] = []
        for resource in CHANGELOG_RESOURCES:
            for row in self.tables[resource].values():
                lag = timedelta(milliseconds=rng.randint(200, 3000))
                pending.append((row["created_at"] + lag, resource, "insert", row))
                if row["updated_at"] > row["created_at"]:
                    pending.append((row["updated_at"] + lag, resource, "update", row))
        pending.sort(key=lambda item: (item[0], item[1], item[3]["id"], item[2] != "insert"))
        for wanted, resource, operation, row in pending:
            processed = wanted
            if self._last_processed is not None and processed <= self._last_processed:
                processed = self._last_processed + _TICK
            self._append(resource, operation, row, processed)
        self.recording = True

    def events(self, resource: str, *, since: datetime, after_seq: int = 0) -> Iterator[Event]:
        """Events of `resource` processed at or after `since` with a seq above `after_seq`, oldest first."""
        events = self.changelog[resource]
        start = max(
            bisect.bisect_left(events, since, key=lambda event: event.processed_at),
            bisect.bisect_right(events, after_seq, key=lambda event: event.seq),
        )
        for index in range(start, len(events)):
            yield events[index]
