"""Bulk writes into a tenant's schema: pages spooled as they arrive, applied at once, with the checkpoint.

A `Unit` gathers the tables synced together (an invoice table and its lines, the ledger lines and their
entries): every page fetched is checked and written in PostgreSQL's binary COPY format to a temporary
file (in memory up to `SPOOL_BYTES`), so a sync holds no database connection while it waits on the API.
`apply()`, in the caller's transaction, COPYs a table's rows into a temporary table (`ON COMMIT DROP`),
updates the rows that changed with one `UPDATE … FROM`, inserts the new ones with one `INSERT … SELECT`
and deletes what vanished with one `DELETE`; the caller records the tables' state in the same
transaction. Readers see the tables before or after, never half; a failure (or
a process killed) rolls everything back, checkpoint included.

Only keys, the plain columns of `schema.EXTRA` and the raw `item` are written: the typed columns are
generated from `item` by the schema's migrations. Identifiers come from `schema.KEYS`/`EXTRA` and
`connections.schema_name`, never from the API; every value is bound or COPYed.
"""

from __future__ import annotations

import json
import struct
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from comptaflow.common.db import Conn
from comptaflow.common.errors import PermanentError
from comptaflow.pennylane_sync import schema

SPOOL_BYTES = 8 * 1024**2


class BadItem(PermanentError):
    """An item the API sent that cannot be stored as it is (a key missing, a value of the wrong type)."""


@dataclass(slots=True)
class Written:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    rows: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"inserted": self.inserted, "updated": self.updated, "deleted": self.deleted}


@dataclass(frozen=True, slots=True)
class DeleteAll:
    """Delete the rows not staged: the table was listed whole."""


@dataclass(frozen=True, slots=True)
class DeleteWithin:
    """Delete the rows not staged among those whose `column` (a bigint) is one of `values` (the parents
    re-fetched: an invoice's lines, a fiscal year's trial balance)."""

    column: str
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DeleteIds:
    """Delete these ids (changelog deletes and records that no longer exist)."""

    ids: tuple[int, ...]


Deletion = DeleteAll | DeleteWithin | DeleteIds


_EPOCH = date(2000, 1, 1)
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
_NULL = struct.pack("!i", -1)
_TYPES: dict[str, str] = {
    "id": "int8",
    "invoice_id": "int8",
    "fiscal_year_id": "int8",
    "line_no": "int4",
    "number": "text",
    "period_start": "date",
    "period_end": "date",
}
"""The PostgreSQL type of every plain column of `schema.KEYS`/`EXTRA` (checked against the tables in the tests)."""


def _affected(status: str) -> int:
    """The rows a statement changed, from its command tag (`UPDATE 12`, `INSERT 0 12`, `DELETE 12`)."""
    return int(status.rsplit(" ", 1)[-1])


def _encode(column: str, value: Any) -> bytes:
    """One field of PostgreSQL's binary COPY format."""
    if value is None:
        return _NULL
    kind = _TYPES[column]
    if kind == "int8":
        data = struct.pack("!q", value)
    elif kind == "int4":
        data = struct.pack("!i", value)
    elif kind == "date":
        data = struct.pack("!i", (value - _EPOCH).days)
    else:
        data = str(value).encode("utf-8")
    return struct.pack("!i", len(data)) + data


def _row(
    table: str, item: Mapping[str, Any], extra: Mapping[str, Any], columns: Sequence[str]
) -> tuple[tuple[Any, ...], bytes]:
    """The key of an item and its binary COPY tuple (its plain columns, then `item` as jsonb)."""
    missing = schema.missing_keys(table, item)
    label = item.get("id", item.get("number", "?"))
    if missing:
        raise BadItem(f"an item of {table} ({label}) lacks {', '.join(sorted(missing))}")
    values: list[Any] = []
    for column in columns:
        value = extra[column] if column in extra else item.get(column)
        kind = _TYPES[column]
        if kind.startswith("int") and (not isinstance(value, int) or isinstance(value, bool)):
            raise BadItem(f"an item of {table} has a {column} that is not an integer: {value!r:.40}")
        if kind == "text" and not isinstance(value, str):
            raise BadItem(f"an item of {table} has a {column} that is not text: {value!r:.40}")
        values.append(value)
    fields = [_encode(c, v) for c, v in zip(columns, values, strict=True)]
    document = b"\x01" + json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    tuple_ = struct.pack("!h", len(columns) + 1) + b"".join(fields) + struct.pack("!i", len(document)) + document
    return tuple(values), tuple_


