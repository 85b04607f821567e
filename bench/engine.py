"""Engine benchmark: in-process cost of one order-sign evaluation (protocol + record + rules + cards).

    python bench/engine.py [--quick]

Typical case: 5 draft orders, 20 active medications, 200 Observations. Growth: Observations 10 ...
10,000 and medications 10 ... 1,000. Prints a table; writes bench/results/engine.json.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from pathlib import Path

from common import machine, percentile, print_table, write_result
from workload import NOW, request

from cds_service.config import Settings
from cds_service.service import CdsService

SERVICE_ID = "magnesium-order-sign"


def measure(service: CdsService, body: dict, rounds: int) -> dict:
    for _ in range(3):
        service.call(SERVICE_ID, body)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        service.call(SERVICE_ID, body)
        samples.append((time.perf_counter() - started) * 1000)
    tracemalloc.start()
    service.call(SERVICE_ID, body)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(percentile(samples, 0.95), 3),
        "p99_ms": round(percentile(samples, 0.99), 3),
        "peak_kib": round(peak / 1024),
        "rounds": rounds,
    }


def run(quick: bool = False) -> dict:
    service = CdsService(Settings(now=NOW))
    gc.collect()
    gc.freeze()  # as `cds-service serve` does once the app is built: the knowledge is not swept per call
    cases = [("typical", 200, 20, 300 if quick else 2000)]
    cases += [(f"obs={n}", n, 20, r) for n, r in ((10, 500), (100, 500), (1000, 200), (10000, 30))]
    cases += [(f"meds={m}", 200, m, r) for m, r in ((10, 500), (100, 200), (1000, 30))]
    rows = []
    for label, observations, medications, rounds in cases:
        body = request(observations, medications)
        cards = len(service.call(SERVICE_ID, body)[0]["cards"])
        result = measure(service, body, max(20, rounds // (4 if quick else 1)))
        rows.append({"case": label, "observations": observations, "medications": medications, "cards": cards, **result})
    print_table(rows, ["case", "observations", "medications", "cards", "median_ms", "p95_ms", "p99_ms", "peak_kib"])
    obs_rows = {r["observations"]: r for r in rows if r["case"].startswith("obs=")}
    growth = obs_rows[10000]["median_ms"] / obs_rows[1000]["median_ms"]
    print(f"growth 1,000 -> 10,000 Observations: x{growth:.1f} (linear would be x10)")
    result = {"machine": machine(), "cases": rows, "growth_1k_to_10k": round(growth, 2)}
    write_result(Path(__file__).parent / "results" / "engine.json", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    run(parser.parse_args().quick)
