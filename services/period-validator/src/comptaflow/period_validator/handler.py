"""Handling of `batch.uploaded`: claim the batch, validate its files, record the outcome.

A redelivered message for a batch that is already VALIDATED or FAILED is acknowledged without
redoing anything; one whose predecessor died mid-way (batch still VALIDATING) is validated again.
When the last delivery attempt fails, the batch is marked FAILED before the message is dead-lettered.

The files are read in a child process under the parsing budgets (`comptaflow.common.sandbox`, the work in
`parsing`): whatever a file does to its reader — exhaust memory, hang, crash it — ends that child, and the
batch fails with a finding that names what happened (FILE_TOO_COMPLEX with the budget). Such a failure is
final (the same file would do the same again). The child writes the staged tables as files in the batch's
temporary folder, which this process uploads; the folder goes on every path, and folders of dead processes
are removed when a validator starts (`remove_stale_folders`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Final

import structlog

from comptaflow.common import batches, outbox
from comptaflow.common import layout as shared_layout
from comptaflow.common.bus import Delivery
from comptaflow.common.contracts import BatchKind, BatchStatus, BatchUploaded, LoadRequested
from comptaflow.common.db import Conn
from comptaflow.common.errors import InvalidMessage, NotFound, PermanentError
from comptaflow.common.infra import Infra
from comptaflow.common.metrics import BATCHES, VALIDATION_SECONDS
from comptaflow.common.progress import BatchReporter, mark_failed
from comptaflow.common.sandbox import ChildCrashed, ChildFailed, OverBudget, Sandbox
from comptaflow.common.tenants import get_tenant
from comptaflow.period_validator import layout, parsing
from comptaflow.period_validator.findings import Code, FileKind, Finding, ValidationResult
from comptaflow.period_validator.periods import overlap_findings

SERVICE = "period-validator"
MAX_REPORTED_FINDINGS = 200
log = structlog.get_logger("comptaflow.period_validator")

# Share of the progress bar each stage covers.
DOWNLOADED, PARSED, STORED = 0.10, 0.85, 0.95


TEMP_PREFIX: Final = "cf-validate-"
"""A batch's temporary folder is `cf-validate-<pid>-<random>`: the pid tells a dead run's folders apart."""


def remove_stale_folders(work_dir: Path | None) -> int:
    """Remove the temporary folders that validators which are no longer running left behind (killed)."""
    removed = 0
    for folder in Path(work_dir or tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        owner = folder.name.removeprefix(TEMP_PREFIX).split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and _alive(int(owner)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    if removed:
        log.info("stale_temporary_folders_removed", count=removed)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


Filed = tuple[list[Finding], dict[str, str] | None]
"""The overlap findings of a valid batch's period, and where its files were filed (None when it overlaps)."""


