"""The `batches` and `batch_files` tables and the batch state machine.

    PENDING → VALIDATING → VALIDATED → PROCESSING → COMPLETED
       └──────────┴────────────┴───────────┴──────→ FAILED

Every transition is one guarded UPDATE (`WHERE status = ANY(allowed sources)`): a status never goes
backwards and a finished batch is never redone. VALIDATING → VALIDATING and PROCESSING → PROCESSING
are allowed so a worker can take over a message redelivered after its predecessor died.

A worker starts its work with `claim()`, which counts the attempt (`attempts`) in the claiming UPDATE:
a worker killed mid-way leaves its count behind, where neither the in-process bus (nothing survives a
restart) nor every broker (a consumer that died is not always a delivery) keeps one. So a batch whose
work kills its worker is claimed at most `limit` times, then abandoned (FAILED with the reason).
`attempts` counts the claims since the batch entered its current status: a move to another status
to work from resets it, a final status keeps the last count.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import asyncpg

from comptaflow.common.contracts import BatchKind, BatchStatus
from comptaflow.common.db import Conn
from comptaflow.common.errors import PermanentError

S = BatchStatus
TRANSITIONS: dict[BatchStatus, frozenset[BatchStatus]] = {
    S.PENDING: frozenset({S.VALIDATING, S.FAILED}),
    S.VALIDATING: frozenset({S.VALIDATING, S.VALIDATED, S.FAILED}),
    S.VALIDATED: frozenset({S.PROCESSING, S.FAILED}),
    S.PROCESSING: frozenset({S.PROCESSING, S.COMPLETED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
}


def sources_of(target: BatchStatus) -> list[str]:
    """The statuses from which `target` may be reached."""
    return [s.value for s, targets in TRANSITIONS.items() if target in targets]


# What a worker does while a batch is in each claimable status, as the reason of an abandoned batch says it.
_WORK: dict[BatchStatus, str] = {S.VALIDATING: "validation", S.PROCESSING: "loading"}


class AttemptsExhausted(PermanentError):
    """The work of a batch was started `limit` times without finishing: it is abandoned, not tried again."""


def abandoned_reason(status: BatchStatus, attempts: int) -> str:
    """Why a batch whose work in `status` was started `attempts` times is abandoned (no exception text:
    each attempt ended with its process, so there is none to give)."""
    return (
        f"{_WORK[status]} was started {attempts} times without finishing (the worker stopped each time);"
        " the batch is abandoned"
    )


@dataclass(frozen=True, slots=True)
class BatchFile:
    field: str
    filename: str
    size: int
    sha256: str
    object_key: str


@dataclass(frozen=True, slots=True)
class Batch:
    id: uuid.UUID
    tenant_id: str
    kind: BatchKind
    status: BatchStatus
    stage: str
    progress: float
    period_start: date | None
    period_end: date | None
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    stats: dict[str, Any]
    options: dict[str, Any]
    auto_load: bool
    created_by: str | None
    status_seq: int
    created_at: datetime
    updated_at: datetime
    files: tuple[BatchFile, ...] = field(default=())


_COLUMNS = (
    "id, tenant_id, kind, status, stage, progress, period_start, period_end, errors, warnings, stats,"
    " options, auto_load, created_by, status_seq, created_at, updated_at"
)


def _batch(row: asyncpg.Record, files: Sequence[BatchFile] = ()) -> Batch:
    return Batch(
        id=row["id"],
        tenant_id=row["tenant_id"],
        kind=BatchKind(row["kind"]),
        status=BatchStatus(row["status"]),
        stage=row["stage"],
        progress=row["progress"],
        period_start=row["period_start"],
        period_end=row["period_end"],
        errors=row["errors"],
        warnings=row["warnings"],
        stats=row["stats"],
        options=row["options"],
        auto_load=row["auto_load"],
        created_by=row["created_by"],
        status_seq=row["status_seq"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        files=tuple(files),
    )


async def insert_batch(
    conn: Conn,
    *,
    batch_id: uuid.UUID,
    tenant_id: str,
    kind: BatchKind,
    files: Sequence[BatchFile],
    auto_load: bool,
    created_by: str | None,
    options: dict[str, Any] | None = None,
) -> Batch:
    """Insert a PENDING batch and its files (call inside the transaction that also enqueues its event)."""
    row = await conn.fetchrow(
        # _COLUMNS is a constant of this module; every value is a bound parameter.
        f"INSERT INTO batches (id, tenant_id, kind, status, stage, auto_load, created_by, options)"  # noqa: S608
        f" VALUES ($1, $2, $3, 'PENDING', 'uploaded', $4, $5, $6) RETURNING {_COLUMNS}",
        batch_id,
        tenant_id,
        kind.value,
        auto_load,
        created_by,
        options or {},
    )
    assert row is not None
    await conn.executemany(
        "INSERT INTO batch_files (batch_id, field, filename, size, sha256, object_key) VALUES ($1, $2, $3, $4, $5, $6)",
        [(batch_id, f.field, f.filename, f.size, f.sha256, f.object_key) for f in files],
    )
    return _batch(row, files)


async def _files(conn: Conn, batch_id: uuid.UUID) -> list[BatchFile]:
    rows = await conn.fetch(
        "SELECT field, filename, size, sha256, object_key FROM batch_files WHERE batch_id = $1 ORDER BY field",
        batch_id,
    )
    return [BatchFile(r["field"], r["filename"], r["size"], r["sha256"], r["object_key"]) for r in rows]


async def get_batch(conn: Conn, batch_id: uuid.UUID) -> Batch | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM batches WHERE id = $1", batch_id)  # noqa: S608 — constant columns
    if row is None:
        return None
    return _batch(row, await _files(conn, batch_id))


async def transition(
    conn: Conn,
    batch_id: uuid.UUID,
    target: BatchStatus,
    *,
    stage: str,
    progress: float,
    period: tuple[date, date] | None = None,
    errors: list[dict[str, Any]] | None = None,
    warnings: list[dict[str, Any]] | None = None,
    stats: dict[str, Any] | None = None,
) -> Batch | None:
    """Move a batch to `target` if its current status allows it; None if it does not (or no batch)."""
    # _COLUMNS is a constant of this module; every value is a bound parameter.
    row = await conn.fetchrow(
        f"""
        UPDATE batches SET
            status = $2, stage = $3, progress = $4,
            period_start = COALESCE($5, period_start), period_end = COALESCE($6, period_end),
            errors = COALESCE($7, errors), warnings = COALESCE($8, warnings), stats = COALESCE($9, stats),
            attempts = CASE WHEN status = $2 OR $2 IN ('COMPLETED', 'FAILED') THEN attempts ELSE 0 END,
            status_seq = status_seq + 1, updated_at = now()
        WHERE id = $1 AND status = ANY($10::text[])
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        batch_id,
        target.value,
        stage,
        progress,
        period[0] if period else None,
        period[1] if period else None,
        errors,
        warnings,
        stats,
        sources_of(target),
    )
    return None if row is None else _batch(row)


