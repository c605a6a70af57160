"""The `loaded_periods` and `backups` tables: which load of each period is current, and the earlier ones.

A load writes immutable rows into the warehouse tagged with `load_id` = its batch id; the row of
`loaded_periods` is the pointer to the current load of a period. Readers resolve the current batch ids
here (`current_load_ids`), then read the warehouse rows of those loads only: they see the old load or
the new one, never a mix nor a partial load.

`switch()` (a load becomes current) and `restore()` (a backup becomes current again) each run inside the
caller's transaction and lock the period's pointer row first (`FOR UPDATE`), so that the pointer, the
backup rows and the batch status change together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

from comptaflow.common.db import Conn


@dataclass(frozen=True, slots=True)
class BackupView:
    backup_id: uuid.UUID
    batch_id: uuid.UUID
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PeriodView:
    period_start: date
    period_end: date
    batch_id: uuid.UUID
    loaded_at: datetime
    kind: str
    backups: list[BackupView] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Backup:
    id: uuid.UUID
    tenant_id: str
    period_start: date
    period_end: date
    batch_id: uuid.UUID
    replaced_by: uuid.UUID
    s3_prefix: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Switched:
    """Outcome of `switch()`: the load it replaced (None for a first load) and the backup row kept for it."""

    replaced: uuid.UUID | None
    backup_id: uuid.UUID | None


async def current_load_ids(conn: Conn, tenant_id: str, start: date | None, end: date | None) -> list[uuid.UUID]:
    """Batch ids of the tenant's current loads whose period overlaps [start, end] (None = unbounded)."""
    rows = await conn.fetch(
        "SELECT batch_id FROM loaded_periods WHERE tenant_id = $1"
        " AND ($2::date IS NULL OR period_end >= $2::date)"
        " AND ($3::date IS NULL OR period_start <= $3::date)"
        " ORDER BY period_start",
        tenant_id,
        start,
        end,
    )
    return [r["batch_id"] for r in rows]


async def current_load(conn: Conn, tenant_id: str, start: date, end: date) -> uuid.UUID | None:
    """The batch id of the current load of exactly this period, if any."""
    value: uuid.UUID | None = await conn.fetchval(
        "SELECT batch_id FROM loaded_periods WHERE tenant_id = $1 AND period_start = $2 AND period_end = $3",
        tenant_id,
        start,
        end,
    )
    return value


async def list_periods(conn: Conn, tenant_id: str) -> list[PeriodView]:
    """The tenant's loaded periods ordered by start, each with its backups newest first."""
    periods = await conn.fetch(
        "SELECT period_start, period_end, batch_id, loaded_at, kind FROM loaded_periods"
        " WHERE tenant_id = $1 ORDER BY period_start, period_end",
        tenant_id,
    )
    backups = await conn.fetch(
        "SELECT id, period_start, period_end, batch_id, created_at FROM backups"
        " WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC",
        tenant_id,
    )
    by_period: dict[tuple[date, date], list[BackupView]] = {}
    for b in backups:
        by_period.setdefault((b["period_start"], b["period_end"]), []).append(
            BackupView(backup_id=b["id"], batch_id=b["batch_id"], created_at=b["created_at"])
        )
    return [
        PeriodView(
            period_start=p["period_start"],
            period_end=p["period_end"],
            batch_id=p["batch_id"],
            loaded_at=p["loaded_at"],
            kind=p["kind"],
            backups=by_period.get((p["period_start"], p["period_end"]), []),
        )
        for p in periods
    ]


_BACKUP_COLUMNS = "id, tenant_id, period_start, period_end, batch_id, replaced_by, s3_prefix, created_at"


async def get_backup(conn: Conn, backup_id: uuid.UUID) -> Backup | None:
    row = await conn.fetchrow(
        f"SELECT {_BACKUP_COLUMNS} FROM backups WHERE id = $1",  # noqa: S608 — constant columns
        backup_id,
    )
    return None if row is None else Backup(**dict(row))


async def lock_period(conn: Conn, tenant_id: str, start: date, end: date) -> uuid.UUID | None:
    """Lock the period's pointer row for the transaction; return its current batch id (None: not loaded)."""
    value: uuid.UUID | None = await conn.fetchval(
        "SELECT batch_id FROM loaded_periods WHERE tenant_id = $1 AND period_start = $2 AND period_end = $3 FOR UPDATE",
        tenant_id,
        start,
        end,
    )
    return value


async def switch(
    conn: Conn,
    *,
    tenant_id: str,
    start: date,
    end: date,
    batch_id: uuid.UUID,
    kind: str,
    backup_prefix: str | None,
) -> Switched:
    """Make `batch_id` the current load of the period (inside the caller's transaction).

    The load it replaces, if any, is kept as a backup whose files were copied under `backup_prefix`.
    """
    replaced = await lock_period(conn, tenant_id, start, end)
    await conn.execute(
        """
        INSERT INTO loaded_periods (tenant_id, period_start, period_end, batch_id, kind, loaded_at)
        VALUES ($1, $2, $3, $4, $5, now())
        ON CONFLICT (tenant_id, period_start, period_end)
        DO UPDATE SET batch_id = EXCLUDED.batch_id, kind = EXCLUDED.kind, loaded_at = EXCLUDED.loaded_at
        """,
        tenant_id,
        start,
        end,
        batch_id,
        kind,
    )
    if replaced is None or replaced == batch_id:
        return Switched(replaced=None, backup_id=None)
    backup_id = await _insert_backup(
        conn,
        tenant_id=tenant_id,
        start=start,
        end=end,
        batch_id=replaced,
        replaced_by=batch_id,
        s3_prefix=backup_prefix or "",
    )
    return Switched(replaced=replaced, backup_id=backup_id)


