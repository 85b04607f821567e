"""Shadow-mode replay speed and memory on a generated export.

    python bench/simulate_bench.py [--patients 10000] [--workers 1 2]

Generates a Bulk Data export offline (carebundle, fixed seeds: mixed and CKD stage 3 cohorts, with
magnesium, ciprofloxacin and diuretic orders added through 2026, as tests/test_simulate.py does),
then runs `cds-service simulate` on it once per worker count, each in a fresh process. Prints
orders read and replayed per second and the peak resident memory of the run (all its processes).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import machine, print_table, write_result

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
ADDED = ["magnesium oxide 400 MG Oral Tablet", "magnesium glycinate 500 mg capsule",
         "ciprofloxacin 500 MG Oral Tablet", "furosemide 40 MG Oral Tablet"]  # fmt: skip


def generate(out: Path, patients: int) -> None:
    parts = {"mixed": patients * 6 // 10, "ckd_stage3": patients - patients * 6 // 10}
    for i, (profile, count) in enumerate(parts.items()):
        command = [str(BIN / "carebundle"), "generate", "--profile", profile, "--sex", "mixed", "--count", str(count)]
        command += [
            "--seed",
            str(20 + i),
            "--format",
            "ndjson",
            "--reference-date",
            "2026-01-01",
            "--out",
            str(out / profile),
        ]
        subprocess.run(command, check=True, capture_output=True)
    export = out / "bulk"
    export.mkdir()
    rng = random.Random(11)
    for rtype in ("Patient", "MedicationRequest", "Observation", "Condition"):
        with (export / f"{rtype}.ndjson").open("w") as sink:
            for profile in parts:
                for line in (out / profile / f"{rtype}.ndjson").read_text().splitlines():
                    sink.write(line + "\n")
                    if rtype == "Patient":
                        _add_orders(json.loads(line)["id"], rng, export)


def _add_orders(patient: str, rng: random.Random, export: Path) -> None:
    with (export / "added.ndjson").open("a") as sink:
        for j in range(rng.randint(0, 3)):
            when = datetime(2026, 1, 2, tzinfo=UTC) + timedelta(days=rng.randint(0, 180))
            order = {
                "resourceType": "MedicationRequest",
                "id": f"added-{patient}-{j}",
                "status": "active",
                "intent": "order",
                "subject": {"reference": f"Patient/{patient}"},
                "medicationCodeableConcept": {"text": rng.choice(ADDED)},
                "authoredOn": when.date().isoformat(),
            }
            sink.write(json.dumps(order) + "\n")


def measure(export: Path, out: Path, workers: int) -> dict:
    """One run in a fresh process; its peak memory is the largest of it and its workers."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        f"subprocess.run([{str(BIN / 'cds-service')!r}, 'simulate', {str(export)!r}, '--out', {str(out)!r}, "
        f"'--workers', '{workers}'], check=True, capture_output=True); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    seconds, peak_kib = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.split()
    figures = json.loads((out / "figures.json").read_text())
    seconds = float(seconds)
    return {
        "workers": workers,
        "patients": figures["patients"],
        "orders_read": figures["orders_read"],
        "orders_replayed": figures["orders_replayed"],
        "seconds": round(seconds, 1),
        "read_per_s": round(figures["orders_read"] / seconds),
        "replayed_per_s": round(figures["orders_replayed"] / seconds),
        "peak_mib": round(int(peak_kib) / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mg-cds-simulate-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        generate(root, args.patients)
        export = root / "bulk"
        size = sum(p.stat().st_size for p in export.iterdir()) / 2**20
        took = time.perf_counter() - started
        print(f"export: {args.patients:,} patients, {size:.0f} MiB of NDJSON, generated in {took:.0f} s")
        rows = [measure(export, root / f"out-{w}", w) for w in args.workers]
    print_table(rows, list(rows[0]))
    write_result(HERE / "results" / "simulate.json", {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
