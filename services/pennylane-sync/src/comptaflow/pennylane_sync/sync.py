"""One sync of a tenant's Pennylane company into its schema (docs/pennylane.md, How a sync works).

Tables are synced by units, each in one transaction with its tables' state (`writer.Unit`):

    customers · suppliers · products · transactions     changelog
    customer_invoices + customer_invoice_lines          changelog, the lines of changed invoices re-fetched
    supplier_invoices + supplier_invoice_lines          same
    ledger_entry_lines + ledger_entries                 changelog, the entries of changed lines re-fetched
    ledger_accounts · journals · bank_accounts · fiscal_years · categories      listed whole
    trial_balance                                       one per open fiscal year
    fec                                                 the FEC export of each open fiscal year (full syncs)

A changelog table reads its events from its checkpoint minus `overlap` (`start_date` on the first page
only), keeps each record's last operation, re-fetches the records still there with `filter id in […]`,
deletes the others, and moves its checkpoint to the last `processed_at` it applied, in the same
transaction. It is listed whole instead (upsert, then delete what vanished) on a full sync, the first
time, when its checkpoint is older than the changelog's retention, and when the API answers 422.
Checkpoints are on the API's clock (its `Date` header), so a skew between clocks loses nothing.

One unit failing (its error recorded in the table's state) never stops the others; units run at most
`concurrency` at a time, all on the token's one request budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from comptaflow.common.contracts import SyncMode
from comptaflow.common.logging import get_logger
from comptaflow.common.metrics import PENNYLANE_ROWS, PENNYLANE_TABLES
from comptaflow.common.pennylane import api, connections
from comptaflow.common.pennylane.api import PennylaneClient, PennylaneError
from comptaflow.common.pennylane.tables import (
    BY_NAME,
    CHANGELOG_MAX_LIMIT,
    Strategy,
    Table,
    missing_scopes,
)
from comptaflow.pennylane_sync import fec, schema
from comptaflow.pennylane_sync.writer import (
    BadItem,
    DeleteAll,
    DeleteIds,
    DeleteWithin,
    Unit,
    Written,
)

log = get_logger("comptaflow.pennylane_sync")

RETENTION = timedelta(days=28)
RETENTION_MARGIN = timedelta(hours=1)
RECENT = "recent_events"
RECENT_MAX = 5_000
OPEN_FISCAL_YEARS = frozenset({"open", "reopen"})
EXPORT_POLL_S = (1.0, 2.0, 3.0, 5.0, 10.0)
EXPORT_TIMEOUT_S = 900.0

UNITS: tuple[tuple[str, ...], ...] = (
    ("ledger_entry_lines", "ledger_entries"),
    ("customer_invoices", "customer_invoice_lines"),
    ("supplier_invoices", "supplier_invoice_lines"),
    ("transactions",),
    ("customers",),
    ("suppliers",),
    ("products",),
    ("ledger_accounts",),
    ("journals",),
    ("bank_accounts",),
    ("fiscal_years",),
    ("categories",),
    ("trial_balance",),
    ("fec",),
)
"""Tables synced together, the longest first (so that the short ones fill the gaps of the budget)."""


def plan(mode: SyncMode, names: Collection[str] | None) -> list[tuple[Table, ...]]:
    """The units of a sync of `names` (None: every table; `fec` only on a full sync or when named).

    A table is synced with the others of its unit: an invoice table and its lines, the ledger lines and
    their entries.
    """
    out: list[tuple[Table, ...]] = []
    for unit in UNITS:
        if names is None:
            if unit == ("fec",) and mode is not SyncMode.FULL:
                continue
        elif not set(unit) & set(names):
            continue
        out.append(tuple(BY_NAME[n] for n in unit))
    return out


@dataclass(slots=True)
class TableOutcome:
    table: str
    ok: bool
    mode: SyncMode
    written: Written = field(default_factory=Written)
    code: str | None = None
    error: str | None = None
    fallback: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"table": self.table, "ok": self.ok, "mode": self.mode.value, **self.written.as_dict()}
        out["rows"] = self.written.rows
        out["seconds"] = round(self.seconds, 3)
        if self.fallback:
            out["fallback"] = self.fallback
        if self.error:
            out["code"], out["error"] = self.code, self.error
        return out


class Progress:
    """What a sync tells as it goes (the handler announces it, the command line draws it)."""

    async def started(self, table: str) -> None:
        return None

    async def fetched(self, table: str, items: int) -> None:
        return None

    async def finished(self, outcome: TableOutcome) -> None:
        return None


def error_code(exc: BaseException) -> str:
    """The code of a table's failure (docs/api.md, Pennylane errors)."""
    if isinstance(exc, api.Unauthorized):
        return "PENNYLANE_UNAUTHORIZED"
    if isinstance(exc, api.Forbidden):
        return "PENNYLANE_FORBIDDEN"
    if isinstance(exc, api.Unavailable):
        return "PENNYLANE_UNAVAILABLE"
    if isinstance(exc, api.MalformedResponse | BadItem):
        return "PENNYLANE_BAD_RESPONSE"
    if isinstance(exc, PennylaneError):
        return "PENNYLANE_REFUSED"
    return "PENNYLANE_BAD_RESPONSE"