@dataclass(slots=True)
class _Stage:
    table: str
    temp: str
    columns: tuple[str, ...]
    keys: tuple[str, ...]
    spool: Any = field(default_factory=lambda: tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+b"))  # noqa: SIM115 — closed by Unit.close
    deletion: Deletion | None = None
    staged: int = 0
    seen: set[tuple[Any, ...]] = field(default_factory=set)
    repeated: bool = False
    """A key was staged twice (pages drifting while listed): deduplicated before the write."""

    def __post_init__(self) -> None:
        self.spool.write(_HEADER)

    def write(self, rows: Iterable[tuple[tuple[Any, ...], bytes]]) -> int:
        width = len(self.keys)
        chunks = []
        for values, encoded in rows:
            key = values[:width]
            if key in self.seen:
                self.repeated = True
            self.seen.add(key)
            chunks.append(encoded)
        self.spool.write(b"".join(chunks))
        self.staged += len(chunks)
        return len(chunks)


class Unit:
    """Tables written together (see the module docstring): `add` while fetching, `apply` in one transaction."""

    def __init__(self, schema_name: str) -> None:
        self._schema = schema_name
        self._stages: dict[str, _Stage] = {}

    def close(self) -> None:
        for stage in self._stages.values():
            stage.spool.close()
        self._stages.clear()

    def _stage(self, table: str) -> _Stage:
        stage = self._stages.get(table)
        if stage is None:
            keys = schema.KEYS[table]
            columns = (*keys, *schema.EXTRA[table])
            stage = self._stages[table] = _Stage(table, f"stage_{table}", columns, keys)
        return stage

    def add(self, table: str, items: Iterable[Mapping[str, Any]], **extra: Any) -> int:
        """Check and spool items of `table` (`extra`: its plain columns, e.g. `invoice_id`)."""
        stage = self._stage(table)
        return stage.write(_row(table, item, extra, stage.columns) for item in items)

    def add_rows(self, table: str, rows: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> int:
        """Like `add`, each item with its own plain columns (`(item, extra)` pairs)."""
        stage = self._stage(table)
        return stage.write(_row(table, item, extra, stage.columns) for item, extra in rows)

    def touch(self, table: str, deletion: Deletion) -> None:
        """The table takes part even with nothing spooled, and what to delete when applied."""
        self._stage(table).deletion = deletion

    async def apply(self, conn: Conn, table: str, synced_at: datetime) -> Written:
        """Write the spooled rows of `table` and delete per its deletion, in the caller's transaction (the
        tenant's sync lock makes this the only writer of the schema); the table's counts after.

        Changed rows are updated, new ones inserted, unchanged ones not touched: their typed columns are
        not computed again and their `synced_at` stays when their data last changed.
        """
        stage = self._stage(table)
        keys = stage.keys
        extras = schema.EXTRA[table]
        target = f"{self._schema}.{table}"
        listed = ", ".join(stage.columns)
        matched = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        changed = " OR ".join(f"t.{c} IS DISTINCT FROM s.{c}" for c in ("item", *extras))
        assignments = ", ".join(f"{c} = s.{c}" for c in ("item", *extras))
        # Same column types as the target's keys and plain columns, `item` jsonb.
        await conn.execute(
            f"CREATE TEMP TABLE {stage.temp} ON COMMIT DROP AS"  # noqa: S608 — identifiers from schema constants
            f" SELECT {listed}, item FROM {target} WITH NO DATA"
        )
        written = Written()
        if stage.staged:
            stage.spool.write(_TRAILER)
            stage.spool.seek(0)
            await conn.copy_to_table(stage.temp, source=stage.spool, columns=[*stage.columns, "item"], format="binary")
            if stage.repeated:
                # A record staged twice is written once (the last one staged; ctid follows the COPY's order).
                await conn.execute(
                    f"DELETE FROM {stage.temp} a USING {stage.temp} b"  # noqa: S608 — schema constants
                    f" WHERE a.ctid < b.ctid AND " + " AND ".join(f"a.{k} = b.{k}" for k in keys)
                )
            # Its key indexed and its statistics known, the planner joins the stage with the table by hash
            # or index; without them it guesses an empty temporary table and loops over it per row.
            await conn.execute(f"CREATE UNIQUE INDEX ON {stage.temp} ({', '.join(keys)})")
            await conn.execute(f"ANALYZE {stage.temp}")
            status = await conn.execute(
                f"UPDATE {target} t SET {assignments}, synced_at = $1 FROM {stage.temp} s"  # noqa: S608
                f" WHERE {matched} AND ({changed})",
                synced_at,
            )
            written.updated = _affected(status)
            status = await conn.execute(
                f"INSERT INTO {target} ({listed}, item, synced_at) SELECT {listed}, item, $1 FROM {stage.temp} s"  # noqa: S608
                f" WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {matched})",
                synced_at,
            )
            written.inserted = _affected(status)
        written.deleted = await self._delete(conn, stage, target, keys)
        written.rows = await conn.fetchval(f"SELECT count(*) FROM {target}")  # noqa: S608
        return written

    async def _delete(self, conn: Conn, stage: _Stage, target: str, keys: tuple[str, ...]) -> int:
        deletion = stage.deletion
        if deletion is None:
            return 0
        matched = " AND ".join(f"s.{k} = t.{k}" for k in keys)
        absent = f"NOT EXISTS (SELECT 1 FROM {stage.temp} s WHERE {matched})"  # noqa: S608 — schema constants
        if isinstance(deletion, DeleteIds):
            if not deletion.ids:
                return 0
            status = await conn.execute(
                f"DELETE FROM {target} t WHERE t.id = ANY($1::bigint[]) AND {absent}",  # noqa: S608
                list(deletion.ids),
            )
        elif isinstance(deletion, DeleteWithin):
            if not deletion.values:
                return 0
            status = await conn.execute(
                f"DELETE FROM {target} t WHERE t.{deletion.column} = ANY($1::bigint[]) AND {absent}",  # noqa: S608
                list(deletion.values),
            )
        else:
            status = await conn.execute(f"DELETE FROM {target} t WHERE {absent}")  # noqa: S608
        return _affected(status)