@dataclass(frozen=True, slots=True)
class Restored:
    """Outcome of `restore()`: the load that became a backup in turn, and that backup's id."""

    replaced: uuid.UUID | None
    backup_id: uuid.UUID | None


async def restore(conn: Conn, backup: Backup, *, kind: str, backup_prefix: str) -> Restored:
    """Make the backup's load current again; the load it replaces becomes a backup (caller's transaction).

    Raises `LookupError` if the backup row vanished meanwhile (a concurrent restore).
    """
    replaced = await lock_period(conn, backup.tenant_id, backup.period_start, backup.period_end)
    deleted = await conn.fetchval("DELETE FROM backups WHERE id = $1 RETURNING id", backup.id)
    if deleted is None:
        raise LookupError(f"backup {backup.id} no longer exists")
    await conn.execute(
        """
        INSERT INTO loaded_periods (tenant_id, period_start, period_end, batch_id, kind, loaded_at)
        VALUES ($1, $2, $3, $4, $5, now())
        ON CONFLICT (tenant_id, period_start, period_end)
        DO UPDATE SET batch_id = EXCLUDED.batch_id, kind = EXCLUDED.kind, loaded_at = EXCLUDED.loaded_at
        """,
        backup.tenant_id,
        backup.period_start,
        backup.period_end,
        backup.batch_id,
        kind,
    )
    if replaced is None or replaced == backup.batch_id:
        return Restored(replaced=None, backup_id=None)
    backup_id = await _insert_backup(
        conn,
        tenant_id=backup.tenant_id,
        start=backup.period_start,
        end=backup.period_end,
        batch_id=replaced,
        replaced_by=backup.batch_id,
        s3_prefix=backup_prefix,
    )
    return Restored(replaced=replaced, backup_id=backup_id)


async def _insert_backup(
    conn: Conn,
    *,
    tenant_id: str,
    start: date,
    end: date,
    batch_id: uuid.UUID,
    replaced_by: uuid.UUID,
    s3_prefix: str,
) -> uuid.UUID:
    backup_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO backups (id, tenant_id, period_start, period_end, batch_id, replaced_by, s3_prefix)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        backup_id,
        tenant_id,
        start,
        end,
        batch_id,
        replaced_by,
        s3_prefix,
    )
    return backup_id


async def prune_backups(conn: Conn, tenant_id: str, start: date, end: date, *, keep: int) -> list[Backup]:
    """Forget the backups of a period beyond the `keep` newest (caller's transaction); return them.

    A backup whose load is current (it cannot be: restoring consumes the row) is never pruned.
    """
    rows = await conn.fetch(
        "DELETE FROM backups WHERE id IN ("  # noqa: S608 — constant columns
        "  SELECT id FROM backups WHERE tenant_id = $1 AND period_start = $2 AND period_end = $3"
        "  ORDER BY created_at DESC, id OFFSET $4"
        ") AND batch_id NOT IN (SELECT batch_id FROM loaded_periods WHERE tenant_id = $1)"
        f" RETURNING {_BACKUP_COLUMNS}",
        tenant_id,
        start,
        end,
        keep,
    )
    return [Backup(**dict(row)) for row in rows]


async def is_current(conn: Conn, tenant_id: str, batch_id: uuid.UUID) -> bool:
    """Whether the batch is the current load of one of the tenant's periods."""
    found: uuid.UUID | None = await conn.fetchval(
        "SELECT batch_id FROM loaded_periods WHERE tenant_id = $1 AND batch_id = $2", tenant_id, batch_id
    )
    return found is not None


async def overlapping_periods(conn: Conn, tenant_id: str, start: date, end: date) -> list[tuple[date, date]]:
    """The tenant's loaded periods that overlap [start, end] (bounds included) other than exactly it, by start."""
    rows = await conn.fetch(
        """
        SELECT period_start, period_end FROM loaded_periods
        WHERE tenant_id = $1 AND period_start <= $3 AND period_end >= $2
          AND NOT (period_start = $2 AND period_end = $3)
        ORDER BY period_start
        """,
        tenant_id,
        start,
        end,
    )
    return [(row["period_start"], row["period_end"]) for row in rows]


async def backup_folder_shared(conn: Conn, s3_prefix: str, *, excluding: uuid.UUID) -> bool:
    """Whether the files of a backup of a batch other than `excluding` were copied under `s3_prefix` too."""
    rows = await conn.fetch(
        "SELECT id FROM backups WHERE s3_prefix = $1 AND batch_id <> $2 LIMIT 1", s3_prefix, excluding
    )
    return bool(rows)