def _stored_error(exc: BaseException) -> str:
    if isinstance(exc, asyncpg.PostgresError):
        return f"a value Pennylane sent cannot be stored: {exc.args[0] if exc.args else type(exc).__name__}"
    return str(exc)


_STORE_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


class TenantSync:
    """One sync of one tenant (see the module docstring); `run()` returns an outcome per table."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        client: PennylaneClient,
        tenant_id: str,
        mode: SyncMode,
        tables: Collection[str] | None = None,
        overlap: timedelta = timedelta(minutes=5),
        concurrency: int = 3,
        progress: Progress | None = None,
    ) -> None:
        self._pool = pool
        self._client = client
        self._tenant = tenant_id
        self._schema = connections.schema_name(tenant_id)
        self._mode = mode
        self._names = tables
        self._overlap = overlap
        self._concurrency = concurrency
        self._progress = progress or Progress()
        self._states: dict[str, connections.TableState] = {}
        self._fiscal_years: asyncio.Task[list[dict[str, Any]]] | None = None
        self._recent: dict[str, list[list[Any]]] = {}
        """Per changelog table, the events applied within `overlap` of its new checkpoint (kept in its state)."""

    def _now(self) -> datetime:
        """The API's clock, as of its last answer (ours before any)."""
        return self._client.server_time or datetime.now(UTC)

    async def run(self) -> list[TableOutcome]:
        units = plan(self._mode, self._names)
        wanted = [t for unit in units for t in unit]
        me = await self._client.me()  # 401 ends the sync here: nothing else can work
        lacking = missing_scopes(wanted, me.scopes)
        async with self._pool.acquire() as conn:
            await connections.update_scopes(conn, self._tenant, me.scopes)
            await schema.migrate_tenant(conn, self._tenant)
            self._states = await connections.table_states(conn, self._tenant)
        outcomes: list[TableOutcome] = []
        runnable: list[tuple[Table, ...]] = []
        for unit in units:
            if any(t.name in lacking for t in unit):
                scopes = sorted({s for t in unit for s in lacking.get(t.name, ())})
                message = f"the Pennylane token lacks the scope(s) {', '.join(scopes)}"
                outcomes.extend(await self._finished(await self._failed(unit, "PENNYLANE_FORBIDDEN", message)))
            else:
                runnable.append(unit)
        gate = asyncio.Semaphore(self._concurrency)

        async def guarded(unit: tuple[Table, ...]) -> list[TableOutcome]:
            async with gate:
                return await self._run_unit(unit)

        try:
            for done in await asyncio.gather(*(guarded(u) for u in runnable)):
                outcomes.extend(done)
        finally:
            if self._fiscal_years is not None and not self._fiscal_years.done():
                self._fiscal_years.cancel()
        order = {t.name: i for i, t in enumerate(wanted)}
        return sorted(outcomes, key=lambda o: order[o.table])

    async def _failed(
        self, unit: Sequence[Table], code: str, message: str, *, started: float | None = None
    ) -> list[TableOutcome]:
        """Record the unit's tables as FAILED (their data and checkpoints untouched); their outcomes."""
        outcomes = []
        async with self._pool.acquire() as conn:
            for table in unit:
                await connections.record_failure(conn, self._tenant, table.name, self._mode, message)
                outcome = TableOutcome(table.name, ok=False, mode=self._mode, code=code, error=message)
                if started is not None:
                    outcome.seconds = time.monotonic() - started
                outcomes.append(outcome)
        return outcomes

    async def _finished(self, outcomes: list[TableOutcome]) -> list[TableOutcome]:
        """Count the outcomes in the metrics and tell the progress listener."""
        for outcome in outcomes:
            PENNYLANE_TABLES.labels(outcome.table, self._mode.value, "ok" if outcome.ok else "failed").inc()
            for operation, count in outcome.written.as_dict().items():
                PENNYLANE_ROWS.labels(operation).inc(count)
            await self._progress.finished(outcome)
        return outcomes

    async def _run_unit(self, unit: tuple[Table, ...]) -> list[TableOutcome]:
        started = time.monotonic()
        for table in unit:
            await self._progress.started(table.name)
        async with self._pool.acquire() as conn:
            for table in unit:
                await connections.mark_running(conn, self._tenant, table.name, self._mode)
        writer = Unit(self._schema)
        try:
            results = await self._fill(writer, unit)  # no connection held while the API is waited on
            outcomes = await self._apply(writer, unit, results, started)
        except (PennylaneError, BadItem, *_STORE_ERRORS) as exc:
            code, message = error_code(exc), _stored_error(exc)
            log.warning("pennylane_table_failed", tables=[t.name for t in unit], code=code, error=message)
            outcomes = await self._failed(unit, code, message, started=started)
        finally:
            writer.close()
        return await self._finished(outcomes)

    async def _apply(
        self,
        writer: Unit,
        unit: tuple[Table, ...],
        results: dict[str, tuple[datetime | None, str | None]],
        started: float,
    ) -> list[TableOutcome]:
        """The unit's tables and their states, in one transaction."""
        outcomes = []
        async with self._pool.acquire() as conn, conn.transaction():
            synced_at = datetime.now(UTC)
            for table in unit:
                written = await writer.apply(conn, table.name, synced_at)
                cursor_at, fallback = results.get(table.name, (None, None))
                outcome = TableOutcome(table.name, ok=True, mode=self._mode, written=written, fallback=fallback)
                outcome.seconds = time.monotonic() - started
                await connections.record_success(
                    conn,
                    self._tenant,
                    table.name,
                    self._mode,
                    synced_at=synced_at,
                    cursor_at=cursor_at,
                    rows=written.rows,
                    stats=outcome.as_dict() | {RECENT: self._recent.get(table.name, [])},
                )
                outcomes.append(outcome)
        return outcomes

    async def _fill(self, writer: Unit, unit: tuple[Table, ...]) -> dict[str, tuple[datetime | None, str | None]]:
        """Stage the unit's tables; for each table its new checkpoint and why it was listed whole, if it was."""
        head = unit[0]
        if head.strategy is Strategy.CHANGELOG:
            return await self._changelog(writer, head, unit[1:])
        if head.strategy is Strategy.REFRESH:
            await self._refresh(writer, head)
            return {}
        if head.strategy is Strategy.TRIAL_BALANCE:
            await self._trial_balance(writer, head)
            return {}
        if head.strategy is Strategy.EXPORT:
            await self._fec(writer, head)
            return {}
        raise AssertionError(f"no unit starts with {head.name}")

    # -- changelog tables -------------------------------------------------------------------------------

    def _listing_reason(self, table: Table) -> str | None:
        """Why the table must be listed whole rather than read from its changelog (None: it need not)."""
        if self._mode is SyncMode.FULL:
            return "full"
        state = self._states.get(table.name)
        if state is None or state.cursor_at is None:
            return "first"
        if state.cursor_at - self._overlap < self._now() - RETENTION + RETENTION_MARGIN:
            return "retention"
        return None

    async def _changelog(
        self, writer: Unit, table: Table, dependents: Sequence[Table]
    ) -> dict[str, tuple[datetime | None, str | None]]:
        reason = self._listing_reason(table)
        if reason is None:
            state = self._states[table.name]
            assert state.cursor_at is not None
            try:
                changed = await self._read_changes(writer, table, since=state.cursor_at)
            except api.Unprocessable as exc:
                # The changelog no longer reaches back to the checkpoint (retention): list it whole.
                log.info("pennylane_changelog_expired", table=table.name, error=exc.message)
                reason = "retention"
            else:
                cursor_at, upserted, removed, items = changed
                await self._dependents(writer, dependents, upserted=upserted, removed=removed, items=items)
                out: dict[str, tuple[datetime | None, str | None]] = {table.name: (cursor_at, None)}
                out.update({d.name: (None, None) for d in dependents})
                return out
        listed_at = self._now()
        ids: list[int] = []
        async for page in self._client.pages(table.path, params={"sort": "id"}, limit=table.max_limit):
            writer.add(table.name, page)  # checks every item first: ids are integers after this
            await self._progress.fetched(table.name, len(page))
            ids.extend(item["id"] for item in page)
        writer.touch(table.name, DeleteAll())
        await self._dependents(writer, dependents, upserted=ids, removed=[], items=[], whole=True)
        # The next incremental reads the changelog from when the listing began (minus the overlap).
        shown = None if self._mode is SyncMode.FULL else reason  # why an incremental listed it whole
        out = {table.name: (listed_at, shown)}
        out.update({d.name: (None, shown) for d in dependents})
        return out

    async def _read_changes(
        self, writer: Unit, table: Table, *, since: datetime
    ) -> tuple[datetime, list[int], list[int], list[dict[str, Any]]]:
        """Apply the changelog from `since`: (new checkpoint, ids upserted, ids removed, items fetched)."""
        # Events read again because of the overlap that were applied already (same record, operation and
        # time) are skipped: only late arrivals within the overlap are new.
        state = self._states.get(table.name)
        applied = {(i, op, at) for i, op, at in (state.stats.get(RECENT, []) if state else [])}
        last: dict[int, str] = {}
        read: list[tuple[int, str, datetime]] = []
        checkpoint = since
        resource = table.name
        async for events in self._client.changes(resource, since=since - self._overlap, limit=CHANGELOG_MAX_LIMIT):
            for event in events:
                read.append((event.id, event.operation, event.processed_at))
                checkpoint = max(checkpoint, event.processed_at)
                if (event.id, event.operation, event.processed_at.isoformat()) in applied:
                    continue
                last[event.id] = event.operation  # events come oldest first: the last one wins
        horizon = checkpoint - self._overlap
        recent = [[i, op, at.isoformat()] for i, op, at in read if at >= horizon]
        self._recent[table.name] = recent[-RECENT_MAX:]
        deleted = [i for i, op in last.items() if op == "delete"]
        wanted = [i for i, op in last.items() if op != "delete"]
        items = await self._client.fetch_ids(table.path, wanted) if wanted else []
        writer.add(table.name, items)
        await self._progress.fetched(table.name, len(items))
        found = {item["id"] for item in items}
        removed = deleted + [i for i in wanted if i not in found]  # gone since its event: deleted too
        writer.touch(table.name, DeleteIds(tuple(removed)))
        return checkpoint, sorted(found), removed, items

    async def _dependents(
        self,
        writer: Unit,
        dependents: Sequence[Table],
        *,
        upserted: Sequence[int],
        removed: Sequence[int],
        items: Sequence[dict[str, Any]],
        whole: bool = False,
    ) -> None:
        for table in dependents:
            if table.strategy is Strategy.LINES:
                await self._invoice_lines(writer, table, upserted=upserted, removed=removed, whole=whole)
            elif table.name == "ledger_entries":
                if whole:
                    await self._refresh(writer, table)
                else:
                    await self._entries_of_lines(writer, table, lines=items, removed_lines=removed)
            else:
                raise AssertionError(f"{table.name} is no dependent table")

    async def _invoice_lines(
        self, writer: Unit, table: Table, *, upserted: Sequence[int], removed: Sequence[int], whole: bool
    ) -> None:
        """The lines of each invoice in `upserted` (a sub-resource per invoice); those of `removed` deleted."""
        gone: list[int] = []
        for invoice_id in upserted:
            try:
                async for page in self._client.pages(f"{table.path}/{invoice_id}/invoice_lines", limit=100):
                    writer.add(table.name, page, invoice_id=invoice_id)
                    await self._progress.fetched(table.name, len(page))
            except api.NotFound:
                gone.append(invoice_id)  # deleted since it was listed: its lines go with it
        if whole:
            writer.touch(table.name, DeleteAll())
        else:
            writer.touch(table.name, DeleteWithin("invoice_id", (*upserted, *removed)))
        if gone:
            log.info("pennylane_invoices_vanished", table=table.name, count=len(gone))

    async def _entries_of_lines(
        self, writer: Unit, table: Table, *, lines: Sequence[dict[str, Any]], removed_lines: Sequence[int]
    ) -> None:
        """The ledger entries of the lines that changed, re-fetched (those that no longer exist deleted)."""
        entry_ids: set[int] = set()
        for line in lines:
            entry = line.get("ledger_entry")
            if isinstance(entry, dict) and isinstance(entry.get("id"), int):
                entry_ids.add(entry["id"])
        if removed_lines:
            # A deleted line is not served any more: the entry it belonged to is in what we stored of it.
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(
                    f"SELECT DISTINCT (item->'ledger_entry'->>'id')::bigint AS entry_id"  # noqa: S608 — constant
                    f" FROM {self._schema}.ledger_entry_lines WHERE id = ANY($1::bigint[])",
                    list(removed_lines),
                )
            entry_ids.update(r["entry_id"] for r in rows if r["entry_id"] is not None)
        items = await self._client.fetch_ids(table.path, sorted(entry_ids)) if entry_ids else []
        writer.add(table.name, items)
        await self._progress.fetched(table.name, len(items))
        found = {item["id"] for item in items}
        writer.touch(table.name, DeleteIds(tuple(i for i in entry_ids if i not in found)))

    # -- tables listed whole --------------------------------------------------------------------------------

    async def _refresh(self, writer: Unit, table: Table) -> None:
        if table.name == "fiscal_years":
            items = await self._open_or_all_fiscal_years()
            writer.add(table.name, items)
            await self._progress.fetched(table.name, len(items))
        else:
            async for page in self._client.pages(table.path, params={"sort": "id"}, limit=table.max_limit):
                writer.add(table.name, page)
                await self._progress.fetched(table.name, len(page))
        writer.touch(table.name, DeleteAll())

    async def _open_or_all_fiscal_years(self) -> list[dict[str, Any]]:
        """Every fiscal year, listed once per sync whoever asks first (the trial balance and FEC need them)."""
        if self._fiscal_years is None:
            self._fiscal_years = asyncio.ensure_future(
                self._client.list_all("/fiscal_years", params={"sort": "id"}, limit=100)
            )
        return await asyncio.shield(self._fiscal_years)

    async def _open_fiscal_years(self) -> list[tuple[int, date, date]]:
        out = []
        for year in await self._open_or_all_fiscal_years():
            if year.get("status") not in OPEN_FISCAL_YEARS:
                continue
            try:
                out.append((int(year["id"]), date.fromisoformat(year["start"]), date.fromisoformat(year["finish"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise BadItem(f"a fiscal year without a usable id, start and finish: {year!r:.200}") from exc
        return out

    async def _trial_balance(self, writer: Unit, table: Table) -> None:
        years = await self._open_fiscal_years()
        for year_id, start, finish in years:
            params = {"period_start": start.isoformat(), "period_end": finish.isoformat()}
            async for page in self._client.pages(table.path, params=params, limit=table.max_limit):
                writer.add(table.name, page, fiscal_year_id=year_id, period_start=start, period_end=finish)
                await self._progress.fetched(table.name, len(page))
        writer.touch(table.name, DeleteWithin("fiscal_year_id", tuple(y[0] for y in years)))

    async def _fec(self, writer: Unit, table: Table) -> None:
        years = await self._open_fiscal_years()
        for year_id, start, finish in years:
            data = await self._export(table.path, start, finish)
            count = writer.add_rows(
                table.name, ((item, {"fiscal_year_id": year_id, "line_no": n}) for n, item in fec.rows(data))
            )
            await self._progress.fetched(table.name, count)
        writer.touch(table.name, DeleteWithin("fiscal_year_id", tuple(y[0] for y in years)))

    async def _export(self, path: str, start: date, finish: date) -> bytes:
        """Ask for an export, wait until it is ready, download it."""
        created = await self._client.post(path, {"period_start": start.isoformat(), "period_end": finish.isoformat()})
        if not isinstance(created, dict) or not isinstance(created.get("id"), int):
            raise api.MalformedResponse("the export was created without an id", path=path)
        export_id = created["id"]
        deadline = time.monotonic() + EXPORT_TIMEOUT_S
        polls = 0
        body: Any = created
        while True:
            status = body.get("status") if isinstance(body, dict) else None
            if status == "ready" and isinstance(body.get("file_url"), str):
                return await self._client.download(body["file_url"])
            if status == "error":
                raise api.PennylaneError(f"the export {export_id} failed on Pennylane's side", path=path)
            if time.monotonic() > deadline:
                raise api.Unavailable(f"the export {export_id} was not ready after {EXPORT_TIMEOUT_S:.0f} s", path=path)
            await asyncio.sleep(EXPORT_POLL_S[min(polls, len(EXPORT_POLL_S) - 1)])
            polls += 1
            body = await self._client.get(f"{path}/{export_id}")


@dataclass(frozen=True, slots=True)
class Report:
    outcomes: list[TableOutcome]
    requests: int
    throttled: int
    seconds: float

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    def stats(self) -> dict[str, Any]:
        totals = {k: sum(getattr(o.written, k) for o in self.outcomes) for k in ("inserted", "updated", "deleted")}
        return {
            **totals,
            "requests": self.requests,
            "throttled": self.throttled,
            "seconds": round(self.seconds, 3),
            "tables": [o.as_dict() for o in self.outcomes],
        }

    def errors(self) -> list[dict[str, Any]]:
        return [{"code": o.code, "table": o.table, "message": o.error} for o in self.outcomes if not o.ok]