async def claim(
    conn: Conn, batch_id: uuid.UUID, target: BatchStatus, *, stage: str, progress: float, limit: int
) -> Batch | None:
    """Move a batch to `target` to work on it, counting the attempt in the same UPDATE.

    None if its status does not allow it (already past this step, or no batch). Raises `AttemptsExhausted`
    when the batch was claimed for `target` `limit` times already: the caller fails it with the reason
    (`or_give_up`) instead of running, for the `limit + 1`-th time, work that never finished.
    """
    # _COLUMNS is a constant of this module; every value is a bound parameter.
    row = await conn.fetchrow(
        f"""
        UPDATE batches SET status = $2, stage = $3, progress = $4, attempts = attempts + 1,
               status_seq = status_seq + 1, updated_at = now()
        WHERE id = $1 AND status = ANY($5::text[]) AND attempts < $6
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        batch_id,
        target.value,
        stage,
        progress,
        sources_of(target),
        limit,
    )
    if row is not None:
        return _batch(row)
    attempts: int | None = await conn.fetchval(
        "SELECT attempts FROM batches WHERE id = $1 AND status = ANY($2::text[])", batch_id, sources_of(target)
    )
    if attempts is not None:
        raise AttemptsExhausted(abandoned_reason(target, attempts))
    return None


async def abandon_exhausted(conn: Conn, status: BatchStatus, *, limit: int) -> list[Batch]:
    """Fail every batch in `status` claimed `limit` times already, with the reason; return them (FAILED).

    For a start-up that would otherwise hand such a batch to a worker again (`reannounce_unfinished`);
    call it inside a transaction, which keeps the rows locked from their selection to their failure.
    """
    rows = await conn.fetch(
        "SELECT id, attempts FROM batches WHERE status = $1 AND attempts >= $2 ORDER BY created_at, id FOR UPDATE",
        status.value,
        limit,
    )
    failed: list[Batch] = []
    for row in rows:
        error = {"code": "INTERNAL_ERROR", "message": abandoned_reason(status, row["attempts"])}
        done = await transition(conn, row["id"], S.FAILED, stage="failed", progress=1.0, errors=[error])
        if done is not None:
            failed.append(done)
    return failed


async def record_progress(
    conn: Conn, batch_id: uuid.UUID, *, expect: BatchStatus, stage: str, progress: float
) -> int | None:
    """Record a stage while the batch is in `expect`; progress never decreases. Returns the event seq."""
    value: int | None = await conn.fetchval(
        """
        UPDATE batches SET stage = $3, progress = GREATEST(progress, $4),
               status_seq = status_seq + 1, updated_at = now()
        WHERE id = $1 AND status = $2
        RETURNING status_seq
        """,
        batch_id,
        expect.value,
        stage,
        progress,
    )
    return value


async def list_batches(
    conn: Conn,
    tenant_id: str,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[Batch]:
    """A tenant's batches, newest first (`created_at DESC, id DESC`), with their files.

    `before` is the (created_at, id) of the last batch of the previous page (keyset pagination).
    """
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM batches WHERE tenant_id = $1"  # noqa: S608 — constant columns
        " AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))"
        " ORDER BY created_at DESC, id DESC LIMIT $4",
        tenant_id,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    ids = [r["id"] for r in rows]
    files: dict[uuid.UUID, list[BatchFile]] = {i: [] for i in ids}
    if ids:
        file_rows = await conn.fetch(
            "SELECT batch_id, field, filename, size, sha256, object_key FROM batch_files"
            " WHERE batch_id = ANY($1::uuid[]) ORDER BY batch_id, field",
            ids,
        )
        for r in file_rows:
            files[r["batch_id"]].append(BatchFile(r["field"], r["filename"], r["size"], r["sha256"], r["object_key"]))
    return [_batch(r, files[r["id"]]) for r in rows]


# -- housekeeping (comptaflow.common.housekeeping): the stored objects of batches FAILED long ago ----------

FILES_REMOVED = "files_removed"
"""The `stats` key recording that the stored objects of a FAILED batch were removed; present = done."""


async def failed_with_files(conn: Conn, *, failed_before: datetime, limit: int) -> list[uuid.UUID]:
    """FAILED batches that failed before `failed_before` and still have their objects, oldest failure first.

    FAILED is final, so nothing moves a FAILED batch's `updated_at` but the removal recorded here: until
    then it is the time the batch failed.
    """
    rows = await conn.fetch(
        f"SELECT id FROM batches WHERE status = 'FAILED' AND updated_at < $1 AND NOT stats ? '{FILES_REMOVED}'"  # noqa: S608 — constant key
        " ORDER BY updated_at, id LIMIT $2",
        failed_before,
        limit,
    )
    return [row["id"] for row in rows]


async def lock_failed_with_files(conn: Conn, batch_id: uuid.UUID) -> Batch | None:
    """The batch, row-locked until the end of the transaction, if it is FAILED with its objects not yet removed
    and no other transaction holds it (`SKIP LOCKED`: two sweepers never work on one batch); else None."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM batches WHERE id = $1 AND status = 'FAILED'"  # noqa: S608 — constant columns and key
        f" AND NOT stats ? '{FILES_REMOVED}' FOR UPDATE SKIP LOCKED",
        batch_id,
    )
    if row is None:
        return None
    return _batch(row, await _files(conn, batch_id))