class ValidationHandler:
    def __init__(self, infra: Infra, *, work_dir: Path | None = None) -> None:
        self._infra = infra
        self._work_dir = work_dir
        self._limit = infra.settings.delivery_limit
        self.sandbox = Sandbox(
            preload=parsing.PRELOAD,
            memory_mb=infra.settings.parse_memory_mb,
            timeout_s=infra.settings.parse_timeout_s,
        )

    async def give_up(self, event: BatchUploaded, cause: BaseException, *, permanent: bool) -> None:
        if not permanent:
            log.error("validation_failed", attempts=self._limit, error=repr(cause))
        reason = str(cause) if permanent else f"validation failed {self._limit} times; the cause is in the log"
        await self._give_up(event, reason)

    async def handle(self, event: BatchUploaded, _delivery: Delivery) -> None:
        pool = self._infra.db
        async with pool.acquire() as conn:
            # Counts the attempt; one claim too many raises AttemptsExhausted (the batch is then failed).
            claimed = await batches.claim(
                conn, event.batch_id, BatchStatus.VALIDATING, stage="download", progress=0.01, limit=self._limit
            )
            if claimed is None:
                existing = await batches.get_batch(conn, event.batch_id)
                if existing is None:
                    raise NotFound(f"batch {event.batch_id} does not exist")
                log.info("batch_already_handled", status=existing.status.value)
                return
            batch = await batches.get_batch(conn, event.batch_id)
            tenant = await get_tenant(conn, claimed.tenant_id)
        assert batch is not None
        assert tenant is not None
        if batch.tenant_id != event.tenant_id:
            raise InvalidMessage("the message names another tenant than the batch's")
        reporter = BatchReporter(
            pool=pool, bus=self._infra.bus, service=SERVICE, tenant_id=batch.tenant_id, batch_id=batch.id
        )
        await reporter.announce_batch(claimed, "validation started")
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=self._work_dir) as tmp:
            paths = await self._download(batch, Path(tmp))
            await reporter.stage("download", DOWNLOADED, status=BatchStatus.VALIDATING, message="files downloaded")
            result, staged, filing = await self._validate(batch, paths, Path(tmp), reporter, tenant_name=tenant.name)
            moved: dict[str, str] | None = None
            if filing is not None:
                overlap, moved = await filing
                result.errors.extend(overlap)
            VALIDATION_SECONDS.labels(batch.kind.value).observe(time.perf_counter() - started)
            if not result.ok:
                await self._fail(batch, result, reporter)
                return
            # `validate_files` reports the verdict of every valid batch, which starts its filing (`_validate`).
            assert moved is not None
            await reporter.stage("store", PARSED, status=BatchStatus.VALIDATING, message="storing normalised tables")
            await self._store_tables(batch, staged)
        await self._succeed(batch, result, moved, reporter)

    async def _download(self, batch: batches.Batch, tmp: Path) -> dict[str, Path]:
        paths = {
            file.field: tmp / f"{file.field}{PurePosixPath(file.filename).suffix.lower()[:8]}" for file in batch.files
        }
        await asyncio.gather(
            *(self._infra.storage.download_file(file.object_key, paths[file.field]) for file in batch.files)
        )
        return paths

    async def _validate(
        self,
        batch: batches.Batch,
        paths: dict[str, Path],
        tmp: Path,
        reporter: BatchReporter,
        *,
        tenant_name: str,
    ) -> tuple[ValidationResult, dict[str, Path], asyncio.Task[Filed] | None]:
        """Validate in a parsing child: the result, the staged tables it wrote, and — for a valid batch — the
        task of its overlap check and filing (`_file_early`), started as soon as the child reports its verdict,
        before it encodes the tables, so that both run side by side."""
        expected = ["fec"] if batch.kind is BatchKind.FEC else [kind.value for kind in FileKind]
        missing = [field for field in expected if field not in paths]
        if missing:
            return (
                ValidationResult(
                    errors=[
                        Finding(Code.MISSING_FILE, f"the batch has no {field} file", file=field) for field in missing
                    ]
                ),
                {},
                None,
            )
        period = None
        if batch.kind is BatchKind.FEC:
            from comptaflow.period_validator.fec import declared_period

            declared = declared_period(batch.options)
            period = [declared.start.isoformat(), declared.end.isoformat()] if declared else None
        out_dir = tmp / "staged"
        out_dir.mkdir()
        job: dict[str, Any] = {
            "kind": batch.kind.value,
            "paths": {field: str(path) for field, path in paths.items()},
            "period": period,
            "out_dir": str(out_dir),
            "tenant_id": batch.tenant_id,
            "load_id": str(batch.id),
        }
        started: list[asyncio.Task[Filed]] = []

        def on_verdict(raw: dict[str, Any]) -> None:
            started.append(asyncio.create_task(self._file_early(batch, tenant_name, raw)))

        try:
            raw = await self._in_child(job, reporter, on_verdict)
        except (OverBudget, ChildCrashed) as exc:
            return ValidationResult(errors=[self._unreadable(batch, exc)]), {}, started[0] if started else None
        except BaseException as exc:
            # A filing already started runs to its end (a half-done copy would be worse than a finished one).
            await asyncio.gather(*started, return_exceptions=True)
            if isinstance(exc, ChildFailed):
                # A defect of ours on this input: the same files would fail the same way, so it is not retried.
                log.error("validation_raised", kind=exc.kind, error=str(exc))
                raise PermanentError(
                    "an internal error stopped the validation; it is logged with the batch id"
                ) from None
            raise
        result, staged = parsing.outcome(raw)
        return result, staged, started[0] if started else None

    @staticmethod
    def _unreadable(batch: batches.Batch, exc: OverBudget | ChildCrashed) -> Finding:
        """The finding of files whose reading ended its child: over a budget, or crashed."""
        if isinstance(exc, OverBudget):
            log.warning("parse_over_budget", budget=exc.budget, limit=exc.limit)
            variable = "COMPTAFLOW_PARSE_MEMORY_MB" if exc.budget == "memory" else "COMPTAFLOW_PARSE_TIMEOUT_S"
            message = f"the files could not be read within the parsing limits: {exc} ({variable})"
            return Finding(Code.FILE_TOO_COMPLEX, message, details={exc.budget: exc.limit})
        log.warning("parse_crashed", error=str(exc))
        code = Code.NOT_FEC if batch.kind is BatchKind.FEC else Code.NOT_EXCEL
        return Finding(code, f"the files could not be read: {exc}, on a damaged file or one built to crash readers")

    async def _file_early(self, batch: batches.Batch, tenant_name: str, raw: dict[str, Any]) -> Filed:
        """Once the child has found the batch valid, while it encodes the tables: the overlap check, then the
        filing of the uploaded files (not when the period overlaps a loaded one)."""
        result, _ = parsing.outcome(raw)
        assert result.period is not None
        async with self._infra.db.acquire() as conn:
            overlap = await overlap_findings(conn, batch.tenant_id, result.period)
        if overlap:
            return overlap, None
        return [], await self._declare_files(batch, tenant_name, result)

    async def _in_child(
        self, job: dict[str, Any], reporter: BatchReporter, on_verdict: Callable[[dict[str, Any]], None]
    ) -> Any:
        """Run `parsing.validate_files` in a parsing child, relaying its progress as status events."""
        updates: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue()

        async def relay_progress() -> None:
            while (update := await updates.get()) is not None:
                stage, fraction = update
                overall = DOWNLOADED + (PARSED - DOWNLOADED) * min(1.0, max(0.0, fraction))
                await reporter.stage(stage, overall, status=BatchStatus.VALIDATING)

        relay = asyncio.create_task(relay_progress())
        try:
            return await self.sandbox.run(
                parsing.ENTRY,
                job,
                on_progress=lambda stage, fraction: updates.put_nowait((stage, fraction)),
                on_detail=lambda _stage, detail: on_verdict(detail),
            )
        finally:
            updates.put_nowait(None)
            await relay

    async def _store_tables(self, batch: batches.Batch, staged: dict[str, Path]) -> None:
        """Upload each staged table (insert-ready Parquet written by the child), each in one request."""

        async def store(table: str, path: Path) -> None:
            data = await asyncio.to_thread(path.read_bytes)
            await self._infra.storage.put_bytes(shared_layout.staging_key(batch.tenant_id, batch.id, table), data)

        await asyncio.gather(*(store(table, path) for table, path in staged.items()))

    async def _declare_files(self, batch: batches.Batch, tenant_name: str, result: ValidationResult) -> dict[str, str]:
        """Copy the uploaded files to the period's folder; earlier files of the same names go to backup/."""
        assert result.period is not None
        start, end = result.period.start, result.period.end
        storage = self._infra.storage
        moved: dict[str, str] = {}
        backup_at: str | None = None
        for file in batch.files:
            target = layout.declared_key(
                batch.tenant_id, tenant_name, start, end, kind=file.field, day=batch.created_at.date()
            )
            async with self._infra.db.acquire() as conn:
                owner = await batches.file_owner(conn, target, excluding=batch.id)
            if owner is not None and await storage.exists(target):
                # Another batch's file has this name (same period, uploaded the same day): move it aside
                # and repoint that batch to the copy, so each batch keeps referencing its own content.
                backup_at = backup_at or shared_layout.backup_prefix(batch.tenant_id, start, end, datetime.now(UTC))
                aside = backup_at + target.rsplit("/", 1)[1]
                await storage.copy(target, aside)
                async with self._infra.db.acquire() as conn:
                    await batches.repoint_file(conn, owner, target, aside)
            await storage.copy(file.object_key, target)
            moved[file.field] = target
        return moved

    async def _succeed(
        self, batch: batches.Batch, result: ValidationResult, moved: dict[str, str], reporter: BatchReporter
    ) -> None:
        assert result.period is not None
        async with self._infra.db.acquire() as conn, conn.transaction():
            done = await batches.transition(
                conn,
                batch.id,
                BatchStatus.VALIDATED,
                stage="validated",
                progress=1.0,
                period=(result.period.start, result.period.end),
                errors=[],
                warnings=_capped(result.warnings),
                stats=result.stats,
            )
            if done is None:
                log.warning("batch_moved_on_during_validation")
                return
            await _record_moves(conn, batch.id, moved)
            if batch.auto_load:
                await outbox.enqueue(conn, LoadRequested(tenant_id=batch.tenant_id, batch_id=batch.id))
        BATCHES.labels(batch.kind.value, BatchStatus.VALIDATED.value).inc()
        await reporter.announce_batch(
            done, f"period {result.period.start.isoformat()} to {result.period.end.isoformat()} validated"
        )
        # The incoming copies are no longer referenced; a failure here leaves only garbage behind.
        with contextlib.suppress(Exception):
            await self._infra.storage.delete_keys([f.object_key for f in batch.files if f.field in moved])
        log.info(
            "batch_validated",
            period_start=str(result.period.start),
            period_end=str(result.period.end),
            warnings=len(result.warnings),
        )

    async def _fail(self, batch: batches.Batch, result: ValidationResult, reporter: BatchReporter) -> None:
        async with self._infra.db.acquire() as conn:
            done = await batches.transition(
                conn,
                batch.id,
                BatchStatus.FAILED,
                stage="failed",
                progress=1.0,
                period=(result.period.start, result.period.end) if result.period else None,
                errors=_capped(result.errors),
                warnings=_capped(result.warnings),
                stats={**result.stats, "errors_total": len(result.errors)},
            )
        if done is None:
            return
        BATCHES.labels(batch.kind.value, BatchStatus.FAILED.value).inc()
        codes = sorted({f.code.value for f in result.errors})
        await reporter.announce_batch(done, "validation failed: " + ", ".join(codes))
        log.info("batch_rejected", codes=codes, errors=len(result.errors))

    async def _give_up(self, event: BatchUploaded, reason: str) -> None:
        """Mark the batch FAILED when its message is about to be dead-lettered (best effort)."""
        finding = Finding(Code.INTERNAL_ERROR, f"the batch could not be validated: {reason}")
        await mark_failed(
            pool=self._infra.db, bus=self._infra.bus, service=SERVICE, batch_id=event.batch_id, error=finding.as_dict()
        )


async def _record_moves(conn: Conn, batch_id: uuid.UUID, moved: dict[str, str]) -> None:
    await batches.set_file_keys(conn, batch_id, moved)


def _capped(findings: list[Finding]) -> list[dict[str, object]]:
    return [f.as_dict() for f in findings[:MAX_REPORTED_FINDINGS]]
