"""Benchmark: a 1,000,000-line FEC, from upload to COMPLETED, against a bare read and a pandas script.

Same run, same file (`write_fec` with the TAB separator and no quirk, cached under bench/out/):
  ours    — `comptaflow up` (embedded PostgreSQL, SeaweedFS, chdb, in-process bus) as a child process;
            timed from the start of the HTTP upload (field `fec`, auto_load=true) until the WebSocket
            reports the batch COMPLETED.
  floor   — polars alone: `pl.read_csv(path, separator="\\t", infer_schema=False, quote_char=None)`,
            every column as text, nothing checked.
  pandas  — what a careful script would do without Comptaflow: `pd.read_csv(sep="\\t", dtype=str,
            encoding="utf-8", quoting=QUOTE_NONE, keep_default_na=False)`; Debit and Credit to exact
            `Decimal` (`,` → `.`); EcritureDate and PieceDate to dates (`%Y%m%d`, errors raise), ValidDate
            and DateLet to nullable dates; every entry (JournalCode + EcritureNum) checked for balance with a
            group-by, and the file's totals and period; then every line inserted into ClickHouse (chdb)
            with clickhouse-connect's `insert_df`, typed columns (Decimal(18, 2), Date, Nullable(Date),
            String), as the Excel benchmark's seed baseline inserts.
Each runs in its own process; peak RSS is that process's high-water mark (for `ours`, the `up`
process, where parsing and loading happen; PostgreSQL and SeaweedFS are separate processes).
With --runs N the three are run N times, interleaved, and the medians are printed.

    uv run python bench/load_fec.py [--lines 1000000] [--runs 1] [--skip-ours] [--skip-pandas] [--timeline]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from platform_run import Upload, run_child, upload_to_completed

OUT = Path(__file__).resolve().parent / "out"

# Prints: seconds, rows, peak RSS (KiB), CPU seconds of the read (user + system, every thread).
CHILD_FLOOR = """
import resource, sys, time
import polars as pl
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
c, t = cpu(), time.perf_counter()
df = pl.read_csv(sys.argv[1], separator="\\t", infer_schema=False, quote_char=None)
elapsed, used = time.perf_counter() - t, cpu() - c
print(elapsed, df.height, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, used)
"""

# A careful pandas script: exact amounts, checked dates, balanced entries, typed insert into ClickHouse.
CHILD_PANDAS = """
import csv, resource, sys, time, uuid
from decimal import Decimal
import clickhouse_connect
import pandas as pd
path, ch_path = sys.argv[1], sys.argv[2]
client = clickhouse_connect.get_client(dsn="chdb://" + ch_path)
t = time.perf_counter()
df = pd.read_csv(path, sep="\\t", dtype=str, encoding="utf-8", quoting=csv.QUOTE_NONE, keep_default_na=False)
read_done = time.perf_counter() - t
for column in ("Debit", "Credit"):
    df[column] = df[column].str.replace(",", ".", regex=False).map(Decimal).astype(object)
for column in ("EcritureDate", "PieceDate"):
    df[column] = pd.to_datetime(df[column], format="%Y%m%d").dt.date
for column in ("ValidDate", "DateLet"):
    df[column] = pd.to_datetime(df[column].replace("", None), format="%Y%m%d").dt.date.astype(object)
    df[column] = df[column].where(df[column].notna(), None)
convert_done = time.perf_counter() - t
df["Solde"] = (df["Debit"] - df["Credit"]).astype(object)
balances = df.groupby(["JournalCode", "EcritureNum"], sort=False)["Solde"].sum()
unbalanced = balances[balances != 0]
assert unbalanced.empty, unbalanced.head()
assert df["Debit"].sum() == df["Credit"].sum()
period = (df["EcritureDate"].min(), df["EcritureDate"].max())
check_done = time.perf_counter() - t
df = df.drop(columns="Solde")
df.insert(0, "tenant_id", "bench")
table = f"fec_{uuid.uuid4().hex[:8]}"
types = {"Debit": "Decimal(18, 2)", "Credit": "Decimal(18, 2)", "EcritureDate": "Date", "PieceDate": "Date",
         "ValidDate": "Nullable(Date)", "DateLet": "Nullable(Date)"}
columns = ", ".join(f"{c} {types.get(c, 'String')}" for c in df.columns)
client.command(f"CREATE TABLE {table} ({columns}) ENGINE = MergeTree ORDER BY (tenant_id, EcritureDate)")
client.insert_df(table, df)
inserted = client.command(f"SELECT count() FROM {table}")
print(time.perf_counter() - t, inserted, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
      read_done, convert_done, check_done)
