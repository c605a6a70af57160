"""Benchmark: a period with a 1,000,000-line grand livre, from upload to COMPLETED.

Same run, same five files:
  ours    — `comptaflow up` (embedded PostgreSQL, SeaweedFS, chdb, in-process bus) as a child process;
            timed from the start of the HTTP upload (auto_load=true) until the batch is COMPLETED. The
            first upload after `up` starts, then `--warm` more into the same running platform (each for a
            new tenant, so each does the same work): the first pays the process's one-time costs, the
            others are what a running platform does all day.
  seed    — the approach of the original design note: pandas `read_excel` (openpyxl) with a row-by-row
            search for the period in both grands livres, then each file read again and inserted
            into ClickHouse (chdb) with clickhouse-connect's `insert_df`.
  floor   — fastexcel alone reading the five files (each once) into polars, in a fresh process.
Each runs in its own process; peak RSS is that process's high-water mark (for `ours`, the `up`
process, where parsing and loading happen, after each upload; PostgreSQL and SeaweedFS are separate processes).

    uv run python bench/load_period.py [--lines 1000000] [--variant numeric] [--repeat 3] [--warm 1]
                                       [--retain-heap] [--skip-seed] [--timeline]

The floor and ours are measured `--repeat` times, interleaved (floor, ours, floor, ours, …): the machine's
load drifts, so each ratio compares the two measurements of one pair; the seed runs once, at the end.
`--retain-heap` runs `up` with COMPTAFLOW_RETAIN_HEAP=true (comptaflow.common.memory).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from platform_run import Completed, Platform, Upload, run_child
from validate_grand_livre import FIELDS, VARIANTS, prepare

CHILD_FLOOR = """
import json, resource, sys, time, fastexcel
paths = json.loads(sys.argv[1])
t = time.perf_counter()
rows = 0
for path in paths.values():
    rows += fastexcel.read_excel(path).load_sheet(0, header_row=None).to_polars().height
