"""`comptaflow pennylane sync --tenant T [--full] [--table X]…`: one sync now, in this process.

The sync is the service's own (a `pennylane.sync` job, the tenant's lock, the same tables and
checkpoints), with a progress bar per table on the terminal and a summary at the end. It uses the
database of `COMPTAFLOW_DATABASE_URL`, or the embedded one of `comptaflow up` in `COMPTAFLOW_HOME`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from comptaflow.cli.embedded import EmbeddedPostgres
from comptaflow.cli.secret_key import secret_key_for
from comptaflow.common import db, jobs
from comptaflow.common.contracts import PennylaneSyncRequested, SyncMode
from comptaflow.common.infra import make_bus
from comptaflow.common.secrets import Keyring
from comptaflow.common.settings import Settings
from comptaflow.pennylane_sync import sync
from comptaflow.pennylane_sync.handler import KIND, SERVICE, SyncHandler


class _Bars(sync.Progress):
    """One bar per table: items fetched while it runs, its counts once applied."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}
        self._items: dict[str, int] = {}

    def _task(self, table: str) -> TaskID:
        if table not in self._tasks:
            self._tasks[table] = self._progress.add_task(table, total=None, detail="waiting")
            self._items[table] = 0
        return self._tasks[table]

    async def started(self, table: str) -> None:
        self._progress.update(self._task(table), detail="fetching")

    async def fetched(self, table: str, items: int) -> None:
        task = self._task(table)
        self._items[table] += items
        self._progress.update(task, advance=items, detail=f"{self._items[table]} items fetched")

    async def finished(self, outcome: sync.TableOutcome) -> None:
        task = self._task(outcome.table)
        if outcome.ok:
            w = outcome.written
            detail = f"[green]done[/] +{w.inserted} ~{w.updated} -{w.deleted}"
        else:
            detail = f"[red]failed[/] {outcome.code}"
        self._progress.update(task, total=1, completed=1, detail=detail)


def _summary(console: Console, job: jobs.Job, seconds: float) -> None:
    table = Table(title=f"Pennylane sync of {job.tenant_id}: {job.status.value}")
    for column in ("table", "mode", "inserted", "updated", "deleted", "rows", "seconds", "error"):
        text = column in ("table", "mode", "error")
        table.add_column(column, justify="left" if text else "right", no_wrap=column != "error")
    for row in job.stats.get("tables", []):
        table.add_row(
            row["table"],
            row["mode"] + (f" ({row['fallback']})" if row.get("fallback") else ""),
            str(row.get("inserted", 0)),
            str(row.get("updated", 0)),
            str(row.get("deleted", 0)),
            str(row.get("rows", 0)),
            f"{row.get('seconds', 0):.1f}",
            row.get("error") or "",
        )
    console.print(table)
    stats = job.stats
    console.print(
        f"{stats.get('inserted', 0)} inserted, {stats.get('updated', 0)} updated, {stats.get('deleted', 0)} deleted;"
        f" {stats.get('requests', 0)} requests ({stats.get('throttled', 0)} throttled) in {seconds:.1f} s"
    )
    for error in job.errors:
        if "table" not in error:
            console.print(f"[red]{error.get('code')}[/]: {error.get('message')}")


async def sync_command(settings: Settings, args: argparse.Namespace) -> int:
    console = Console(stderr=False)
    key = secret_key_for(settings, generate=False)
    keyring = Keyring.from_setting(key)
    mode = SyncMode.FULL if args.full else SyncMode.INCREMENTAL
    with contextlib.ExitStack() as stack:
        dsn = settings.database_url.get_secret_value() if settings.database_url else None
        if dsn is None:
            postgres = EmbeddedPostgres(settings.home.resolve() / "postgres")
            stack.callback(postgres.stop)
            dsn = postgres.start()
        pool = await db.create_pool(dsn, max_size=max(4, settings.pennylane_concurrency + 3))
        try:
            await db.migrate(pool)
            bus = make_bus(settings.model_copy(update={"secret_key": SecretStr(key)}), service=SERVICE)
            await bus.connect()
            try:
                async with pool.acquire() as conn:
                    if await conn.fetchval("SELECT 1 FROM tenants WHERE id = $1", args.tenant) is None:
                        print(f"comptaflow pennylane sync: no tenant {args.tenant!r}", file=sys.stderr)
                        return 2
                    params = {"mode": mode.value, "tables": args.tables}
                    job, _ = await jobs.create_job(conn, args.tenant, KIND, params)
                event = PennylaneSyncRequested(
                    tenant_id=args.tenant, job_id=job.id, mode=mode, tables=tuple(args.tables) if args.tables else None
                )
                started = time.monotonic()
                columns = (
                    SpinnerColumn(),
                    TextColumn("{task.description:<24}"),
                    BarColumn(),
                    TextColumn("{task.fields[detail]}"),
                    TimeElapsedColumn(),
                )
                with Progress(*columns, console=console, transient=False) as progress:
                    handler = SyncHandler(
                        pool=pool, bus=bus, settings=settings, keyring=keyring, progress=_Bars(progress)
                    )
                    await handler.handle(event, None)
                async with pool.acquire() as conn:
                    done = await jobs.get_job(conn, job.id)
                assert done is not None
                _summary(console, done, time.monotonic() - started)
                return 0 if done.status.value == "SUCCEEDED" else 1
            finally:
                await bus.close()
        finally:
            await pool.close()
    return 1
