"""Shadow mode at scale: partition once, replay shards, merge; speed, memory and bytes read per shard.

    python bench/simulate_bench.py [--patients 10000 100000] [--noise 40]

Generates a Bulk Data export per size with tests/planted.py (the planted-rate generator of the tests:
one magnesium or furosemide order for three patients in four, serum magnesium after it at known
rates, outpatient encounters, `--noise` Observations per patient of codes no rule reads; written
directly, fast enough for 100,000 patients), then, each command in a fresh process:
- one machine: `simulate EXPORT --workers 1` and `--workers 2` (partition included, end to end);
- two shards as two pods would run them: `simulate partition --shards 2 --workers 2`, then
  `simulate PART --shard 0/2` and `--shard 1/2` at the same time (one worker each: 2 cores), then
  `simulate-merge`; end to end = the three steps' wall time added up.
Prints per step the wall and CPU seconds and the peak resident memory of the largest process, orders
replayed per second end to end, and the bytes each shard reads against the export. The machine is
shared: wall times move with its load; CPU seconds per order move less.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, print_table, write_result

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE.parent))
from tests import planted  # noqa: E402  (the tests' generator, reused: one known-answer export)

PROBE = """
import json, resource, subprocess, sys, time
commands = json.loads(sys.argv[1])
t = time.perf_counter()
procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands]
codes = [p.wait() for p in procs]
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps([codes, time.perf_counter() - t, usage.ru_utime + usage.ru_stime, usage.ru_maxrss]))
"""


def run(*commands: list[str]) -> dict:
    """Commands started together in a fresh process: wall and CPU seconds, the largest process's peak."""
    raw = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([[str(x) for x in c] for c in commands])],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    codes, wall, cpu, peak_kib = json.loads(raw)
    if any(codes):
        raise SystemExit(f"failed ({codes}): {commands}")
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_mib": round(peak_kib / 1024)}


def measure(patients: int, noise: int, root: Path) -> list[dict]:
    export = root / f"export-{patients}"
    started = time.perf_counter()
    planted.generate(export, patients, seed=20, noise=noise)
    size = sum(p.stat().st_size for p in export.iterdir())
    print(f"export: {patients:,} patients, {size / 2**20:.0f} MiB of NDJSON, generated in "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    cds = BIN / "cds-service"
    rows = []
    for workers in (1, 2):
        out = root / f"one-{patients}-{workers}"
        step = run([cds, "simulate", export, "--out", out, "--workers", workers])
        orders = json.loads((out / "figures.json").read_text())["orders_replayed"]
        rows.append(_row(patients, f"one machine, {workers} worker(s)", step, orders, step["wall_s"], step["peak_mib"]))
    part = root / f"part-{patients}"
    split = run([cds, "simulate", "partition", export, "--shards", 2, "--workers", 2, "--out", part])
    shards = run(
        *([cds, "simulate", part, "--shard", f"{i}/2", "--workers", 1, "--out", root / f"s{i}"] for i in (0, 1))
    )
    merged = root / f"merged-{patients}"
    merge = run([cds, "simulate-merge", root / "s0", root / "s1", "--out", merged])
    orders = json.loads((merged / "figures.json").read_text())["orders_replayed"]
    manifest = json.loads((part / "manifest.json").read_text())
    for name, step in (("partition, 2 writers", split), ("2 shards at once", shards), ("merge", merge)):
        rows.append({"patients": patients, "step": name, **step})
    total = split["wall_s"] + shards["wall_s"] + merge["wall_s"]
    peak = max(split["peak_mib"], shards["peak_mib"], merge["peak_mib"])
    cpu = {"cpu_s": round(split["cpu_s"] + shards["cpu_s"] + merge["cpu_s"], 1)}
    rows.append(_row(patients, "2 shards end to end", {"wall_s": round(total, 1), **cpu}, orders, total, peak))
    kept = sum(r["bytes"] for r in manifest["shard_counts"])
    for row in manifest["shard_counts"]:
        read = row["bytes"] + manifest["shared"]["bytes"]
        rows.append({"patients": patients, "step": f"shard {row['shard']}/2 reads",
                     "bytes_read": read, "share_of_export": round(read / manifest["export_bytes"], 4),
                     "share_of_kept": round(row["bytes"] / kept, 4)})  # fmt: skip
    return rows


def _row(patients: int, step: str, timing: dict, orders: int, wall: float, peak: int) -> dict:
    return {"patients": patients, "step": step, **timing, "peak_mib": peak, "orders_replayed": orders,
            "orders_per_s": round(orders / wall), "orders_per_cpu_s": round(orders / timing["cpu_s"])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, nargs="+", default=[10_000])
    parser.add_argument("--noise", type=int, default=40, help="Observations per patient of codes no rule reads")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mg-cds-simulate-bench-") as tmp:
        for patients in args.patients:
            rows += measure(patients, args.noise, Path(tmp))
    columns = ["patients", "step", "wall_s", "cpu_s", "peak_mib", "orders_replayed", "orders_per_s",
               "orders_per_cpu_s", "bytes_read", "share_of_export", "share_of_kept"]  # fmt: skip
    print_table([{c: r.get(c, "") for c in columns} for r in rows], columns)
    write_result(HERE / "results" / "simulate.json", {"machine": machine(), "noise": args.noise, "rows": rows})


if __name__ == "__main__":
    main()
