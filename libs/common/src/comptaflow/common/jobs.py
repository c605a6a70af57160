"""The `jobs` table and the job state machine: work that is not an accounting batch.

    PENDING → RUNNING → SUCCEEDED
       └─────────┴────→ FAILED

A job is asked for with `create_job()` (an idempotency key makes a second request for the same run
return the first job), taken by a worker with `claim()`, followed with `record_progress()` and ended with
`finish()`. Every transition is one guarded UPDATE (`WHERE status = ANY(allowed sources)`), and a
trigger (migration 0004) refuses any other change of status: a status never goes backwards, a finished
job is never redone, and a transition applied twice (a redelivered message) is a no-op returning None.

RUNNING → RUNNING is a take-over: the worker that had the job died and its message came back. Each claim
counts an attempt in the claiming UPDATE, as `batches.claim` does, so a job whose work kills its worker
is claimed at most `limit` times: the claim after that fails the job with the reason and raises
`JobAttemptsExhausted`.

Every recorded change bumps `status_seq`, the `seq` of the job's status events (`progress.JobReporter`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from comptaflow.common.batches import AttemptsExhausted
from comptaflow.common.contracts import JobStatus
from comptaflow.common.db import Conn
from comptaflow.common.errors import TransientError

S = JobStatus
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    S.PENDING: frozenset({S.RUNNING, S.FAILED}),
    S.RUNNING: frozenset({S.RUNNING, S.SUCCEEDED, S.FAILED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
}


def sources_of(target: JobStatus) -> list[str]:
    """The statuses from which `target` may be reached."""
    return [s.value for s, targets in TRANSITIONS.items() if target in targets]


@dataclass(frozen=True, slots=True)
class Job:
    id: uuid.UUID
    tenant_id: str
    kind: str
    status: JobStatus
    stage: str
    progress: float
    message: str
    params: dict[str, Any]
    stats: dict[str, Any]
    errors: list[dict[str, Any]]
    attempts: int
    status_seq: int
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobAttemptsExhausted(AttemptsExhausted):
    """A job was claimed `limit` times without finishing: `claim()` has failed it (`job`, FAILED)."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.message)
        self.job = job


def abandoned_reason(kind: str, attempts: int) -> str:
    """Why a job started `attempts` times is abandoned (no exception text: each attempt ended with its process)."""
    return (
        f"the {kind} job was started {attempts} times without finishing (the worker stopped each time);"
        " the job is abandoned"
    )


_COLUMNS = (
    "id, tenant_id, kind, status, stage, progress, message, params, stats, errors, attempts, status_seq,"
    " idempotency_key, created_at, updated_at, started_at, finished_at"
)