"""


def prepare(lines: int) -> tuple[Path, dict[str, object]]:
    """Write (once, cached under bench/out/) a `lines`-line FEC, TAB-separated, no quirk."""
    from comptaflow.testkit.fec import FecSpec, write_fec

    path = OUT / f"fec-{lines}.txt"
    marker = OUT / f"fec-{lines}.json"
    if marker.exists() and path.exists():
        return path, json.loads(marker.read_text())
    started = time.perf_counter()
    fec = write_fec(path, FecSpec(lines=lines, separator="\t"))
    print(f"generated {fec.lines:,} lines in {time.perf_counter() - started:.1f}s ({path.stat().st_size / 1e6:.0f} MB)")
    summary: dict[str, object] = {
        "lines": fec.lines,
        "entries": fec.entries,
        "period_start": fec.period_start.isoformat(),
        "period_end": fec.period_end.isoformat(),
        "total_debit": str(fec.total_debit),
    }
    marker.write_text(json.dumps(summary))
    return path, summary


def run_ours(path: Path, home: Path) -> tuple[float, int, dict[str, object], list[tuple[float, str]]]:
    done = upload_to_completed([Upload("fec", path, "text/plain")], home)
    return done.seconds, done.peak_rss, done.batch.get("stats") or {}, done.timeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1, help="interleaved runs of each measure; medians are printed")
    parser.add_argument("--skip-ours", action="store_true", help="only the floor and the pandas baseline")
    parser.add_argument("--skip-pandas", action="store_true", help="skip the (slow) pandas baseline")
    parser.add_argument("--timeline", action="store_true", help="print when each status event of ours arrived")
    args = parser.parse_args()
    path, summary = prepare(args.lines)
    floors: list[list[float]] = []
    pandas_runs: list[list[float]] = []
    ours_runs: list[tuple[float, int, dict[str, object], list[tuple[float, str]]]] = []
    with tempfile.TemporaryDirectory(prefix="cf-bench-fec-") as tmp:
        for run in range(args.runs):
            floors.append(run_child(CHILD_FLOOR, str(path)))
            if not args.skip_ours:
                ours_runs.append(run_ours(path, Path(tmp) / f"home-{run}"))
            if not args.skip_pandas:
                pandas_runs.append(run_child(CHILD_PANDAS, str(path), str(Path(tmp) / f"pandas-ch-{run}")))
    mib = 2**20
    size = path.stat().st_size / 1e6
    print(
        f"FEC: {summary['lines']:,} lines, {summary['entries']:,} entries, {size:.0f} MB, "
        f"{summary['period_start']} .. {summary['period_end']}; median of {args.runs} run(s)"
    )
    floor = statistics.median(r[0] for r in floors)
    floor_rss = max(r[2] for r in floors) * 1024
    print(
        f"floor   polars read_csv, all text            {floor:8.2f} s   peak RSS {floor_rss / mib:6.0f} MiB"
        f"   ({floors[0][1]:,.0f} rows)"
    )
    print(f"        runs: {', '.join(f'{r[0]:.2f}' for r in floors)} s")
    ours = 0.0
    if ours_runs:
        ours = statistics.median(r[0] for r in ours_runs)
        ours_rss = max(r[1] for r in ours_runs)
        print(f"ours    upload -> COMPLETED                  {ours:8.2f} s   peak RSS {ours_rss / mib:6.0f} MiB")
        print(f"        runs: {', '.join(f'{r[0]:.2f}' for r in ours_runs)} s")
        stats = ours_runs[-1][2]
        found = {key: stats.get(key) for key in ("lines", "entries", "total_debit")}
        expected = {key: summary[key] for key in ("lines", "entries", "total_debit")}
        print(f"        found {found}" + ("" if found == expected else f" -- EXPECTED {expected}"))
        if args.timeline:
            for at, what in ours_runs[-1][3]:
                print(f"          {at:7.2f} s  {what}")
        print(f"ratio   ours / floor                         {ours / floor:8.2f}   (target <= 3)")
    if pandas_runs:
        total = statistics.median(r[0] for r in pandas_runs)
        pandas_rss = max(r[2] for r in pandas_runs) * 1024
        phases = [statistics.median(r[i] for r in pandas_runs) for i in (3, 4, 5)]
        print(
            f"pandas  read, convert, check, insert         {total:8.2f} s   peak RSS {pandas_rss / mib:6.0f} MiB"
            f"   ({pandas_runs[0][1]:,.0f} rows inserted)"
        )
        print(f"        runs: {', '.join(f'{r[0]:.2f}' for r in pandas_runs)} s")
        print(
            f"        read_csv {phases[0]:.2f} s, + Decimal/dates {phases[1] - phases[0]:.2f} s, "
            f"+ balance check {phases[2] - phases[1]:.2f} s, + insert {total - phases[2]:.2f} s"
        )
        print(f"ratio   pandas / floor                       {total / floor:8.2f}")
        if ours_runs:
            print(f"ratio   pandas / ours                        {total / ours:8.2f}")


if __name__ == "__main__":
    main()
