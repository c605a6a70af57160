"""Benchmark: validating a period whose grand livre has 1,000,000 lines (xlsx).

Measured in the same run, on the same files, each in a fresh child process (so peak RSS is its own):
  floor     — fastexcel alone reading the grand livre's sheet into polars (nothing else)
  validate  — `validate_excel` on the five files: parse all of them, every check, normalised tables

Prints the times (median of --repeat runs), the ratio validate / floor, and each one's peak RSS.
Target (issue 2): ratio ≤ 1.5, peak RSS < 2 GB.

    uv run python bench/validate_grand_livre.py [--lines 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
FIELDS = ("grand_livre_comptes", "grand_livre_tiers", "plan_comptes", "plan_tiers", "code_journal")


VARIANTS: dict[str, dict[str, object]] = {
    # numeric amount cells and date cells, one account column: what most programs export
    "numeric": {},
    # French text amounts and text dates, grouped by account with totals, page breaks every 250 lines
    "text-grouped": {
        "layout": "grouped",
        "account_totals": True,
        "page_size": 250,
        "amount_style": "nbsp",
        "date_style": "dd/mm/yyyy",
    },
    # the same with a page break (repeated preamble and header) every 60 lines: the most rows to skip
    "text-grouped-dense": {
        "layout": "grouped",
        "account_totals": True,
        "page_size": 60,
        "amount_style": "nbsp",
        "date_style": "dd/mm/yyyy",
    },
}


def prepare(lines: int, variant: str) -> dict[str, Path]:
    """Write (once, cached under bench/out/) the five files of a period with a `lines`-line grand livre."""
    from comptaflow.testkit.excel import ExportSpec, write_grand_livre_rows, write_period

    folder = OUT / f"period-{lines}-{variant}"
    marker = folder / "done.json"
    if marker.exists():
        return {k: folder / name for k, name in json.loads(marker.read_text()).items()}
    folder.mkdir(parents=True, exist_ok=True)
    companions = write_period(folder, ExportSpec())
    big = folder / "grand_livre_comptes_big.xlsx"
    started = time.perf_counter()
    write_grand_livre_rows(big, lines, **VARIANTS[variant])  # type: ignore[arg-type]
    print(f"generated {lines:,} lines in {time.perf_counter() - started:.0f}s ({big.stat().st_size / 1e6:.0f} MB)")
    paths = {field: companions.paths[field] for field in FIELDS} | {"grand_livre_comptes": big}
    marker.write_text(json.dumps({k: str(v.relative_to(folder)) for k, v in paths.items()}))
    return paths


CHILD_FLOOR = """
import resource, sys, time, fastexcel
t = time.perf_counter()
df = fastexcel.read_excel(sys.argv[1]).load_sheet(0, header_row=None).to_polars()
elapsed = time.perf_counter() - t
print(elapsed, df.height, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

CHILD_VALIDATE = """
import json, resource, sys, time
from pathlib import Path
from comptaflow.period_validator.excel import validate_excel
from comptaflow.period_validator.findings import FileKind
paths = {FileKind(k): Path(v) for k, v in json.loads(sys.argv[1]).items()}
t = time.perf_counter()
result = validate_excel(paths)
elapsed = time.perf_counter() - t
assert result.ok, [f.as_dict() for f in result.errors[:5]]
rows = result.tables["grand_livre_comptes"].height
print(elapsed, rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run_child(code: str, arg: str) -> tuple[float, int, int]:
    done = subprocess.run(  # noqa: S603 — our own interpreter and code
        [sys.executable, "-c", code, arg], capture_output=True, text=True, check=True
    )
    seconds, rows, rss_kb = done.stdout.split()
    return float(seconds), int(rows), int(rss_kb) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="numeric")
    args = parser.parse_args()
    paths = prepare(args.lines, args.variant)
    floors, validations = [], []
    floor_rss = validate_rss = 0
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        seconds, _, rss = run_child(CHILD_FLOOR, str(paths["grand_livre_comptes"]))
        floors.append(seconds)
        floor_rss = max(floor_rss, rss)
        seconds, rows, rss = run_child(CHILD_VALIDATE, json.dumps({k: str(v) for k, v in paths.items()}))
        validations.append(seconds)
        validate_rss = max(validate_rss, rss)
        assert rows == args.lines, f"validated {rows} lines, expected {args.lines}"
    floor, validate = statistics.median(floors), statistics.median(validations)
    size_mb = paths["grand_livre_comptes"].stat().st_size / 1e6
    print(f"grand livre: {args.lines:,} lines, variant {args.variant}, {size_mb:.0f} MB xlsx")
    print(f"floor    (fastexcel read)      {floor:7.2f} s   peak RSS {floor_rss / 2**20:6.0f} MiB   runs {floors}")
    print(
        f"validate (five files, checks)  {validate:7.2f} s   "
        f"peak RSS {validate_rss / 2**20:6.0f} MiB   runs {validations}"
    )
    print(f"ratio validate / floor         {validate / floor:7.2f}   (target ≤ 1.5, RSS < 2048 MiB)")


if __name__ == "__main__":
    main()