async def record_files_removed(conn: Conn, batch_id: uuid.UUID, note: dict[str, Any]) -> bool:
    """Record `note` under `stats.files_removed` of a FAILED batch (once: False if it was already there)."""
    done: uuid.UUID | None = await conn.fetchval(
        f"UPDATE batches SET stats = stats || jsonb_build_object('{FILES_REMOVED}', $2::jsonb), updated_at = now()"  # noqa: S608 — constant key
        f" WHERE id = $1 AND status = 'FAILED' AND NOT stats ? '{FILES_REMOVED}' RETURNING id",
        batch_id,
        note,
    )
    return done is not None


# -- the gateway's load decisions and the files a validator files or a loader prunes -----------------------


async def lock_status(conn: Conn, batch_id: uuid.UUID) -> tuple[BatchStatus, date | None, date | None] | None:
    """Lock the batch's row until the end of the transaction; return its status and period (None: no batch)."""
    row = await conn.fetchrow("SELECT status, period_start, period_end FROM batches WHERE id = $1 FOR UPDATE", batch_id)
    return None if row is None else (BatchStatus(row["status"]), row["period_start"], row["period_end"])


async def processing_overlap(
    conn: Conn, tenant_id: str, period_start: date, period_end: date, *, excluding: uuid.UUID | None = None
) -> uuid.UUID | None:
    """The oldest PROCESSING batch of the tenant but `excluding` whose period overlaps [start, end] (bounds
    included), if any."""
    found: uuid.UUID | None = await conn.fetchval(
        """
        SELECT id FROM batches
        WHERE tenant_id = $1 AND status = 'PROCESSING'
          AND period_start <= $3 AND period_end >= $2
          AND ($4::uuid IS NULL OR id <> $4::uuid)
        ORDER BY created_at LIMIT 1
        """,
        tenant_id,
        period_start,
        period_end,
        excluding,
    )
    return found


