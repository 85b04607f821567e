"""Run all three benchmarks and print the figures against their targets.

    .venv/bin/python bench/run.py [--quick]

Results: bench/results/{engine,http,fetch}.json. Targets (issue "Benchmarks"): engine typical p99 <= 2 ms,
10,000 Observations <= 50 ms, growth no worse than linear; http p50 <= 2x and p99 <= 3x the baseline,
>= 300 req/s per worker; fetch total <= 1.3x the slowest single query.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine
import fetch_bench
import http_bench


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter load (about 2 minutes)")
    quick = parser.parse_args().quick
    started = time.monotonic()
    print("== engine"), sys.stdout.flush()
    e = engine.run(quick)
    print("\n== http"), sys.stdout.flush()
    h = http_bench.run(quick)
    print("\n== fetch"), sys.stdout.flush()
    f = fetch_bench.run(quick)
    typical = next(r for r in e["cases"] if r["case"] == "typical")
    first = next(r for r in e["cases"] if r["case"] == "typical, first sight")
    big = next(r for r in e["cases"] if r["case"] == "obs=10000")
    print("\n== against the targets")
    print(
        f"engine typical p99 {typical['p99_ms']} ms (<= 1; first sight {first['p99_ms']} ms); "
        f"10,000 Observations median {big['median_ms']} ms "
        f"(<= 25); growth 1k->10k x{e['growth_1k_to_10k']} (linear x10)"
    )
    for r in h["ratios"]:
        print(
            f"http {r['case']} concurrency {r['concurrency']}: p50 x{r['p50_ratio']}, p99 x{r['p99_ratio']}, "
            f"throughput x{r['throughput_ratio']}, server CPU per call x{r['cpu_ratio']}"
        )
    print("   (targets: typical p50 <= 2, p99 <= 3, throughput >= 0.5; unrelated p50 <= 1.3; first-sight: none)")
    bare = f["ratio_to_bare_parallel"]
    print(f"fetch: total / slowest query x{f['ratio']} (<= 1.3); total / bare parallel client x{bare}")
    print(f"all benchmarks took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