def _job(row: asyncpg.Record) -> Job:
    return Job(
        id=row["id"],
        tenant_id=row["tenant_id"],
        kind=row["kind"],
        status=JobStatus(row["status"]),
        stage=row["stage"],
        progress=row["progress"],
        message=row["message"],
        params=row["params"],
        stats=row["stats"],
        errors=row["errors"],
        attempts=row["attempts"],
        status_seq=row["status_seq"],
        idempotency_key=row["idempotency_key"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


async def create_job(
    conn: Conn, tenant_id: str, kind: str, params: dict[str, Any], *, idempotency_key: str | None = None
) -> tuple[Job, bool]:
    """A new PENDING job, and True; or, when the tenant already has a job of this kind with this
    idempotency key, that job (whatever its status and params), and False.

    Call it inside the transaction that also enqueues the message asking for the work, so that a job
    exists exactly when its work was asked for.
    """
    for _ in range(3):  # the job holding the key only vanishes if deleted between the two statements
        # _COLUMNS is a constant of this module; every value is a bound parameter.
        row = await conn.fetchrow(
            f"INSERT INTO jobs (id, tenant_id, kind, params, idempotency_key) VALUES ($1, $2, $3, $4, $5)"  # noqa: S608
            f" ON CONFLICT (tenant_id, kind, idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
            uuid.uuid4(),
            tenant_id,
            kind,
            params,
            idempotency_key,
        )
        if row is not None:
            return _job(row), True
        # Only a key conflicts (NULL keys never do): the job holding it is the answer.
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM jobs WHERE tenant_id = $1 AND kind = $2 AND idempotency_key = $3",  # noqa: S608
            tenant_id,
            kind,
            idempotency_key,
        )
        if row is not None:
            return _job(row), False
    raise TransientError(f"the {kind} job with this idempotency key keeps being deleted; ask again")


async def get_job(conn: Conn, job_id: uuid.UUID) -> Job | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM jobs WHERE id = $1", job_id)  # noqa: S608 — constant columns
    return None if row is None else _job(row)


async def claim(
    conn: Conn, job_id: uuid.UUID, *, stage: str, progress: float, limit: int, message: str | None = None
) -> Job | None:
    """Move a job to RUNNING to work on it (PENDING → RUNNING, or RUNNING → RUNNING to take it over),
    counting the attempt in the same UPDATE (and recording `message`, when given).

    None if the job is finished (or there is no such job). When the job was claimed `limit` times
    already, fails it with the reason (errors `[{"code": "INTERNAL_ERROR", "message": …}]`) and raises
    `JobAttemptsExhausted` carrying the failed job, instead of running, for the `limit + 1`-th time,
    work that never finished.
    """
    # _COLUMNS is a constant of this module; every value is a bound parameter.
    row = await conn.fetchrow(
        f"""
        UPDATE jobs SET status = 'RUNNING', stage = $2, progress = $3, message = COALESCE($6, message),
               attempts = attempts + 1, started_at = COALESCE(started_at, now()),
               status_seq = status_seq + 1, updated_at = now()
        WHERE id = $1 AND status = ANY($4::text[]) AND attempts < $5
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        job_id,
        stage,
        progress,
        sources_of(S.RUNNING),
        limit,
        message,
    )
    if row is not None:
        return _job(row)
    exhausted = await conn.fetchrow(
        "SELECT kind, attempts FROM jobs WHERE id = $1 AND status = ANY($2::text[]) AND attempts >= $3",
        job_id,
        sources_of(S.RUNNING),
        limit,
    )
    if exhausted is None:
        return None
    reason = abandoned_reason(exhausted["kind"], exhausted["attempts"])
    failed = await finish(
        conn, job_id, S.FAILED, errors=[{"code": "INTERNAL_ERROR", "message": reason}], message=reason
    )
    if failed is None:  # finished by another worker meanwhile
        return None
    raise JobAttemptsExhausted(failed)


async def record_progress(
    conn: Conn, job_id: uuid.UUID, *, expect: JobStatus, stage: str, progress: float, message: str | None = None
) -> int | None:
    """Record a stage (and a message, when given) while the job is in `expect`; progress never decreases.

    Returns the event seq, or None when the job is no longer in `expect` (it moved on, or no such job).
    """
    if expect.is_final:
        raise ValueError(f"a finished job records no progress (expect={expect.value})")
    value: int | None = await conn.fetchval(
        """
        UPDATE jobs SET stage = $3, progress = GREATEST(progress, $4), message = COALESCE($5, message),
               status_seq = status_seq + 1, updated_at = now()
        WHERE id = $1 AND status = $2
        RETURNING status_seq
        """,
        job_id,
        expect.value,
        stage,
        progress,
        message,
    )
    return value


async def finish(
    conn: Conn,
    job_id: uuid.UUID,
    status: JobStatus,
    *,
    stats: dict[str, Any] | None = None,
    errors: list[dict[str, Any]] | None = None,
    message: str | None = None,
) -> Job | None:
    """End a job: RUNNING → SUCCEEDED, or RUNNING/PENDING → FAILED (stage `succeeded`/`failed`, progress 1).

    `stats`, `errors` and `message` replace the job's when given. None when the job is not in a status
    `status` may be reached from (already finished, never claimed for SUCCEEDED, or no such job).
    """
    if not status.is_final:
        raise ValueError(f"a job finishes SUCCEEDED or FAILED, not {status.value}")
    # _COLUMNS is a constant of this module; every value is a bound parameter.
    row = await conn.fetchrow(
        f"""
        UPDATE jobs SET status = $2, stage = lower($2), progress = 1,
               stats = COALESCE($3, stats), errors = COALESCE($4, errors), message = COALESCE($5, message),
               status_seq = status_seq + 1, updated_at = now(), finished_at = now()
        WHERE id = $1 AND status = ANY($6::text[])
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        job_id,
        status.value,
        stats,
        errors,
        message,
        sources_of(status),
    )
    return None if row is None else _job(row)


async def list_jobs(
    conn: Conn,
    tenant_id: str,
    *,
    kind: str | None = None,
    status: JobStatus | None = None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[Job]:
    """A tenant's jobs, newest first (`created_at DESC, id DESC`), of one kind and/or status when given.

    `after` is the (created_at, id) of the last job of the previous page (keyset pagination).
    """
    # Only the filters asked for are in the query (fragments from code, values bound), so that each
    # listing is planned on its own index.
    args: list[Any] = [tenant_id]
    where = ["tenant_id = $1"]
    if kind is not None:
        args.append(kind)
        where.append(f"kind = ${len(args)}")
    if status is not None:
        args.append(status.value)
        where.append(f"status = ${len(args)}")
    if after is not None:
        args.extend(after)
        where.append(f"(created_at, id) < (${len(args) - 1}::timestamptz, ${len(args)}::uuid)")
    args.append(limit)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM jobs WHERE {' AND '.join(where)}"  # noqa: S608 — constant columns and clauses
        f" ORDER BY created_at DESC, id DESC LIMIT ${len(args)}",
        *args,
    )
    return [_job(r) for r in rows]