async def file_owner(conn: Conn, object_key: str, *, excluding: uuid.UUID) -> uuid.UUID | None:
    """A batch other than `excluding` one of whose files is stored at `object_key`, if any."""
    owner: uuid.UUID | None = await conn.fetchval(
        "SELECT batch_id FROM batch_files WHERE object_key = $1 AND batch_id <> $2", object_key, excluding
    )
    return owner


async def repoint_file(conn: Conn, batch_id: uuid.UUID, old_key: str, new_key: str) -> None:
    """Point the batch's file stored at `old_key` to `new_key` (where its object was copied)."""
    await conn.execute(
        "UPDATE batch_files SET object_key = $3 WHERE batch_id = $1 AND object_key = $2", batch_id, old_key, new_key
    )


async def set_file_keys(conn: Conn, batch_id: uuid.UUID, keys: dict[str, str]) -> None:
    """Point each file of the batch named in `keys` (field → object key) to its new key."""
    await conn.executemany(
        "UPDATE batch_files SET object_key = $3 WHERE batch_id = $1 AND field = $2",
        [(batch_id, field, key) for field, key in keys.items()],
    )


async def keys_of_other_batches(conn: Conn, keys: Sequence[str], *, excluding: uuid.UUID) -> set[str]:
    """Those of `keys` at which a file of a batch other than `excluding` is stored."""
    rows = await conn.fetch(
        "SELECT object_key FROM batch_files WHERE object_key = ANY($1::text[]) AND batch_id <> $2",
        list(keys),
        excluding,
    )
    return {row["object_key"] for row in rows}


@dataclass(frozen=True, slots=True)
class Unfinished:
    id: uuid.UUID
    tenant_id: str
    kind: BatchKind
    auto_load: bool


async def unfinished_uploads(conn: Conn) -> list[Unfinished]:
    """Batches not validated yet (PENDING or VALIDATING): what a restart of the in-process bus announces again."""
    rows = await conn.fetch(
        "SELECT id, tenant_id, kind, auto_load FROM batches"
        " WHERE status IN ('PENDING', 'VALIDATING') ORDER BY created_at"
    )
    return [Unfinished(r["id"], r["tenant_id"], BatchKind(r["kind"]), r["auto_load"]) for r in rows]
