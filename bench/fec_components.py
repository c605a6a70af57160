"""Benchmark: what a FEC load cannot skip, each step timed alone, against the polars floor, same run.

`load_fec.py` times the whole platform from upload to COMPLETED. This one times, on the same cached
1,000,000-line FEC, the steps any implementation of the product must do, each with nothing around it:
  store   — the upload written to object storage (SeaweedFS, started here as `comptaflow up` starts it),
            in 8 MiB parts as the gateway streams it;
  fetch   — the same object read back, as the validator gets it;
  check   — `validate_fec` alone on the file: decode, split, type, every Test Compta Demat check, tables;
  stage   — the ledger table written as insert-ready Parquet (the validator's `encode_staged`) and stored;
  insert  — that Parquet inserted into the warehouse's `grand_livre` table (chdb, the platform's schema).
The floor — polars' bare `read_csv`, every column text — is `load_fec.py`'s, in its own fresh process;
the steps run in one other process, one after the other. With --runs N both are repeated, interleaved,
and the medians printed. No orchestration is timed: no HTTP, no bus, no database row, no progress event.

    uv run python bench/fec_components.py [--lines 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_fec import CHILD_FLOOR, prepare
from platform_run import run_child

STEPS = ("store", "fetch", "check", "stage", "insert")

CHILD_STEPS = """
import asyncio, os, resource, sys, time, uuid
from pathlib import Path
from comptaflow.cli.embedded import EmbeddedS3
from comptaflow.common.layout import STAGED_TAGS
from comptaflow.common.storage import Storage
from comptaflow.common.warehouse import Warehouse
from comptaflow.common.warehouse.schema import FACTS
from comptaflow.period_validator.fec import validate_fec
from comptaflow.period_validator.parsing import encode_staged

path, home = Path(sys.argv[1]), Path(sys.argv[2])
sys.stdout = sys.stderr  # logs; the figures go to the real stdout

TICK = os.sysconf("SC_CLK_TCK")

def cpu(pid):
    # CPU seconds (user + system) of this process and of the SeaweedFS server it started.
    own = resource.getrusage(resource.RUSAGE_SELF)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return own.ru_utime + own.ru_stime + (int(fields[11]) + int(fields[12])) / TICK

async def main():
    s3 = EmbeddedS3(home / "s3")
    endpoint = await s3.start()
    weed = s3._process.pid
    storage = Storage(endpoint=endpoint.endpoint, access_key=endpoint.access_key, secret_key=endpoint.secret_key,
                      bucket="bench")
    await storage.open()
    await storage.ensure_bucket()
    warehouse = Warehouse("chdb://" + str(home / "warehouse"))
    await warehouse.open()
    await warehouse.migrate()
    times, cpus = [], []
    try:
        c = cpu(weed)
        t = time.perf_counter()
        await storage.upload_file("upload/fec.txt", path, content_type="text/plain")
        times.append(time.perf_counter() - t)
        cpus.append(cpu(weed) - c)

        c = cpu(weed)
        t = time.perf_counter()
        data = await storage.get_bytes("upload/fec.txt")
        fetched = home / "fec.txt"
        fetched.write_bytes(data)
        del data
        times.append(time.perf_counter() - t)
        cpus.append(cpu(weed) - c)

        c = cpu(weed)
        t = time.perf_counter()
        result = validate_fec(fetched)
        times.append(time.perf_counter() - t)
        cpus.append(cpu(weed) - c)
        assert not result.errors, result.errors[:3]

        staged_as, columns = FACTS["grand_livre"]
        load_id = uuid.uuid4()
        c = cpu(weed)
        t = time.perf_counter()
        staged = encode_staged(staged_as, result.tables[staged_as], tenant_id="bench", load_id=load_id)
        await storage.put_bytes("staging/grand_livre.parquet", staged)
        times.append(time.perf_counter() - t)
        cpus.append(cpu(weed) - c)

        c = cpu(weed)
        t = time.perf_counter()
        await warehouse.insert_parquet("grand_livre", staged, (*STAGED_TAGS, *columns))
        times.append(time.perf_counter() - t)
        cpus.append(cpu(weed) - c)
        rows = (await warehouse.query("SELECT count() FROM comptaflow.grand_livre WHERE load_id = {l:String}",
                                      {"l": str(load_id)}))[0][0]
        assert rows == result.tables[staged_as].height, (rows, result.tables[staged_as].height)
    finally:
        await warehouse.close()
        await storage.close()
        s3.stop()
    print(*times, *cpus, rows, file=sys.__stdout__)

asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    path, summary = prepare(args.lines)
    floors: list[list[float]] = []
    runs: list[list[float]] = []
    with tempfile.TemporaryDirectory(prefix="cf-bench-fec-steps-") as tmp:
        for run in range(args.runs):
            floors.append(run_child(CHILD_FLOOR, str(path)))
            runs.append(run_child(CHILD_STEPS, str(path), str(Path(tmp) / f"run-{run}")))
    floor = statistics.median(f[0] for f in floors)
    cores = os.cpu_count() or 1
    size = path.stat().st_size / 1e6
    rows = runs[0][-1]
    print(f"FEC: {summary['lines']:,} lines, {size:.0f} MB; {rows:,.0f} ledger rows inserted; median of {args.runs}")
    print(
        f"floor   polars read_csv, all text   {floor:6.2f} s   (CPU {statistics.median(f[3] for f in floors):5.2f} s)"
        f"   runs {', '.join(f'{f[0]:.2f}' for f in floors)}"
    )
    total = cpu_total = 0.0
    cpus: dict[str, float] = {}
    for index, step in enumerate(STEPS):
        values = [run[index] for run in runs]
        median = statistics.median(values)
        cpu = statistics.median(run[len(STEPS) + index] for run in runs)
        total += median
        cpu_total += cpu
        cpus[step] = cpu
        print(
            f"{step:<7} {median:6.2f} s = {median / floor:5.2f} x floor   (CPU {cpu:5.2f} s)"
            f"   runs {', '.join(f'{v:.2f}' for v in values)}"
        )
    print(f"sum     {total:6.2f} s = {total / floor:5.2f} x floor   (target for the whole load: <= 3 x floor)")
    bound = cpu_total / cores
    print(
        f"CPU     {cpu_total:6.2f} s over {cores} cores: even perfectly overlapped, no less than {bound:.2f} s"
        f" = {bound / floor:.2f} x floor"
    )
    essential = (cpus["check"] + cpus["insert"]) / cores
    print(
        f"        check + insert alone (no storage at all): no less than {essential:.2f} s"
        f" = {essential / floor:.2f} x floor"
    )


if __name__ == "__main__":
    main()