print(time.perf_counter() - t, rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

# The seed's approach (seeds/000, §4.3 and §6.1), faithfully: read to find the period, read again to load.
CHILD_SEED = """
import json, re, resource, sys, time, uuid
import pandas as pd
import clickhouse_connect
paths = json.loads(sys.argv[1])
client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[2])
t = time.perf_counter()
periods = []
for kind in ("grand_livre_comptes", "grand_livre_tiers"):
    df = pd.read_excel(paths[kind], header=None)
    start = end = None
    for idx, row in df.iterrows():
        row_str = " ".join(str(cell) for cell in row if pd.notna(cell))
        if "Période du" in row_str or "Periode du" in row_str:
            dates = re.findall(r"(\\d{2}/\\d{2}/\\d{2,4})", row_str)
            if dates:
                start = dates[0]
                end = dates[1] if len(dates) > 1 else None
                break
    periods.append((start, end))
read_done = time.perf_counter() - t
inserted = 0
for kind, path in paths.items():
    df = pd.read_excel(path, header=None).astype(object).fillna("").astype(str)
    df.columns = [f"c{i}" for i in range(df.shape[1])]
    df["client_id"] = "bench"
    table = f"seed_{kind}_{uuid.uuid4().hex[:6]}"
    cols = ", ".join(f"{c} String" for c in df.columns)
    client.command(f"CREATE TABLE {table} ({cols}) ENGINE = MergeTree ORDER BY client_id")
    client.insert_df(table, df)
    inserted += len(df)
print(time.perf_counter() - t, inserted, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, read_done)
"""


def run_ours(paths: dict[str, Path], home: Path, *, warm: int, retain: bool) -> list[Completed]:
    """The first upload into a freshly started platform, then `warm` more into the same one (new tenants)."""
    uploads = [Upload(field, paths[field]) for field in FIELDS]
    with Platform(home, retain_heap=str(retain).lower()) as platform:
        return [platform.upload(uploads, tenant=f"bench{i}") for i in range(1 + warm)]


def _ratios(label: str, times: list[float], floors: list[float]) -> str:
    ratios = [t / f for t, f in zip(times, floors, strict=True)]
    return (
        f"ratio  {label:<35} min {min(ratios):.2f}  median {statistics.median(ratios):.2f}"
        f"  max {max(ratios):.2f}   (target <= 1.5)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="numeric")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved floor/ours pairs (default 3)")
    parser.add_argument("--warm", type=int, default=1, help="uploads timed after the first, same platform (default 1)")
    parser.add_argument("--retain-heap", action="store_true", help="run `up` with COMPTAFLOW_RETAIN_HEAP=true")
    parser.add_argument("--skip-seed", action="store_true", help="skip the (slow) seed baseline")
    parser.add_argument("--timeline", action="store_true", help="print when each status event of ours arrived")
    args = parser.parse_args()
    paths = prepare(args.lines, args.variant)
    arg = json.dumps({k: str(v) for k, v in paths.items()})
    mib = 2**20
    floors: list[float] = []
    firsts: list[float] = []
    warms: list[float] = []  # per pair: the median of its warm uploads
    with tempfile.TemporaryDirectory(prefix="cf-bench-") as tmp:
        for i in range(args.repeat):
            # Each pair is measured back to back, so both see the same machine load; the ratio is per pair.
            floor, floor_rows, floor_rss = run_child(CHILD_FLOOR, arg)
            runs = run_ours(paths, Path(tmp) / f"home-{i}", warm=args.warm, retain=args.retain_heap)
            floors.append(floor)
            firsts.append(runs[0].seconds)
            if i == 0:
                print(
                    f"grand livre: {args.lines:,} lines ({args.variant}) + four companions ({floor_rows:,.0f} sheet"
                    f" rows); loaded: {runs[0].batch['stats'].get('loaded')}"
                )
            line = (
                f"run {i + 1}  floor {floor:6.2f} s ({floor_rss * 1024 / mib:5.0f} MiB)"
                f"   first {runs[0].seconds:6.2f} s ({runs[0].seconds / floor:4.2f})"
            )
            if args.warm:
                warm = statistics.median(run.seconds for run in runs[1:])
                warms.append(warm)
                line += f"   warm {', '.join(f'{run.seconds:.2f}' for run in runs[1:])} s ({warm / floor:4.2f})"
            peaks = ", ".join(f"{run.peak_rss / mib:.0f}" for run in runs)
            print(f"{line}   peak RSS after each upload {peaks} MiB", flush=True)
            if args.timeline:
                for number, run in enumerate(runs):
                    print(f"       upload {number + 1}")
                    for at, what in run.timeline:
                        print(f"         {at:7.2f} s  {what}")
        if not args.skip_seed:
            seed, seed_rows, seed_rss, seed_read = run_child(CHILD_SEED, arg, str(Path(tmp) / "seed-ch"))
    floor, first = statistics.median(floors), statistics.median(firsts)
    print(f"floor  fastexcel reads the five files      {floor:8.2f} s   (median of {args.repeat})")
    print(f"ours   upload -> COMPLETED, first upload   {first:8.2f} s   (median of {args.repeat})")
    if warms:
        warm = statistics.median(warms)
        print(f"ours   upload -> COMPLETED, warm platform  {warm:8.2f} s   (median of {args.repeat})")
    print(_ratios("first upload / floor, per pair", firsts, floors))
    if warms:
        print(_ratios("warm platform / floor, per pair", warms, floors))
    if not args.skip_seed:
        print(
            f"seed   pandas/openpyxl + insert            {seed:8.2f} s   peak RSS {seed_rss * 1024 / mib:6.0f} MiB"
            f"   ({seed_rows:,.0f} rows inserted)"
        )
        print(f"       of which reading to find the period {seed_read:8.2f} s ({seed_read / floor:.1f}x the floor)")
        print(f"ratio  seed / ours (first upload)          {seed / first:8.2f}   (target >= 10)")


if __name__ == "__main__":
    main()
